"""The protocol ladder and the two choices it needs from the fan-in: k-NN by the raw inner product, and mutual k-NN
on a seeded subsample (the reference study's protocol)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from platonic.compare import fan_in
from platonic.compare.headline import pair_groups
from platonic.compare.ladder import LADDER_METRICS, ladder_rows, rungs
from platonic.compare.neighbours import nearest_neighbours, unit_rows
from platonic.compare.pair_means import group_mean, pair_values
from platonic.compare.similarity import pairwise_similarity
from platonic.settings import SimilaritySettings
from platonic.spaces import SPACES, model_spaces


def _rows(seed=0, n=80, d=6):
    rng = np.random.default_rng(seed)
    # rows of very different lengths: the inner product and the cosine disagree on them
    return rng.normal(size=(n, d)) * rng.uniform(0.2, 5.0, size=(n, 1))


def test_inner_product_on_unit_rows_is_cosine():
    x = _rows()
    by_cosine = nearest_neighbours(x, 7, "exact")
    assert np.array_equal(nearest_neighbours(unit_rows(x), 7, "exact", similarity="inner_product"), by_cosine)


def test_inner_product_on_raw_rows_matches_brute_force():
    x = _rows(1)
    gram = x @ x.T
    np.fill_diagonal(gram, -np.inf)  # never a row's own neighbour
    expected = np.argsort(-gram, axis=1, kind="stable")[:, :7]
    found = nearest_neighbours(x, 7, "exact", similarity="inner_product")
    assert np.array_equal(found, expected)
    assert not np.array_equal(found, nearest_neighbours(x, 7, "exact"))  # the choice matters on these rows
    with pytest.raises(ValueError, match="unknown neighbour similarity"):
        nearest_neighbours(x, 3, similarity="manhattan")


def test_knn_draw_is_the_reference_draw():
    torch = pytest.importorskip("torch")
    torch.manual_seed(42)
    expected = torch.randperm(2500)[:1000].numpy()
    assert np.array_equal(fan_in.knn_draw(2500, 1000, 42), expected)
    assert np.array_equal(fan_in.knn_draw(300, 1000, 42), torch.randperm(300, generator=torch.manual_seed(42)))


def _study(seed=3, n_structures=40):
    """Four models (two families, one control) on atoms of ``n_structures`` structures, every space."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_structures), rng.integers(3, 8, n_structures))
    base = rng.normal(size=(len(groups), 8)) * rng.uniform(0.5, 3.0, size=(len(groups), 1))
    raw = {
        "a1": base @ rng.normal(size=(8, 10)) + 0.3 * rng.normal(size=(len(groups), 10)),
        "a2": base @ rng.normal(size=(8, 12)) + 0.3 * rng.normal(size=(len(groups), 12)),
        "b1": np.tanh(base) @ rng.normal(size=(8, 9)) + 0.5 * rng.normal(size=(len(groups), 9)),
        "ctrl": rng.normal(size=(len(groups), 5)),
    }
    anchors = rng.choice(len(groups), size=12, replace=False)
    spaces = {space: {} for space in SPACES}
    for m, x in raw.items():
        anchor = unit_rows(x) @ unit_rows(x[anchors]).T
        for space, values in model_spaces(x, anchor).items():
            spaces[space][m] = values
    return spaces, groups


def _mark(ds):
    ds["control"] = ("model", np.array([m == "ctrl" for m in ds.model.values]))
    ds["family"] = ("model", np.array(["a", "a", "b", "c"]))
    return ds


def test_subsample_rung_counts_only_the_subsample():
    spaces, groups = _study()
    settings = SimilaritySettings(
        metrics=("mutual_knn",), k=5, bootstrap=8, permutations=2, knn_subsample=60, knn_similarity="inner_product"
    )
    ds = pairwise_similarity(spaces, groups, settings)
    rows = fan_in.knn_draw(len(groups), 60, settings.knn_subsample_seed)
    x, y = spaces["raw"]["a1"].x[rows], spaces["raw"]["b1"].x[rows]
    gram_x, gram_y = x @ x.T, y @ y.T
    np.fill_diagonal(gram_x, -np.inf)
    np.fill_diagonal(gram_y, -np.inf)
    nx, ny = (np.argsort(-g, axis=1, kind="stable")[:, :5] for g in (gram_x, gram_y))
    shared = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(nx, ny, strict=True)])
    value = ds["similarity"].sel(metric="mutual_knn", space="raw", model_a="a1", model_b="b1").item()
    assert value == pytest.approx(shared, abs=1e-12)
    chance = ds["chance"].sel(metric="mutual_knn", space="raw", model_a="a1", model_b="b1").item()
    assert np.isfinite(chance) and chance < value
    assert np.isfinite(ds["ci_low"].sel(metric="mutual_knn", space="raw", model_a="a1", model_b="b1").item())


