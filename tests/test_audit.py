import csv
import itertools

import numpy as np
import pytest
from analysis_stores import element_clusters, rotation, write_study
from scipy.stats import spearmanr

from platonic.analysis import arithmetic, audit
from platonic.cli import main
from platonic.projection import anchor_projection
from platonic.settings import AuditSettings
from platonic.store import open_store, write_store

FE = 26


def test_consensus_distance_is_the_distance_to_the_mean_unit_row():
    rng = np.random.default_rng(0)
    spaces = {m: rng.normal(size=(7, 4)) for m in "abc"}
    got = audit.consensus_distances(spaces, chunk=3)
    unit = {m: x / np.linalg.norm(x, axis=1, keepdims=True) for m, x in spaces.items()}
    consensus = sum(unit.values()) / 3
    for i, m in enumerate("abc"):
        np.testing.assert_allclose(got[i], np.linalg.norm(unit[m] - consensus, axis=1), rtol=1e-12)
    with pytest.raises(ValueError, match="different widths"):
        audit.consensus_distances({"a": np.ones((3, 2)), "b": np.ones((3, 4))})


def test_neighbour_jaccard_against_python_sets():
    rng = np.random.default_rng(1)
    lists = {m: np.stack([rng.choice(50, 5, replace=False) for _ in range(40)]) for m in "abc"}
    expected = np.zeros(40)
    for a, b in itertools.combinations("abc", 2):
        for i in range(40):
            sa, sb = set(lists[a][i]), set(lists[b][i])
            expected[i] += len(sa & sb) / len(sa | sb) / 3
    np.testing.assert_allclose(audit.neighbour_jaccard(lists, chunk=7), expected, rtol=1e-12)


def test_element_departure_closed_form():
    distance = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.1, 1.0], [1.0, 1.0, 3.0, 1.0]])
    z, flagged = audit.element_departure(distance, threshold=3.0, spread_floor=0.1)
    # each model's row is divided by its median (1.0 here); model 2 on element 2 against models 0, 1
    others = np.array([1.0, 1.1])
    assert z[2, 2] == pytest.approx((3.0 - others.mean()) / max(others.std(), 0.1 * others.mean()))
    assert flagged.sum() == 1 and flagged[2, 2]
    with pytest.raises(ValueError, match="three models"):
        audit.element_departure(distance[:2])


@pytest.fixture(scope="module")
def scrambled_study():
    """Four models, rotated noisy copies of one space; model m2's iron atoms are scrambled (random
    vectors); no anchor is an iron atom."""
    structure_index, z, base = element_clusters(
        seed=3, n_structures=250, elements=[3, 8, 11, 19, FE, 37], width=16, noise=0.3
    )
    rng = np.random.default_rng(4)
    anchors = rng.choice(np.flatnonzero(z != FE), size=20, replace=False)
    raw = {}
    for i in range(4):
        x = (base + 0.02 * rng.normal(size=base.shape)) @ rotation(10 + i, 16)
        if i == 2:
            x[z == FE] = 3.0 * rng.normal(size=(int(np.sum(z == FE)), 16))
        raw[f"m{i}"] = x
    projected = {m: anchor_projection(x, x[anchors]) for m, x in raw.items()}
    return structure_index, z, raw, projected, anchors


def test_a_model_with_one_scrambled_element_is_flagged_on_exactly_that_element(scrambled_study):
    structure_index, z, _, projected, _ = scrambled_study
    ids = np.array([f"s{i}" for i in range(structure_index.max() + 1)], dtype=object)
    ds = audit.consistency_audit(projected, z, structure_index, ids, AuditSettings(k=5))
    flagged = ds["flagged"]
    assert int(flagged.sum()) == 1
    assert bool(flagged.sel(model="m2", element=FE))
    elements = audit.contested_elements(ds)
    assert elements[0]["element"] == "Fe" and elements[0]["most_departing_model"] == "m2"
    # neighbour sets: iron atoms share fewer neighbours across models than any other element
    assert elements[0]["neighbour_jaccard"] == min(r["neighbour_jaccard"] for r in elements)
    worst = audit.contested_structures(ds, top=5)
    assert all("Fe" in row["formula"] for row in worst)
    # per-structure disagreement is the mean over the structure's atoms
    first = worst[0]
    rows = ds["structure_index"].values == int(first["material_id"][1:])
    assert first["disagreement"] == pytest.approx(float(ds["disagreement"].values[rows].mean()))


