"""Bad input, case by case, on the corpus in tests/data/bad/ (its README lists each file and outcome).

Structures are checked once, at `prepare`: a bad entry of a set is rejected with its id and reason
(the set goes on), a file with nothing usable is an error naming it. What a model cannot embed is
excluded with a reason in that model's store and dropped from every comparison that model takes part in.
Configurations are checked once, against the schema, naming the offending key.
"""

import logging
import re
from pathlib import Path

import ase
import ase.io
import numpy as np
import pytest
import yaml

from platonic.cli import main
from platonic.config import ConfigError, resolve_derived, validate_config
from platonic.models.base import Adapter, Loaded
from platonic.store import open_store
from platonic.structures import StructureError, read_structures, validate_atoms

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "data" / "bad"
CIFS = BAD / "cifs"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"

# corpus file -> what its rejection says (regex)
REJECTIONS = {
    "empty": r"^empty CIF$",
    "garbled": r"^unreadable CIF \(.+\); check that it has a cell and an atom-site loop$",
    "overlap": r"^atoms overlap \(closest distance 0\.271 A < 0\.5 A",
    "overlap_periodic": r"^atoms overlap \(closest distance 0\.200 A < 0\.5 A, periodic images included\)$",
    "huge_cell": r"^cell too large: 32000 A\^3 per atom > 500 \(dataset\.max_volume_per_atom\)",
    "partial_occupancy": r"^partial occupancy / disorder at site\(s\) .*Fe 0\.5 \+ Co 0\.5.*Li 0\.9.*order the",
}


@pytest.fixture(scope="module")
def cif_folder():
    return read_structures(CIFS)


def test_a_cif_folder_keeps_the_good_structure_and_records_every_bad_one(cif_folder):
    assert cif_folder.ids == ["good_nacl"]
    assert [len(a) for a in cif_folder.atoms] == [8]
    assert sorted(i for i, _ in cif_folder.rejected) == sorted(REJECTIONS)


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_each_bad_cif_is_rejected_with_its_reason(cif_folder, case):
    reason = dict(cif_folder.rejected)[case]
    assert re.search(REJECTIONS[case], reason), reason


@pytest.mark.parametrize("case", sorted(set(REJECTIONS) - {"empty"}))
def test_a_file_with_nothing_usable_is_an_error_naming_the_file_and_the_reason(case):
    path = CIFS / f"{case}.cif"
    with pytest.raises(StructureError) as caught:
        read_structures(path)
    message = str(caught.value)
    assert message.startswith(f"no usable structures in {path}: every entry was rejected ({case}: ")
    assert re.search(REJECTIONS[case].lstrip("^").rstrip("$"), message), message


@pytest.mark.parametrize("name", ["empty.cif", "empty.extxyz"])
def test_an_empty_file_is_an_error_naming_it_and_no_store_is_written(tmp_path, capsys, name):
    path = (CIFS if name.endswith(".cif") else BAD) / name
    with pytest.raises(StructureError, match=re.escape(f"structure file {path} is empty")):
        read_structures(path)
    assert main(["prepare", str(path), str(tmp_path / "s.zarr")]) == 1
    err = capsys.readouterr().err
    assert f"platonic prepare: error: structure file {path} is empty; check `dataset.path`" in err
    assert not (tmp_path / "s.zarr").exists()


def test_prepare_counts_the_rejections_in_its_log_and_the_store(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="platonic")
    assert main(["prepare", str(CIFS), str(tmp_path / "s.zarr")]) == 0
    store = open_store(tmp_path / "s.zarr")
    assert store.attrs["n_structures"] == 1 and store.attrs["n_rejected"] == len(REJECTIONS)
    reasons = dict(zip(store.attrs["rejected_ids"], store.attrs["rejected_reasons"], strict=True))
    assert reasons == dict(read_structures(CIFS).rejected)
    assert f"1 structures, 8 atoms in 2 symmetry orbits (symprec 0.001 A) -> {tmp_path / 's.zarr'}" in caplog.text
    assert f"({len(REJECTIONS)} rejected" in caplog.text
    for case in REJECTIONS:
        assert f"rejected structure {case}: " in caplog.text


def test_overlap_across_the_boundary_is_invisible_without_periodic_images():
    atoms = ase.io.read(CIFS / "overlap_periodic.cif")
    assert atoms.get_distance(0, 1, mic=False) == pytest.approx(4.8)
    assert atoms.get_distance(0, 1, mic=True) == pytest.approx(0.2)
    # an atom next to its own image (a cell vector shorter than 0.5 A) is an overlap too
    with pytest.raises(StructureError, match=r"closest distance 0\.400 A"):
        validate_atoms(ase.Atoms("Na", cell=[0.4, 5, 5], pbc=True))


