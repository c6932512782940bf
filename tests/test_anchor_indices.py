"""Anchors given as global atom indices into another CSV's flattened atom order (``anchors.method: indices``), and the
DIRECT threshold a configuration sets.

The MP-20 train.csv that Li & Walsh's 100 indices count in (27,136 structures, 282,847 atoms) is not available
offline, so their mapping onto real MP-20 atoms is not checked here: these tests check the rule (rows in file order,
each CIF read by ASE, atoms concatenated; mapped by material_id and site) on CSVs built from the bundled MP-20 sample,
whose atom counts and species are read independently of ASE from each CIF's formula and P1 atom-site loop.
"""

from __future__ import annotations

import csv
import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from ase.data import atomic_numbers

from platonic.anchor_indices import file_sha256, flatten_order, indices_sha256, map_indices, read_indices
from platonic.anchors import direct_sampling, select_anchors
from platonic.config import ConfigError, validate_config
from platonic.settings import AnchorSettings, DatasetSettings
from platonic.store import open_store, write_store

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "mp20_sample" / "train.csv"
SHIPPED = ROOT / "data" / "reference" / "li-walsh-2026" / "mp20_train_anchor_indices_100.txt"
GARBLED = (ROOT / "tests" / "data" / "bad" / "cifs" / "garbled.cif").read_text()  # ASE cannot read it


