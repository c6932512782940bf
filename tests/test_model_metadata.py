"""What each model is (architecture, training data, fidelity): the schema, the presets, how a config entry's
metadata is resolved, the README's table of named models, and that the embed jobs do not depend on it."""

import copy
import json
import re
from pathlib import Path

import pytest

from platonic.config import ConfigError, resolve_model_metadata, validate_config
from platonic.models import METADATA_KEYS, PRESETS
from platonic.settings import ModelSpec

ROOT = Path(__file__).resolve().parents[1]


def _config(**models) -> dict:
    return {"dataset": {"name": "x", "path": "x.csv"}, "models": models}


def _validated(**models) -> dict:
    return validate_config(_config(**models))["models"]


def _entry(name: str) -> dict:
    """A preset as a config entry (a copy, without the keys only a preset has)."""
    return {k: copy.deepcopy(v) for k, v in PRESETS[name].items() if k not in ("source", "download")}


# --- schema ---


def test_schema_accepts_metadata_and_defaults_it_to_null():
    spec = ModelSpec.from_mapping({"family": "mace", "checkpoint": "x.model"})
    assert (spec.architecture, spec.training_data, spec.fidelity) == (None, None, None)
    spec = ModelSpec.from_mapping(
        {"family": "mace", "checkpoint": "x.model", "architecture": "MACE", "training_data": ["MPtrj", "sAlex"]}
    )
    assert spec.training_data == ("MPtrj", "sAlex") and spec.fidelity is None


def test_a_string_for_training_data_is_rejected_naming_the_key_and_the_fix():
    with pytest.raises(
        ConfigError, match=r"models.mine.training_data: 'MPtrj' is not of type 'array', 'null'; write a"
    ):
        _validated(mine={"family": "mace", "checkpoint": "x.model", "training_data": "MPtrj"}, b=_entry("element"))
    with pytest.raises(ConfigError, match=r"has non-unique elements"):
        ModelSpec.from_mapping({"family": "mace", "checkpoint": "x", "training_data": ["MPtrj", "MPtrj"]})
    with pytest.raises(ConfigError, match=r"models.fidelity: 3 is not of type 'string', 'null'"):
        ModelSpec.from_mapping({"family": "mace", "checkpoint": "x", "fidelity": 3})


# --- presets ---


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_says_what_it_is_and_where_that_is_stated(name):
    preset = PRESETS[name]
    assert isinstance(preset["architecture"], str) and preset["architecture"]
    assert isinstance(preset["training_data"], list) and all(isinstance(d, str) and d for d in preset["training_data"])
    assert preset["fidelity"] is None or isinstance(preset["fidelity"], str)
    assert isinstance(preset["source"], str) and preset["source"]
    ModelSpec.from_mapping({k: v for k, v in preset.items() if k not in ("download", "source")})  # schema-valid
    untrained = preset.get("options", {}).get("weights") == "random"
    if untrained or preset["family"] in ("element", "soap"):
        assert (preset["training_data"], preset["fidelity"]) == ([], None)
    else:
        assert preset["training_data"], f"{name} is trained on something"


# --- resolution ---


def test_a_preset_entry_takes_the_presets_metadata():
    models = _validated(**{name: {"family": PRESETS[name]["family"], "checkpoint": PRESETS[name]["checkpoint"],
                                  **({"options": PRESETS[name]["options"]} if "options" in PRESETS[name] else {})}
                           for name in ("chgnet-r2scan", "sevennet-mf-0", "element")})  # fmt: skip
    assert {k: models["chgnet-r2scan"][k] for k in METADATA_KEYS} == {
        "architecture": "CHGNet",
        "training_data": ["MPtrj", "MP-r2SCAN"],
        "fidelity": "r2SCAN",
    }
    assert models["sevennet-mf-0"]["fidelity"] == "PBE/PBE+U"
    assert (models["element"]["training_data"], models["element"]["fidelity"]) == ([], None)
    models["chgnet-r2scan"]["training_data"].append("changed")  # a copy: the preset is untouched
    assert PRESETS["chgnet-r2scan"]["training_data"] == ["MPtrj", "MP-r2SCAN"]


def test_another_name_for_a_preset_model_takes_its_metadata():
    models = _validated(mine={"family": "sevenn", "checkpoint": "7net-0_22May2024", "layer": 2}, b=_entry("element"))
    assert models["mine"]["training_data"] == ["MPF.2021.2.8"]
    assert models["mine"]["architecture"] == "SevenNet (NequIP)"


def test_options_are_part_of_the_match_compared_as_text():
    presets = {"mf": {"family": "sevenn", "checkpoint": "7net-mf-0", "options": {"modal": "PBE"}, "fidelity": "PBE",
                      "architecture": "SevenNet", "training_data": ["a", "b"]}}  # fmt: skip
    other_modal = {"family": "sevenn", "checkpoint": "7net-mf-0", "options": {"modal": "R2SCAN"}}
    assert resolve_model_metadata("mf", dict(other_modal), presets)["fidelity"] is None  # not the preset's model
    same = {"family": "sevenn", "checkpoint": "7net-mf-0", "options": {"modal": "PBE"}}
    assert resolve_model_metadata("x", dict(same), presets)["fidelity"] == "PBE"
    seeded = {"family": "f", "checkpoint": "c", "options": {"seed": "1", "weights": "random"}}
    trained = {"p": {"family": "f", "checkpoint": "c", "architecture": "A", "training_data": ["d"], "fidelity": "PBE"}}
    assert resolve_model_metadata("y", seeded, trained) == {**seeded, "architecture": "A", "training_data": [],
                                                            "fidelity": None}  # fmt: skip


