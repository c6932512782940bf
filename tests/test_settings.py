"""Every parameter spelled once: settings classes against the schema, the registry against the schema and README."""

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from platonic import cli
from platonic import settings as S
from platonic.compare import registry
from platonic.config import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[1]


def _schema_defaults(cls) -> dict:
    properties = S.section_schema(cls.section)["properties"]
    return {name: spec["default"] for name, spec in properties.items() if "default" in spec}


@pytest.mark.parametrize("cls", S.STAGE_SETTINGS, ids=lambda c: c.__name__)
def test_fields_are_the_schema_keys_and_defaults_are_the_schemas(cls):
    properties = S.section_schema(cls.section)["properties"]
    fields = [f.name for f in dataclasses.fields(cls)]
    assert sorted(fields) == sorted(set(properties) - {"mem_mb", "runtime"})
    built = cls.from_mapping({})
    assert built == cls()  # the dataclass defaults are the schema's (no second copy to drift)
    for name, default in _schema_defaults(cls).items():
        if name in fields:
            assert S._thawed(getattr(built, name)) == default, name


def test_from_mapping_rejects_unknown_keys_and_bad_values_naming_the_key():
    with pytest.raises(ConfigError, match=r"similarity.kk: Additional properties are not allowed .*did you mean 'k'"):
        S.SimilaritySettings.from_mapping({"kk": 3})
    with pytest.raises(ConfigError, match=r"similarity.k: -3 is less than the minimum of 1"):
        S.SimilaritySettings.from_mapping({"k": -3})
    with pytest.raises(ConfigError, match=r"analysis.audit.neighbour_search: 'fast' is not one of"):
        S.AuditSettings.from_mapping({"neighbour_search": "fast"})
    settings = S.SimilaritySettings.from_mapping({"k": 7, "metrics": ["linear_cka"]}, seed=5)
    assert (settings.k, settings.metrics, settings.seed, settings.lfre_k) == (7, ("linear_cka",), 5, 20)
    assert S.SimilaritySettings.from_mapping(settings.to_mapping()) == settings


def test_a_rule_section_and_the_generated_flags_build_the_same_object(tmp_path):
    """`--settings <json>` (what a rule passes) and one flag per key (by hand) give equal settings."""
    section = {"k": 4, "lfre_k": 6, "metrics": ["linear_cka", "gfre"], "train_fraction": 0.25, "seed": 9}
    parser = cli._parser()
    by_json = vars(parser.parse_args(["similarity", "o", "t", "--embeddings", "e", "--projections", "p",
                                      "--anchors", "a", "--settings", json.dumps(section)]))  # fmt: skip
    by_flags = vars(parser.parse_args(["similarity", "o", "t", "--embeddings", "e", "--projections", "p",
                                       "--anchors", "a", "--k", "4", "--lfre-k", "6", "--metrics", "linear_cka",
                                       "gfre", "--train-fraction", "0.25", "--seed", "9"]))  # fmt: skip
    from_json = S.SimilaritySettings.from_mapping(json.loads(by_json["settings"]))
    overrides = {k.split(".", 1)[1]: v for k, v in by_flags.items() if k.startswith("settings.")}
    assert S.SimilaritySettings.from_mapping({}, **overrides) == from_json
    assert from_json.metrics == ("linear_cka", "gfre") and from_json.train_fraction == 0.25
    # a nullable key takes "null"; a dict key takes KEY=VALUE pairs
    args = vars(parser.parse_args(["prepare", "in", "out", "--max-volume-per-atom", "null", "--limit", "3"]))
    assert S.DatasetSettings.from_mapping({}, **{k.split(".", 1)[1]: v for k, v in args.items() if "." in k}) == (
        S.DatasetSettings(limit=3, max_volume_per_atom=None)
    )
    args = vars(parser.parse_args(["embed", "s", "o", "--model", "m", "--options", "modal=PBE", "--options", "x=1"]))
    assert args["spec.options"] == {"modal": "PBE", "x": "1"}


def test_every_cli_stage_setting_is_a_flag_and_nothing_else_has_a_default():
    """No argparse default shadows the schema: every generated flag is absent unless given."""
    parser = cli._parser()
    args = vars(parser.parse_args(["anchors", "out", "--structures", "s", "--embedding", "a"]))
    assert args == {
        "command": "anchors",
        "output": "out",
        "structures": "s",
        "embedding": "a",
        "embeddings": (),  # a path argument: only read with --candidates common
        "settings": None,
    }
    assert S.AnchorSettings.from_mapping({}).method == "direct"  # the schema's default, nowhere else