def test_the_cell_size_limit_is_configurable(tmp_path):
    path = CIFS / "huge_cell.cif"
    assert read_structures(path, max_volume_per_atom=None).ids == ["huge_cell"]
    assert read_structures(path, max_volume_per_atom=32001).ids == ["huge_cell"]
    with pytest.raises(StructureError, match=r"32000 A\^3 per atom > 31999"):
        read_structures(path, max_volume_per_atom=31999)
    assert main(["prepare", str(path), str(tmp_path / "s.zarr"), "--max-volume-per-atom", "null"]) == 0
    assert open_store(tmp_path / "s.zarr").attrs["n_atoms"] == 2
    # a molecule (no periodic cell) has no volume to check
    validate_atoms(ase.Atoms("NaCl", positions=[[0, 0, 0], [2.4, 0, 0]]), max_volume_per_atom=1.0)


def test_partial_occupancy_is_rejected_where_ase_would_silently_pick_one_species():
    atoms = ase.io.read(CIFS / "partial_occupancy.cif")
    assert atoms.get_chemical_symbols().count("Fe") + atoms.get_chemical_symbols().count("Co") == 1
    assert atoms.info["occupancy"]["0"] == {"Fe": 0.5, "Co": 0.5}
    with pytest.raises(StructureError, match="partial occupancy"):
        validate_atoms(atoms)


class InfiniteLithiumAdapter(Adapter):
    """features = [Z, sqrt(Z), n_atoms], every element known; structures with Li come out infinite."""

    family = "inf-lithium"
    package = "numpy"

    def _load(self):
        return Loaded(Path(__file__), frozenset(range(1, 119)), "closed form")

    def _embed_batch(self, structures):
        out = []
        for atoms in structures:
            z = atoms.numbers.astype(float)
            x = np.stack([z, np.sqrt(z), np.full_like(z, len(atoms))], axis=1)
            if 3 in atoms.numbers:
                x[:, 1] = np.inf
            out.append(x)
        return out


def test_model_exclusions_give_nan_rows_and_drop_the_same_atoms_from_every_model(tmp_path, monkeypatch, capsys):
    """AmO2: americium is beyond CHGNet's elements (real weights); LiF: the second model's output
    is infinite. Both stores keep all 28 atoms; a comparison of the two keeps NaCl's 8. Anchors chosen on CHGNet
    may fall on LiF, which the second model cannot project (a clear error); with candidates common they cannot."""
    from platonic import models

    monkeypatch.setitem(models.FAMILIES, "inf-lithium", models.Family(InfiniteLithiumAdapter, extra=None))
    s, a = tmp_path / "s.zarr", tmp_path / "a.zarr"
    stores = {"chgnet-0.3.0": tmp_path / "chgnet.zarr", "inf-lithium": tmp_path / "inf.zarr"}
    assert main(["prepare", str(BAD / "embedding_exclusions.extxyz"), str(s)]) == 0
    assert main(["embed", str(s), str(stores["chgnet-0.3.0"]), "--model", "chgnet-0.3.0", "--device", "cpu",
                 "--no-progress"]) == 0  # fmt: skip
    assert main(["embed", str(s), str(stores["inf-lithium"]), "--model", "inf-lithium", "--family", "inf-lithium",
                 "--checkpoint", "none", "--no-progress"]) == 0  # fmt: skip
    # the default candidates: the anchors come from the reference model alone, which embedded NaCl and LiF
    assert main(["anchors", str(a), "--structures", str(s), "--embedding", str(stores["chgnet-0.3.0"]),
                 "--reference-model", "chgnet-0.3.0", "--n", "9", "--method", "random",
                 "--atoms", "all"]) == 0  # fmt: skip

    structure_ids = np.repeat(["nacl", "amo2", "lif"], [8, 12, 8])
    excluded = {"chgnet-0.3.0": "amo2", "inf-lithium": "lif"}
    expected_reason = {"chgnet-0.3.0": r"^elements not supported by the model: Am$", "inf-lithium": r"not finite"}
    for model, path in stores.items():
        ds = open_store(path).load()
        np.testing.assert_array_equal(ds["structure_id"].values, structure_ids)
        reasons = dict(zip(["nacl", "amo2", "lif"], ds["exclusion_reason"].values, strict=True))
        assert re.search(expected_reason[model], reasons[excluded[model]]), reasons
        assert [sid for sid, reason in reasons.items() if reason] == [excluded[model]]
        assert ds.attrs["n_excluded_structures"] == 1
        dropped = structure_ids == excluded[model]
        np.testing.assert_array_equal(ds["valid"].values, ~dropped)
        assert np.isnan(ds["embedding"].values[dropped]).all()
        assert np.isfinite(ds["embedding"].values[~dropped]).all()
    anchors = open_store(a).load()
    np.testing.assert_array_equal(anchors["reference_valid"].values, structure_ids != "amo2")
    np.testing.assert_array_equal(anchors["compared"].values, np.ones(28, bool))  # no model's exclusions in it
    on_lif = [i for i in anchors["anchor_atom"].values if structure_ids[i] == "lif"]
    assert on_lif and set(anchors["anchor_atom"].values) <= set(range(8)) | set(range(20, 28))  # 9 of 16: some LiF
    assert main(["project", str(stores["chgnet-0.3.0"]), str(a), str(tmp_path / "p-chgnet.zarr")]) == 0
    capsys.readouterr()
    assert main(["project", str(stores["inf-lithium"]), str(a), str(tmp_path / "p-inf.zarr")]) == 1
    err = capsys.readouterr().err
    assert f"platonic project: error: inf-lithium did not embed {len(on_lif)} of the 9 anchor atoms" in err
    for i in on_lif:
        symbol = "Li" if open_store(s)["Z"].values[i] == 3 else "F"
        assert f"atom {i} (lif, {symbol})" in err
    assert "anchors.reference_model" in err and "anchors.candidates: common" in err
    assert not (tmp_path / "p-inf.zarr").exists()

    # candidates common: the anchors among the atoms both models embedded, NaCl's 8
    assert main(["anchors", str(a), "--structures", str(s), "--embedding", str(stores["chgnet-0.3.0"]),
                 "--embeddings", *map(str, stores.values()), "--reference-model", "chgnet-0.3.0", "--n", "4",
                 "--method", "random", "--atoms", "all", "--candidates", "common"]) == 0  # fmt: skip
    anchors = open_store(a).load()
    assert set(anchors["anchor_atom"].values) <= set(range(8))
    np.testing.assert_array_equal(anchors["reference_valid"].values, structure_ids != "amo2")
    for model, path in stores.items():
        assert main(["project", str(path), str(a), str(tmp_path / f"p-{model}.zarr")]) == 0