def test_configured_rung_is_the_fan_in():
    """The rung with the configured settings gives the fan-in's numbers (every metric computed) exactly."""
    spaces, groups = _study()
    settings = SimilaritySettings(k=5, lfre_k=6, bootstrap=10, permutations=2, subsample=50, queries=50)
    full = _mark(pairwise_similarity(spaces, groups, settings))
    ladder = []
    for name, rung in rungs(settings):
        # every synthetic atom is its own orbit: "all" and "unique" are the same atoms here
        stores = {m: _mark(pairwise_similarity(spaces, groups, dataclasses.replace(rung, metrics=(m,))))
                  for m in LADDER_METRICS}  # fmt: skip
        ladder.append((name, rung, stores))
    rows = ladder_rows(ladder, settings)
    configured = [r for r in rows if r["configured"]]
    assert {r["step"] for r in configured} == {"one per orbit"}
    assert [name for name, _ in rungs(settings)][0] == "Li & Walsh"
    checked = 0
    for row in configured:
        if row["space"] not in SPACES:
            continue
        pairs = pair_groups(full)[row["group"]]
        mean, replicates, chance = group_mean(pair_values(full, row["metric"], row["space"], pairs))
        assert row["mean"] == mean and row["chance"] == chance
        low, high = np.percentile(replicates, (2.5, 97.5)) - (replicates.mean() - mean)
        assert row["ci_low"] == pytest.approx(low, abs=1e-12) and row["ci_high"] == pytest.approx(high, abs=1e-12)
        checked += 1
    assert checked == len(LADDER_METRICS) * len(SPACES) * 3
    # mutual k-NN in the unit space equals the raw space's under cosine, not under the raw inner product
    by_step = {(r["step"], r["metric"], r["space"], r["group"]): r["mean"] for r in rows}
    assert (
        by_step["cosine", "mutual_knn", "unit", "within family"]
        == by_step["cosine", "mutual_knn", "raw", "within family"]
    )
    # the step's change is this rung minus the one before
    assert by_step["every atom", "mutual_knn", "anchor", "across families"] - by_step[
        "cosine", "mutual_knn", "anchor", "across families"
    ] == pytest.approx(
        next(r["change"] for r in rows if (r["step"], r["metric"], r["space"], r["group"]) ==
             ("every atom", "mutual_knn", "anchor", "across families"))
    )  # fmt: skip


def test_defaults_keep_the_fan_in():
    settings = SimilaritySettings()
    assert settings.knn_similarity == "cosine" and settings.knn_subsample is None
    c = fan_in.Comparison.build(50, np.repeat(np.arange(10), 5), settings=settings)
    assert c.knn_rows is None and c.knn_permutations == []


def test_stage_writes_the_table_and_the_figure(tmp_path):
    import csv

    from analysis_stores import write_study

    from platonic.cli import main
    from platonic.store import open_store, write_store

    spaces, groups = _study(n_structures=30)
    paths = write_study(
        tmp_path,
        {m: f.x for m, f in spaces["raw"].items()},
        np.full(len(groups), 8),
        groups,
        {},
        np.arange(0, len(groups), 9),
    )
    structures = open_store(paths["structures"]).load()
    structures["orbit"] = ("atom", np.arange(len(groups)))  # every atom its own orbit
    paths["structures"] = write_store(structures, tmp_path / "structures-orbits.zarr")
    anchors = open_store(paths["anchors"]).load()
    anchors.attrs["atoms"] = "unique"
    paths["anchors"] = write_store(anchors, tmp_path / "anchors-unique.zarr")
    table, figure = tmp_path / "ladder.csv", tmp_path / "ladder.png"
    settings = '{"k": 5, "bootstrap": 6, "permutations": 2, "knn_subsample": null}'
    argv = ["ladder", str(table), "--figure", str(figure), "--also", "svg", "--structures",
            str(paths["structures"]), "--embeddings", *map(str, paths["embeddings"]), "--projections",
            *map(str, paths["projections"]), "--anchors", str(paths["anchors"]), "--controls", "ctrl",
            "--settings", settings]  # fmt: skip
    assert main(argv) == 0
    with open(table) as handle:
        rows = list(csv.DictReader(handle))
    # 5 rungs x 2 metrics x (3 spaces + 3 steps) x (within family, model vs control: the stores name no families)
    assert len(rows) == 5 * 2 * 6 * 2
    assert {r["step"] for r in rows if r["configured"] == "True"} == {"one per orbit"}
    assert {r["knn_subsample"] for r in rows if r["rung"] == "0"} == {"1000"}
    assert figure.stat().st_size > 10_000 and figure.with_suffix(".svg").exists()