def sample_rows(n: int | None = None, start: int = 0) -> list[dict]:
    """Rows of the bundled sample's training CSV, as ``csv.DictReader`` gives them."""
    csv.field_size_limit(sys.maxsize)
    with open(SAMPLE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[start:] if n is None else rows[start : start + n]


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def site_numbers(cif: str) -> list[int]:
    """Z of each atom of a P1 CIF in file order, read from its atom-site loop (one line per atom), without ASE;
    checked against the count of ``_chemical_formula_sum``."""
    assert re.search(r"_symmetry_space_group_name_H-M\s+'P 1'", cif)
    lines = cif.splitlines()
    start = max(i for i, line in enumerate(lines) if line.strip().startswith("_atom_site_")) + 1
    symbols = [line.split()[0] for line in lines[start:] if line.strip()]
    formula = re.search(r"_chemical_formula_sum\s+'([^']+)'", cif).group(1)
    assert sum(int(n) for n in re.findall(r"[A-Z][a-z]?(\d+)", formula)) == len(symbols)
    return [atomic_numbers[s] for s in symbols]


def prepare(path: Path, out: Path, **dataset) -> xr.Dataset:
    """The structure store of ``path`` as the prepare stage writes it."""
    from platonic.stages.prepare import run

    run(str(path), str(out), DatasetSettings.from_mapping(dataset))
    return open_store(out).load()


def reference_store(structures: xr.Dataset, path: Path, valid: np.ndarray | None = None, seed: int = 0) -> str:
    """An embedding store of a model "ref" on the structure store ``structures``: seeded random features, the atoms
    not ``valid`` NaN rows."""
    n = structures.sizes["atom"]
    valid = np.ones(n, bool) if valid is None else valid
    features = np.random.default_rng(seed).normal(size=(n, 6))
    features[~valid] = np.nan
    ds = xr.Dataset(
        {"embedding": (("atom", "feature"), features.astype(np.float32)), "valid": ("atom", valid)},
        coords={name: structures[name] for name in ("atom", "structure_id", "site", "Z")},
        attrs={"kind": "embedding", "model": "ref", "structure_set_hash": structures.attrs["structure_set_hash"]},
    )
    return str(write_store(ds, path))


def store_arrays(store: xr.Dataset) -> tuple:
    """What ``map_indices`` reads of a structure store, rejected structures included."""
    rejected = dict(zip(store.attrs["rejected_ids"], store.attrs["rejected_reasons"], strict=True))
    return (store["material_id"].values, store["first_atom"].values, store["n_atoms"].values, store["Z"].values,
            rejected)  # fmt: skip


# (a) the flattened order


def test_the_flattened_order_is_the_cumulative_atom_count_of_the_rows_in_file_order(tmp_path):
    """Twelve sample rows in a shuffled order: every global index lands on the row and site of an independent
    cumulative count (each CIF's atom-site loop), with that site's element."""
    rows = sample_rows(12)
    rows = [rows[i] for i in np.random.default_rng(5).permutation(12)]
    order = flatten_order(write_csv(tmp_path / "order.csv", rows))
    numbers = [site_numbers(r["cif"]) for r in rows]
    counts = np.array([len(z) for z in numbers])
    assert order.complete and order.n_rows == 12 and order.ids == [r["material_id"] for r in rows]
    np.testing.assert_array_equal(order.counts, counts)
    np.testing.assert_array_equal(order.z, np.concatenate(numbers))
    expected_row = np.repeat(np.arange(12), counts)
    expected_site = np.concatenate([np.arange(c) for c in counts])
    for index in range(counts.sum()):
        assert order.locate(index) == (expected_row[index], rows[expected_row[index]]["material_id"],
                                       expected_site[index])  # fmt: skip
    # read only as far as the largest index asks: up to the row holding it
    partial = flatten_order(tmp_path / "order.csv", until=int(counts[:3].sum()))  # site 0 of the fourth row
    assert len(partial.ids) == 4 and not partial.complete


# (b) a structure prepare rejects


def test_a_rejected_structure_shifts_no_index_and_an_index_inside_it_is_an_error(tmp_path):
    """The study's CSV has the third row's CIF garbled (prepare rejects it); the order CSV is the intact one. An
    index after the rejected row maps to its own structure and site (a position count would be off by the rejected
    row's atoms); an index inside the rejected row names the index, the structure, the site and the rejection."""
    rows = sample_rows(6)
    order_csv = write_csv(tmp_path / "order.csv", rows)
    broken = [dict(r) for r in rows]
    broken[2]["cif"] = GARBLED
    store = prepare(write_csv(tmp_path / "dataset.csv", broken), tmp_path / "structures.zarr")
    assert list(store.attrs["rejected_ids"]) == [rows[2]["material_id"]]
    counts = [len(site_numbers(r["cif"])) for r in rows]
    first = np.cumsum([0, *counts])
    order = flatten_order(order_csv)
    after = int(first[3] + 1)  # site 1 of the fourth row
    (atom,) = map_indices([after], order, *store_arrays(store))
    assert atom == after - counts[2]
    assert store["structure_id"].values[atom] == rows[3]["material_id"] and store["site"].values[atom] == 1
    assert store["Z"].values[atom] == site_numbers(rows[3]["cif"])[1]
    inside = int(first[2] + counts[2] - 1)  # the rejected row's last site
    with pytest.raises(ValueError) as caught:
        map_indices([after, inside], order, *store_arrays(store))
    message = str(caught.value)
    assert message.startswith("1 of the 2 anchor indices name no atom of this study: ")
    assert f"index {inside} is site {counts[2] - 1} of {rows[2]['material_id']} (row 2 of {order_csv})" in message
    assert "a structure the structure store rejected (unreadable CIF" in message
    assert f"index {after} " not in message


def test_an_unreadable_order_row_or_an_index_past_the_order_is_an_error(tmp_path):
    """An order CSV whose third row ASE cannot read: indices before it map, at or past it the order is undefined;
    past the end of a complete order an index is out of range, with the number of atoms."""
    rows = sample_rows(4)
    counts = [len(site_numbers(r["cif"])) for r in rows]
    store = prepare(write_csv(tmp_path / "dataset.csv", rows), tmp_path / "structures.zarr")
    broken = [dict(r) for r in rows]
    broken[2]["cif"] = GARBLED
    order = flatten_order(write_csv(tmp_path / "order.csv", broken))
    assert order.unreadable[:2] == (2, rows[2]["material_id"]) and len(order.ids) == 2
    np.testing.assert_array_equal(map_indices([counts[0] + 1], order, *store_arrays(store)), [counts[0] + 1])
    with pytest.raises(ValueError, match=rf"index {sum(counts[:3])} lies at or past row 2 \({rows[2]['material_id']}\)"
                       r" of .*order\.csv, which ASE cannot read \(unreadable CIF"):  # fmt: skip
        map_indices([sum(counts[:3])], order, *store_arrays(store))
    whole = flatten_order(write_csv(tmp_path / "whole.csv", rows))
    total = sum(counts)
    with pytest.raises(ValueError, match=rf"index {total} is out of range: .*whole\.csv holds {total} atoms"):
        map_indices([0, total], whole, *store_arrays(store))


def test_a_structure_missing_from_the_study_or_different_under_one_id_is_an_error(tmp_path):
    """An index into a row past the study's limit, and one into a row whose id the study gives another structure."""
    rows = sample_rows(5)
    order = flatten_order(write_csv(tmp_path / "order.csv", rows))
    store = prepare(write_csv(tmp_path / "dataset.csv", rows), tmp_path / "structures.zarr", limit=3)
    last = int(order.counts.sum() - 1)
    with pytest.raises(ValueError, match=rf"index {last} is site {order.counts[4] - 1} of {rows[4]['material_id']} "
                       r"\(row 4 of .*\), which is not in the structure store"):  # fmt: skip
        map_indices([last], order, *store_arrays(store))
    swapped = [dict(r) for r in rows]
    swapped[0]["material_id"], swapped[1]["material_id"] = rows[1]["material_id"], rows[0]["material_id"]
    assert order.counts[0] != order.counts[1]
    with pytest.raises(ValueError, match="two different structures share the id"):
        map_indices([0], flatten_order(write_csv(tmp_path / "swapped.csv", swapped)), *store_arrays(store))


# (c) the shipped list


def test_the_shipped_list_is_li_and_walshs_hundred_indices():
    """100 unique integers in MP-20 train's 282,847 atoms, the file nothing but the list (its sha256 is the list's),
    equal to the list printed in the authors' repository (its checksum, written one per line)."""
    indices = read_indices(SHIPPED)
    assert len(indices) == 100 and len(set(indices)) == 100
    assert min(indices) == 164 and max(indices) == 282577 < 282847
    assert indices[:3] == [222430, 144721, 282484] and indices[-3:] == [264644, 107630, 196220]
    expected = "9c1e75ec257dd99abe14f5d8facd5e41e8dcfbe3161d8b4fac133d3953ab4505"
    assert indices_sha256(indices) == expected == file_sha256(SHIPPED)
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == expected


# (d) identity on the study's own CSV


@pytest.mark.slow
def test_indices_into_the_studys_own_csv_map_to_themselves():
    """Every atom of the bundled sample's training split, counted in that same CSV with nothing rejected: the map
    is the identity."""
    from platonic.store import structures_to_dataset
    from platonic.structures import read_structures

    structures = read_structures(SAMPLE)
    assert not structures.rejected
    store = structures_to_dataset(structures, source=str(SAMPLE))
    order = flatten_order(SAMPLE)
    assert order.complete and order.n_atoms == store.sizes["atom"] == structures.n_atoms
    everything = np.arange(order.n_atoms)
    np.testing.assert_array_equal(map_indices(everything, order, *store_arrays(store)), everything)


# the anchors stage with method indices


def _indices_study(tmp_path):
    """Six sample rows, the third rejected by prepare, and a reference model on them; returns the paths, the rows and
    each row's first global index in the (intact) order CSV."""
    rows = sample_rows(6)
    order_csv = write_csv(tmp_path / "order.csv", rows)
    broken = [dict(r) for r in rows]
    broken[2]["cif"] = GARBLED
    structures = prepare(write_csv(tmp_path / "dataset.csv", broken), tmp_path / "structures.zarr")
    embedding = reference_store(structures, tmp_path / "ref.zarr")
    first = np.cumsum([0, *[len(site_numbers(r["cif"])) for r in rows]])
    return (
        {"structures": str(tmp_path / "structures.zarr"), "embedding": embedding, "order": str(order_csv)},
        rows,
        first,
    )


def test_the_anchors_stage_maps_given_indices_in_their_order_and_records_where_they_come_from(tmp_path):
    from platonic.stages.align import anchors

    paths, rows, first = _indices_study(tmp_path)
    given = [int(first[4]), int(first[0] + 2), int(first[3] + 1)]  # rows 4, 0 and 3 (row 2 rejected)
    index_file = tmp_path / "anchors.txt"
    index_file.write_text(f"# three anchors\n{given[0]}\n\n{given[1]}  # row 0\n{given[2]}\n")
    shift = first[3] - first[2]  # the rejected row's atoms
    expected = [given[0] - shift, given[1], given[2] - shift]
    settings = AnchorSettings.from_mapping({"reference_model": "ref", "method": "indices", "n": 3, "atoms": "all",
                                            "indices": str(index_file), "indices_order": paths["order"]})  # fmt: skip
    out = tmp_path / "anchors.zarr"
    anchors(paths["structures"], paths["embedding"], str(out), settings)
    ds = open_store(out).load()
    np.testing.assert_array_equal(ds["anchor_atom"].values, expected)  # the order given, not sorted
    assert list(ds["anchor_structure_id"].values) == [rows[4]["material_id"], rows[0]["material_id"],
                                                      rows[3]["material_id"]]  # fmt: skip
    assert ds.attrs["method"] == "indices" and ds.attrs["indices_source"] == str(index_file)
    assert ds.attrs["indices_sha256"] == hashlib.sha256("".join(f"{i}\n" for i in given).encode()).hexdigest()
    assert ds.attrs["indices_order"] == paths["order"]
    assert ds.attrs["indices_order_sha256"] == hashlib.sha256(Path(paths["order"]).read_bytes()).hexdigest()
    # the same anchors as a list, and with the order CSV left to the structure store's own source: that is the
    # study's CSV with its garbled row, where ASE stops, so the index past it is no atom
    listed = AnchorSettings.from_mapping({**settings.to_mapping(), "indices": given})
    anchors(paths["structures"], paths["embedding"], str(tmp_path / "listed.zarr"), listed)
    np.testing.assert_array_equal(open_store(tmp_path / "listed.zarr")["anchor_atom"].values, expected)
    own = AnchorSettings.from_mapping({**settings.to_mapping(), "indices_order": None})
    with pytest.raises(ValueError, match=r"lies at or past row 2 .*dataset\.csv, which ASE cannot read.*"
                       r"\(anchors\.indices, anchors\.indices_order"):  # fmt: skip
        anchors(paths["structures"], paths["embedding"], str(tmp_path / "own.zarr"), own)
    with pytest.raises(ValueError, match="anchors.indices gives 3 atoms but anchors.n is 4: set anchors.n: 3"):
        anchors(paths["structures"], paths["embedding"], str(tmp_path / "n.zarr"),
                AnchorSettings.from_mapping({**settings.to_mapping(), "n": 4}))  # fmt: skip


def test_a_given_anchor_that_is_no_candidate_is_an_error_that_says_what_to_do(tmp_path):
    """With atoms unique, a symmetry copy cannot be an anchor (the error asks for atoms: all); an atom the reference
    model did not embed cannot be one either."""
    from platonic.stages.align import anchors

    paths, rows, first = _indices_study(tmp_path)
    structures = open_store(paths["structures"]).load()
    orbit = structures["orbit"].values
    copy = int(np.flatnonzero(orbit != np.arange(len(orbit)))[0])  # a symmetry copy of an earlier atom
    structure_id, site = structures["structure_id"].values[copy], int(structures["site"].values[copy])
    row = [r["material_id"] for r in rows].index(structure_id)
    index = int(first[row] + site)
    base = {"reference_model": "ref", "method": "indices", "n": 1, "indices": [index],
            "indices_order": paths["order"]}  # fmt: skip
    with pytest.raises(ValueError) as caught:
        anchors(paths["structures"], paths["embedding"], str(tmp_path / "a.zarr"),
                AnchorSettings.from_mapping({**base, "atoms": "unique"}))  # fmt: skip
    message = str(caught.value)
    assert (
        f"index {index} (site {site} of {structure_id}, atom {copy} of this study) is a symmetry copy of atom"
        in message
    )
    assert "set anchors.atoms: all" in message
    anchors(paths["structures"], paths["embedding"], str(tmp_path / "all.zarr"),
            AnchorSettings.from_mapping({**base, "atoms": "all"}))  # fmt: skip
    assert open_store(tmp_path / "all.zarr")["anchor_atom"].values.tolist() == [copy]
    valid = np.arange(structures.sizes["atom"]) != copy
    not_embedded = reference_store(structures, tmp_path / "partial.zarr", valid)
    with pytest.raises(ValueError, match=rf"index {index} .* was not embedded by the reference model ref"):
        anchors(paths["structures"], not_embedded, str(tmp_path / "b.zarr"),
                AnchorSettings.from_mapping({**base, "atoms": "all"}))  # fmt: skip


# (e) DIRECT's initial threshold


def _blobs(seed=3) -> np.ndarray:
    """Features whose DIRECT selection depends on the first Birch threshold (checked in the tests that use them)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))


def test_threshold_init_reaches_direct_sampling():
    features = _blobs()
    candidates = np.arange(400) % 4 != 0
    by_threshold = {}
    for threshold in (0.5, 0.05):
        got = select_anchors(features, 20, "direct", 0, candidates=candidates, threshold_init=threshold)
        pool = np.flatnonzero(candidates)
        np.testing.assert_array_equal(got, pool[direct_sampling(features[pool], 20, threshold_init=threshold)])
        by_threshold[threshold] = got
    assert not np.array_equal(by_threshold[0.5], by_threshold[0.05])  # else the test could not fail
    np.testing.assert_array_equal(select_anchors(features, 20, "direct", 0, candidates=candidates),
                                  by_threshold[0.5])  # fmt: skip
    with pytest.raises(ValueError, match="initial Birch threshold must be positive"):
        direct_sampling(features, 5, threshold_init=0.0)


def test_the_anchors_stage_runs_direct_from_the_configured_threshold_and_records_it(tmp_path):
    from platonic.stages.align import anchors

    rows = sample_rows(40)
    structures = prepare(write_csv(tmp_path / "dataset.csv", rows), tmp_path / "structures.zarr")
    embedding = reference_store(structures, tmp_path / "ref.zarr")
    features = open_store(embedding)["embedding"].values
    compared = open_store(tmp_path / "structures.zarr")["orbit"].values == np.arange(structures.sizes["atom"])
    pool = np.flatnonzero(compared)
    chosen = {}
    for threshold in (0.5, 0.05):
        settings = AnchorSettings.from_mapping({"reference_model": "ref", "n": 15, "atoms": "unique",
                                                "threshold_init": threshold})  # fmt: skip
        anchors(str(tmp_path / "structures.zarr"), embedding, str(tmp_path / f"{threshold}.zarr"), settings)
        ds = open_store(tmp_path / f"{threshold}.zarr")
        assert ds.attrs["threshold_init"] == threshold and ds.attrs["method"] == "direct"
        chosen[threshold] = ds["anchor_atom"].values
        expected = pool[direct_sampling(features[pool], 15, threshold_init=threshold)]
        np.testing.assert_array_equal(chosen[threshold], expected)
    assert not np.array_equal(chosen[0.5], chosen[0.05])


def test_direct_from_threshold_init_equals_maml():
    """Li & Walsh's setting, maml's BirchClustering(n, threshold_init=0.3), against ours."""
    maml_direct = pytest.importorskip("maml.sampling.direct", reason="maml (reference DIRECT implementation) absent")
    from maml.sampling.clustering import BirchClustering
    from maml.sampling.stratified_sampling import SelectKFromClusters

    features = _blobs(11)
    for n in (10, 40):
        sampler = maml_direct.DIRECTSampler(structure_encoder=None, clustering=BirchClustering(n=n, threshold_init=0.3),
                                            select_k_from_clusters=SelectKFromClusters(k=1))  # fmt: skip
        expected = np.sort(sampler.fit_transform(features)["selected_indexes"])
        np.testing.assert_array_equal(direct_sampling(features, n, threshold_init=0.3), expected)


# (f) configuration


def _config(**anchors) -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["anchors"].update(anchors)
    return config


def _problems(config) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    return str(caught.value)


def test_the_default_study_keeps_its_anchors():
    config = validate_config(_config())
    assert {k: config["anchors"][k] for k in ("method", "n", "threshold_init", "indices", "indices_order")} == {
        "method": "direct",
        "n": 100,
        "threshold_init": 0.5,
        "indices": None,
        "indices_order": None,
    }


def test_config_validation_reads_the_index_list_and_names_the_key(tmp_path):
    config = validate_config(_config(method="indices", indices=str(SHIPPED)))
    assert config["anchors"]["indices_order"] == "data/mp20_sample/train.csv"  # null: dataset.path
    assert "anchors.n is 100 but anchors.indices gives 3 anchor atoms: set anchors.n: 3" in _problems(
        _config(method="indices", indices=[4, 5, 6])
    )
    assert "anchors.indices[1]: -2 is less than the minimum of 0" in _problems(_config(method="indices",
                                                                                        indices=[1, -2]))  # fmt: skip
    assert "anchors.method is 'indices' but anchors.indices is not given" in _problems(_config(method="indices"))
    assert "anchors.indices is given but anchors.method is 'direct': set anchors.method: indices" in _problems(
        _config(indices=[1, 2])
    )
    bad = tmp_path / "bad.txt"
    for text, message in [
        ("12\n13\nthirteen\n", rf"anchors.indices: {bad}, line 3: 'thirteen' is not an integer"),
        ("# none\n\n", rf"anchors.indices: {bad} holds no indices"),
        ("5\n-1  # minus one\n", rf"anchors.indices: anchor indices count atoms from 0; negative: {bad}, line 2: -1"),
        ("7\n8\n7\n", rf"each anchor atom is given once; repeated: 7 \({bad}, line 1 and {bad}, line 3\)"),
    ]:  # fmt: skip
        bad.write_text(text)
        assert re.search(message, _problems(_config(method="indices", indices=str(bad), n=2))), text
    assert f"anchors.indices: the index file {tmp_path / 'nowhere.txt'} does not exist" in _problems(
        _config(method="indices", indices=str(tmp_path / "nowhere.txt"), n=1)
    )
    assert "anchors.indices_order 'order.xyz' is not a CSV" in _problems(
        _config(method="indices", indices=[1], n=1, indices_order="order.xyz")
    )