# config corpus file -> (offending key, message regex)
CONFIG_ERRORS = {
    "negative_k.yaml": [("similarity.k", r"-3 is less than the minimum of 1")],
    "bad_numbers.yaml": [
        ("anchors.n", r"0 is less than the minimum of 1"),
        ("embed.batch_size", r"-16 is less than the minimum of 1"),
        ("similarity.k", r"0 is less than the minimum of 1"),
        ("similarity.train_fraction", r"1\.5 is greater than or equal to the maximum of 1"),
    ],
    "misspelled_reference_model.yaml": [
        (
            "anchors.reference_model",
            r"'chgnet-0\.3' is not one of the configured models: chgnet-0\.3\.0, sevennet-0 "
            r"\(did you mean 'chgnet-0\.3\.0'\?\)",
        )
    ],
    "unknown_family.yaml": [
        (
            "models.'chgnet-0.3.0'.family",
            r"unknown model family 'chgent'; known families: chgnet, .*sevenn.* \(did you mean 'chgnet'\?\)",
        )
    ],
    "unknown_tree_metric.yaml": [
        (
            "figures.tree_metric",
            r"'linear_ck' is not one of similarity.metrics: linear_cka, mutual_knn \(did you mean 'linear_cka'\?\)",
        )
    ],
    "misspelled_key.yaml": [
        ("similarty", r"'similarty' was unexpected\); allowed here: (.*, )?anchors, .* \(did you mean 'similarity'\?\)")
    ],
}


@pytest.mark.parametrize("name", sorted(CONFIG_ERRORS))
def test_a_bad_config_names_every_offending_key(name):
    config = yaml.safe_load((BAD / "config" / name).read_text())
    with pytest.raises(ConfigError) as caught:
        validate_config(config, SCHEMA)
    lines = str(caught.value).splitlines()
    problems = [line.removeprefix("  - ") for line in lines[1:-1]]
    assert len(problems) == len(CONFIG_ERRORS[name]), lines
    for problem, (key, message) in zip(problems, CONFIG_ERRORS[name], strict=True):
        assert problem.startswith(f"{key}") and re.search(message, problem), problem
    assert lines[-1] == f"fix these keys in the config file; {SCHEMA} documents every key"


def test_validation_fills_the_same_defaults_as_snakemake():
    from snakemake.utils import validate

    ours = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    theirs = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate_config(ours, SCHEMA)
    validate(theirs, str(SCHEMA))
    assert ours == resolve_derived(theirs)  # the same defaults, then the derived values written in
    assert ours["dataset"]["max_volume_per_atom"] == 500


def test_the_workflow_validates_through_the_library_and_passes_the_cell_limit(tmp_path):
    from test_workflow import snakemake

    failed = snakemake("--configfile", str(BAD / "config" / "negative_k.yaml"), "-n", check=False)
    assert failed.returncode != 0
    assert "similarity.k: -3 is less than the minimum of 1" in failed.stdout + failed.stderr

    config = yaml.safe_load((BAD / "config" / "negative_k.yaml").read_text())
    config["similarity"]["k"] = 5
    config["dataset"]["max_volume_per_atom"] = 40000
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    planned = snakemake("--configfile", str(path), "-n", "-p", "--forceall").stdout
    assert '"max_volume_per_atom": 40000' in planned
