"""`platonic.config.check_inputs`: what a valid configuration names outside itself, checked when the workflow starts.
The refusals are in the bad-config corpus (tests/data/bad/config, run by tests/test_bad_input.py); here, what must
pass, and the counts the anchors check compares."""

import os
from pathlib import Path

import pytest

from platonic.config import ConfigError, check_inputs, validate_config
from platonic.settings import DatasetSettings
from platonic.stages.prepare import run

ROOT = Path(__file__).resolve().parents[1]
CRYSTALS = str(ROOT / "tests/data/bad/embedding_exclusions.extxyz")  # NaCl (8 atoms), AmO2 (12), LiF (8)


def config(**sections) -> dict:
    models = {
        "chgnet-0.3.0": {"family": "chgnet", "checkpoint": "0.3.0"},
        "b": {"family": "element", "checkpoint": "none"},
    }
    values = {"dataset": {"name": "x", "path": CRYSTALS}, "models": models}
    for key, section in sections.items():
        values[key] = {**values.get(key, {}), **section}
    return validate_config(values)


def test_a_checkpoint_file_and_the_names_a_family_matches_stay_allowed(tmp_path):
    weights = tmp_path / "my_chgnet.pth.tar"
    weights.write_bytes(b"")
    check_inputs(config(models={"chgnet-0.3.0": {"family": "chgnet", "checkpoint": str(weights)}}))
    # MatterSim takes its released names in any case, with or without .pth, as its adapter resolves them
    check_inputs(config(models={"m": {"family": "mattersim", "checkpoint": "MatterSim-v1.0.0-5M.pth"}}))
    with pytest.raises(ConfigError, match=r"'mattersim-v2' is neither a checkpoint mattersim knows "
                       r"\(mattersim-v1\.0\.0-1M, mattersim-v1\.0\.0-5M\)"):  # fmt: skip
        check_inputs(config(models={"m": {"family": "mattersim", "checkpoint": "mattersim-v2"}}))
    # matgl takes any model name on the Hugging Face Hub: it lists none, and its embed job checks the name
    check_inputs(config(models={"m": {"family": "matgl", "checkpoint": "Some-Model-2030"}}))


def test_a_missing_dataset_with_a_url_is_downloaded_not_refused(tmp_path):
    missing = str(tmp_path / "later.csv")
    check_inputs(config(dataset={"path": missing, "url": "https://example.org/train.csv"}))
    with pytest.raises(ConfigError, match=f"dataset.path '{missing}' does not exist"):
        check_inputs(config(dataset={"path": missing}))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("results") / "structures.zarr"
    run(CRYSTALS, str(path), DatasetSettings.from_mapping({}))
    return path


def test_anchors_n_is_checked_against_the_atoms_of_a_current_structure_store(store):
    """Two symmetry orbits in each crystal: 6 distinct environments among 28 atoms."""
    check_inputs(config(anchors={"n": 6}), store)
    with pytest.raises(ConfigError, match=r"anchors\.n is 7 but the structure store .* holds 6 distinct environments"):
        check_inputs(config(anchors={"n": 7}), store)
    check_inputs(config(anchors={"n": 28, "atoms": "all"}), store)
    with pytest.raises(ConfigError, match=r"holds 28 atoms \(anchors\.atoms: all\): set anchors\.n to at most 28\n"):
        check_inputs(config(anchors={"n": 29, "atoms": "all"}), store)
    with pytest.raises(ConfigError, match=r"holds 28 atoms"):  # anchors.atoms null: similarity.atoms
        check_inputs(config(anchors={"n": 29}, similarity={"atoms": "all"}), store)
    check_inputs(config(anchors={"n": 7}), store.parent / "missing.zarr")  # not prepared yet: the anchors job checks


@pytest.mark.parametrize(
    "change", [{"limit": 2}, {"max_volume_per_atom": 400}, {"symprec": 0.01}, {"path": "elsewhere"}], ids=str
)
def test_a_store_prepared_with_other_dataset_settings_is_not_read(store, tmp_path, change):
    """`prepare` runs again before the anchors read it: its atom counts say nothing about the coming run."""
    dataset = dict(change)
    if "path" in dataset:
        dataset["path"] = str(tmp_path / "copy.extxyz")
        Path(dataset["path"]).write_text(Path(CRYSTALS).read_text())
        os.utime(dataset["path"], (0, 0))  # older than the store: only its other name differs
    check_inputs(config(anchors={"n": 7}, dataset=dataset), store)


def test_a_store_older_than_its_dataset_file_is_not_read(store, tmp_path):
    crystals = tmp_path / "crystals.extxyz"
    crystals.write_text(Path(CRYSTALS).read_text())
    older = tmp_path / "older.zarr"
    run(str(crystals), str(older), DatasetSettings.from_mapping({}))
    with pytest.raises(ConfigError, match="holds 6 distinct environments"):
        check_inputs(config(anchors={"n": 7}, dataset={"path": str(crystals)}), older)
    os.utime(crystals, (older.stat().st_mtime + 10,) * 2)  # the file edited after prepare ran
    check_inputs(config(anchors={"n": 7}, dataset={"path": str(crystals)}), older)