def test_the_same_name_with_another_checkpoint_is_not_that_preset():
    models = _validated(**{"chgnet-0.3.0": {"family": "chgnet", "checkpoint": "/my/own.pth.tar"}}, e=_entry("element"))
    assert {k: models["chgnet-0.3.0"][k] for k in METADATA_KEYS} == dict.fromkeys(METADATA_KEYS)


def test_random_weights_mean_no_training_data():
    models = _validated(
        untrained={"family": "sevenn", "checkpoint": "7net-l3i5", "options": {"weights": "random", "seed": 3}},
        unknown_untrained={"family": "mace", "checkpoint": "x.model", "options": {"weights": "random"}},
    )
    assert {k: models["untrained"][k] for k in METADATA_KEYS} == {
        "architecture": "SevenNet (NequIP)",  # the architecture of the l3i5 preset
        "training_data": [],
        "fidelity": None,
    }
    assert {k: models["unknown_untrained"][k] for k in METADATA_KEYS} == {
        "architecture": None,
        "training_data": [],
        "fidelity": None,
    }


def test_an_unknown_model_stays_unknown_and_explicit_values_win():
    models = _validated(
        mine={"family": "mace", "checkpoint": "my.model"},
        told={"family": "chgnet", "checkpoint": "0.3.0", "training_data": ["MPtrj", "my DFT"], "fidelity": "PBE"},
    )
    # null training data is unknown, not "no data" ([]): figures must not read it as untrained
    assert {k: models["mine"][k] for k in METADATA_KEYS} == dict.fromkeys(METADATA_KEYS)
    assert models["told"]["architecture"] == "CHGNet"  # the rest from the 0.3.0 preset
    assert (models["told"]["training_data"], models["told"]["fidelity"]) == (["MPtrj", "my DFT"], "PBE")


def test_the_default_config_resolves_every_model():
    import yaml

    models = validate_config(yaml.safe_load((ROOT / "config/config.yaml").read_text()))["models"]
    for name, spec in models.items():
        assert spec["architecture"] == PRESETS[name]["architecture"]
        assert spec["training_data"] == PRESETS[name]["training_data"]
        assert spec["fidelity"] == PRESETS[name]["fidelity"]


# --- the workflow: the embed spec leaves metadata out; model_metadata() gives it to the figures ---


def _common_helpers(config: dict) -> dict:
    """``model_spec`` and ``model_metadata`` of workflow/rules/common.smk, run on ``config`` (the block between
    MODEL_METADATA_KEYS and model_env is plain Python)."""
    text = (ROOT / "workflow/rules/common.smk").read_text()
    block = text[text.index("MODEL_METADATA_KEYS = ") : text.index("def model_env")]
    namespace = {"json": json, "config": config}
    exec(compile(block, "common.smk", "exec"), namespace)
    return namespace


def test_model_spec_leaves_the_metadata_out_and_embed_accepts_it():
    config = validate_config(_config(a=_entry("element"), b={"family": "chgnet", "checkpoint": "0.3.0"}))
    helpers = _common_helpers(config)
    spec = json.loads(helpers["model_spec"](type("W", (), {"model": "b"})))
    assert spec == {"family": "chgnet", "checkpoint": "0.3.0", "layer": None, "options": {}, "control": False}
    assert ModelSpec.from_mapping(spec).architecture is None  # accepted; embed does not need the metadata
    config["models"]["b"]["training_data"] = ["something else"]
    assert json.loads(helpers["model_spec"](type("W", (), {"model": "b"}))) == spec


def test_model_metadata_has_every_model_with_its_five_keys():
    config = validate_config(
        _config(
            chgnet={"family": "chgnet", "checkpoint": "0.3.0"},
            mine={"family": "mace", "checkpoint": "my.model"},
            element={"family": "element", "checkpoint": "none", "control": True},
        )
    )
    metadata = json.loads(_common_helpers(config)["model_metadata"]())
    assert metadata == {
        "chgnet": {"architecture": "CHGNet", "training_data": ["MPtrj"], "fidelity": "PBE/PBE+U", "control": False,
                   "family": "chgnet"},
        "mine": {"architecture": None, "training_data": None, "fidelity": None, "control": False, "family": "mace"},
        "element": {"architecture": "element one-hot", "training_data": [], "fidelity": None, "control": True,
                    "family": "element"},
    }  # fmt: skip


# --- README ---


def test_the_readme_table_of_named_models_is_the_presets():
    from platonic.models import markdown_table

    readme = (ROOT / "README.md").read_text()
    models_section = readme[readme.index("## Models") : readme.index("## Adding a model")]
    assert markdown_table() in models_section
    rows = [line for line in markdown_table().splitlines() if re.match(r"^\| `[^`]+` \|", line)]
    assert [row.split("`")[1] for row in rows] == list(PRESETS)