def test_training_counts_and_their_rank_correlation(tmp_path, scrambled_study):
    structure_index, z, _, projected, _ = scrambled_study
    path = tmp_path / "counts.csv"
    path.write_text("element,count\nLi,500\n8,9000\nNa,700\nK,300\nFe,5\nRb,100\n")
    counts = audit.read_training_counts(str(path))
    assert counts == {3: 500.0, 8: 9000.0, 11: 700.0, 19: 300.0, FE: 5.0, 37: 100.0}
    ids = np.array([f"s{i}" for i in range(structure_index.max() + 1)], dtype=object)
    ds = audit.consistency_audit(projected, z, structure_index, ids, AuditSettings(k=5))
    rho = audit.training_count_correlation(ds, {"m2": counts})
    expected = spearmanr(
        np.log1p([counts[e] for e in ds.element.values]), ds["element_distance"].sel(model="m2")
    ).statistic
    assert rho == {"m2": pytest.approx(expected)}
    bias = audit.bias_table(ds, {"m2": counts})
    fe = next(r for r in bias if r["model"] == "m2" and r["element"] == "Fe")
    assert fe["flagged"] and fe["training_count"] == 5.0
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,n\nLi,1\n")
    with pytest.raises(ValueError, match="'element' and 'count'"):
        audit.read_training_counts(str(bad))


def test_analogy_on_constructed_vectors():
    # element = period * u + group vector: Na - Li + K = (3 - 2 + 4) u + g1 = Rb exactly
    rng = np.random.default_rng(0)
    u, g1, g2, g17 = rng.normal(size=(4, 12))
    table = {
        3: 2 * u + g1,
        11: 3 * u + g1,
        19: 4 * u + g1,
        37: 5 * u + g1,
        55: 6 * u + g1,
        38: 5 * u + g2,
        35: 4 * u + g17,
    }
    elements = np.array(sorted(table))
    vectors = np.stack([table[e] for e in elements])
    ranked = arithmetic.analogy(vectors, elements, 11, 3, 19, top=4)
    assert ranked[0] == (37, pytest.approx(1.0))
    assert {e for e, _ in ranked}.isdisjoint({11, 3, 19})
    cosines = [c for _, c in ranked]
    assert cosines == sorted(cosines, reverse=True)
    with pytest.raises(ValueError, match="Xe"):
        arithmetic.analogy(vectors, elements, 54, 3, 19)


def test_element_vectors_are_mean_normalised_rows():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 5))
    z = np.repeat([8, 3, 11], 10)
    elements, vectors = arithmetic.element_vectors(x, z, chunk=7)
    centred = x - x.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    np.testing.assert_array_equal(elements, [3, 8, 11])
    np.testing.assert_allclose(vectors[1], unit[:10].mean(axis=0), rtol=1e-12)