def test_derived_values_are_resolved_once_and_written_back():
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["anchors"].pop("reference_model")
    config["similarity"].update(metrics=["mutual_knn", "cknna"], seed=4, neighbour_search="exact")
    validate_config(config)
    assert config["anchors"]["reference_model"] == "chgnet-0.3.0"  # the first model
    assert config["figures"]["tree_metric"] == "mutual_knn"  # no linear_cka: the first metric
    assert config["figures"]["seed"] == 4 and config["analysis"]["audit"]["neighbour_search"] == "exact"
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["figures"] = {"tree_metric": "svcca", "seed": 11}
    validate_config(config)
    assert config["figures"]["tree_metric"] == "svcca" and config["figures"]["seed"] == 11


def test_keys_added_later_leave_a_rules_params_as_they_were_at_their_default():
    """What a rule passes (common.smk's section) and what a store's hash records: the similarity keys added after
    results were made are left out at their default, kept otherwise; the settings they build are the same."""
    config = validate_config(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    later = S.ADDED_LATER["similarity",]
    assert set(later) <= set(config["similarity"])  # the defaults are filled in
    passed = S.without_later_defaults(("similarity",), config["similarity"])
    assert set(config["similarity"]) - set(passed) == set(later)
    assert S.SimilaritySettings.from_mapping(passed) == S.SimilaritySettings.from_mapping(config["similarity"])
    changed = S.without_later_defaults(("similarity",), {**config["similarity"], "twonn_discard": 0.0})
    assert changed["twonn_discard"] == 0.0
    assert set(config["similarity"]) - set(changed) == set(later) - {"twonn_discard"}


def test_library_defaults_that_mirror_the_schema_agree_with_it():
    from platonic import anchors, symmetry

    assert anchors.DIRECT_THRESHOLD_INIT == S.AnchorSettings().threshold_init == 0.5  # maml's, today's default
    assert symmetry.DEFAULT_SYMPREC == S.DatasetSettings().symprec
    assert symmetry.DEFAULT_BREAKING_THRESHOLD == S.SymmetrySettings().threshold


def test_the_schema_enum_and_default_list_every_registered_metric_in_order():
    spec = S.section_schema(("similarity",))["properties"]["metrics"]
    assert tuple(spec["items"]["enum"]) == registry.NAMES
    assert tuple(spec["default"]) == registry.NAMES
    assert S.SimilaritySettings().metrics == registry.NAMES


def test_the_layers_schema_enum_is_the_registrys_symmetric_scale_free_metrics():
    spec = S.section_schema(("analysis",))["properties"]["layers"]["properties"]["metrics"]
    assert tuple(spec["items"]["enum"]) == registry.LAYER_METRICS
    assert "optimal_transport" not in registry.LAYER_METRICS and "gfre" not in registry.LAYER_METRICS
    assert set(spec["default"]) <= set(registry.LAYER_METRICS)


def test_the_readme_metric_table_is_the_registry():
    readme = (ROOT / "README.md").read_text()
    assert registry.markdown_table() in readme
    rows = [line for line in readme.splitlines() if re.match(r"^\| `\w+` \|", line)]
    metric_rows = [r for r in rows if r.split("`")[1] in registry.METRICS]
    assert [r.split("`")[1] for r in metric_rows] == list(registry.NAMES)


def test_registry_directions_match_the_metric_functions():
    """Similarities are 1 and distances 0 for identical spaces, as the registry says (closed form)."""
    import numpy as np

    from platonic.compare.similarity import pairwise_similarity

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    settings = S.SimilaritySettings(k=4, subsample=60, queries=60, neighbour_search="exact", threads=1)
    ds = pairwise_similarity({"raw": {"a": x, "b": x.copy()}}, settings=settings)
    for name in registry.NAMES:
        value = float(ds["similarity"].sel(metric=name, space="raw", model_a="a", model_b="b"))
        m = registry.METRICS[name]
        if name == "information_imbalance":
            assert value == pytest.approx(2 / 60)  # the nearest neighbour has rank 1 in both: 2/N
        elif name in ("gfre", "lfre"):
            assert value == pytest.approx(0.0, abs=1e-5)  # reconstructed up to the ridge's tiny penalty
        else:
            assert value == pytest.approx(1.0 if m.similarity else 0.0, abs=1e-6), name
    assert set(ds.attrs["directed_metrics"]) == {m.name for m in registry.METRICS.values() if m.directed}