def test_audit_and_analogies_cli_on_synthetic_stores(tmp_path, scrambled_study, capsys):
    structure_index, z, raw, _, anchors = scrambled_study
    paths = write_study(tmp_path, raw, z, structure_index, {}, anchors)
    counts = tmp_path / "counts.csv"
    counts.write_text("element,count\nFe,3\nO,1000\n")
    tables = {name: tmp_path / f"{name}.csv" for name in ("elements", "structures", "bias")}
    args = ["audit", str(tmp_path / "audit.zarr"), "--projections", *map(str, paths["projections"])]
    args += ["--anchors", str(paths["anchors"]), "--structures", str(paths["structures"]), "--k", "5"]
    args += [f"--{name}-table={path}" for name, path in tables.items()]
    args += ["--figure", str(tmp_path / "departure.png"), "--top-structures", "3"]
    assert main([*args, "--training-element-counts", f"m2={counts}"]) == 0
    ds = open_store(tmp_path / "audit.zarr")
    assert bool(ds["flagged"].sel(model="m2", element=FE)) and int(ds["flagged"].sum()) == 1
    bias = list(csv.DictReader(open(tables["bias"])))
    assert [(r["model"], r["element"]) for r in bias if r["flagged"] == "True"] == [("m2", "Fe")]
    assert len(list(csv.DictReader(open(tables["structures"])))) == 3
    assert list(csv.DictReader(open(tables["elements"])))[0]["element"] == "Fe"
    assert (tmp_path / "departure.png").stat().st_size > 10_000
    # a training-count file for a model that is not there is refused, naming the config key
    assert main([*args, "--training-element-counts", f"m9={counts}"]) == 2
    assert "analysis.audit.training_element_counts" in capsys.readouterr().err

    table = tmp_path / "analogies.csv"
    analogies = [
        "--analogies",
        '{"a": "Na", "b": "Li", "c": "K", "expected": "Rb"}',
        '{"a": "O", "b": "Li", "c": "Na"}',
    ]
    common = ["--projections", *map(str, paths["projections"]), "--anchors", str(paths["anchors"])]
    assert main(["arithmetic", str(table), *common, *analogies, "--top", "2"]) == 0
    rows = list(csv.DictReader(open(table)))
    assert len(rows) == 4 * 2 * 2  # models x analogies x top
    assert {r["analogy"] for r in rows} == {"Na - Li + K", "O - Li + Na"}
    assert all(r["element"] not in {"Na", "Li", "K"} for r in rows if r["analogy"] == "Na - Li + K")
    assert main(["arithmetic", str(table), *common, "--analogies", '{"a": "Na", "b": "Li"}']) == 2
    assert "analysis.arithmetic.analogies[0]: 'c' is a required property" in capsys.readouterr().err
    assert main(["arithmetic", str(table), *common, "--analogies", '{"a": "Na", "b": "Qq", "c": "K"}']) == 2
    assert "unknown element symbol(s) ['Qq']" in capsys.readouterr().err
    # an element without atoms in the set: one row per model saying so, not a failure
    assert main(["arithmetic", str(table), *common, "--analogies", '{"a": "Na", "b": "Cs", "c": "K"}']) == 0
    rows = list(csv.DictReader(open(table)))
    assert len(rows) == 4 and all(r["note"] == "no atoms of Cs" for r in rows)


def test_the_shared_space_is_read_row_block_by_row_block_with_the_numbers_of_the_arrays(tmp_path):
    """``shared_space`` hands the analyses each model's compared rows unread (``stages.common.Rows``): blocks,
    index arrays and the whole give the masked store's rows, and the audit's consensus and the analogies' element
    vectors computed block by block from them equal those from the arrays in memory, exactly."""
    from platonic.stages.common import Rows, shared_space

    structure_index, z, features = element_clusters(5, 40, [3, 11, 19, 8], 6, 0.2)
    raw = {m: features @ rotation(seed, 6) for m, seed in (("a", 1), ("b", 2), ("c", 3))}
    paths = write_study(tmp_path, raw, z, structure_index, {}, np.arange(0, len(z), 9))
    anchors = open_store(paths["anchors"]).load()
    keep = np.ones(len(z), bool)
    keep[::4] = False
    anchors["compared"] = ("atom", keep)
    write_store(anchors, tmp_path / "some.zarr")
    valid, lazy, _, _ = shared_space(str(tmp_path / "some.zarr"), [str(p) for p in paths["projections"]])
    np.testing.assert_array_equal(valid, keep)
    arrays = {m: open_store(p)["coordinate"].values[keep] for m, p in zip(raw, paths["projections"], strict=True)}
    for m, rows in lazy.items():
        assert isinstance(rows, Rows) and rows.shape == arrays[m].shape and len(rows) == keep.sum()
        np.testing.assert_array_equal(rows[3:17], arrays[m][3:17])
        np.testing.assert_array_equal(rows[np.array([0, 5, 9])], arrays[m][[0, 5, 9]])
        np.testing.assert_array_equal(np.asarray(rows), arrays[m])
    np.testing.assert_array_equal(audit.consensus_distances(lazy, chunk=7), audit.consensus_distances(arrays, chunk=7))
    for m in raw:
        for got, expected in zip(arithmetic.element_vectors(lazy[m], z[keep], chunk=5),
                                 arithmetic.element_vectors(arrays[m], z[keep], chunk=5), strict=True):  # fmt: skip
            np.testing.assert_array_equal(got, expected)
