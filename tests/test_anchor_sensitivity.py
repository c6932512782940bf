"""Anchor sensitivity: the anchor space's headline agreement against the number of anchors and their choice, on a
synthetic study run through the anchors, project and anchor-sensitivity stages."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import xarray as xr
from analysis_stores import rotation, write_study

from platonic.cli import main
from platonic.compare import anchor_sensitivity as sensitivity
from platonic.compare.headline import headline_rows, pair_groups
from platonic.compare.pair_means import group_mean, pair_values
from platonic.compare.similarity import pairwise_similarity
from platonic.settings import SimilaritySettings
from platonic.spaces import unit_space
from platonic.store import open_store, write_store

SIMILARITY = {"atoms": "unique", "weights": "multiplicity", "k": 4, "lfre_k": 6, "subsample": 40, "queries": 30,
              "bootstrap": 12, "permutations": 2, "threads": 2,
              "metrics": ["linear_cka", "debiased_cka", "mutual_knn", "cknna", "svcca", "gfre", "lfre"]}  # fmt: skip
SELECTION = {"reference_model": "alpha", "n": 12, "method": "direct", "seed": 3, "atoms": "unique"}
FAMILIES = {"alpha": "one", "alpha-turned": "one", "beta": "two", "gamma": "three", "noise": "control"}
NUMBERS = ("mean", "ci_low", "ci_high", "standard_error", "chance")


def _study(tmp_path, seed=0, n_structures=30, left_out=False, selection=SELECTION):
    """Five models of 90-odd atoms in 30 structures, two atoms of a structure often one orbit (symmetry copies):
    alpha, alpha turned by a rotation (same family), beta and gamma (two other families, from alpha's latent rows)
    and a control of noise; the anchors stage's store on alpha and every model's projection. ``left_out``: beta did
    not embed two structures without anchor atoms; ``selection``: the anchors section. Returns the paths."""
    rng = np.random.default_rng(seed)
    structure_index = np.repeat(np.arange(n_structures), rng.integers(2, 5, n_structures))
    n = len(structure_index)
    first = np.searchsorted(structure_index, structure_index)  # each atom's structure's first atom
    orbit = np.where((np.arange(n) == first + 1) & (rng.random(n) < 0.5), first, np.arange(n))
    multiplicity = np.bincount(orbit, minlength=n)[orbit]
    latent = rng.normal(size=(n, 4))
    alpha = np.tanh(latent @ rng.normal(size=(4, 8)) + 0.3 * rng.normal(size=(n, 8)))
    raw = {
        "alpha": alpha,
        "alpha-turned": (alpha @ rotation(1, 8)) * rng.uniform(0.5, 2.0, size=(n, 1)),  # same rows' cosines
        "beta": np.tanh(latent @ rng.normal(size=(4, 6)) + 0.5 * rng.normal(size=(n, 6))),
        "gamma": latent @ rng.normal(size=(4, 7)) + 0.8 * rng.normal(size=(n, 7)),
        "noise": rng.normal(size=(n, 5)),
    }
    paths = write_study(tmp_path, raw, rng.choice([3, 8, 14], size=n), structure_index, {}, np.arange(2))
    structures = open_store(paths["structures"]).load()
    structures["orbit"] = ("atom", orbit)
    structures["multiplicity"] = ("atom", multiplicity)
    structures.attrs["symprec"] = 0.01
    write_store(structures, paths["structures"])
    for path in paths["embeddings"]:
        store = open_store(path).load()
        store.attrs["model_family"] = FAMILIES[store.attrs["model"]]
        write_store(store, path)
    paths["anchors"] = tmp_path / "anchors.zarr"
    assert main(["anchors", str(paths["anchors"]), "--structures", str(paths["structures"]), "--embedding",
                 str(paths["embeddings"][0]), "--settings", json.dumps(selection)]) == 0  # fmt: skip
    if left_out:
        anchored = np.unique(structure_index[open_store(paths["anchors"])["anchor_atom"].values])
        missing = np.isin(structure_index, np.setdiff1d(np.arange(n_structures), anchored)[:2])
        store = open_store(paths["embeddings"][2]).load()  # beta
        store["valid"] = ("atom", ~missing)
        store["embedding"] = store["embedding"].where(store["valid"])
        write_store(store, paths["embeddings"][2])
    paths["projections"] = []
    for path in paths["embeddings"]:
        paths["projections"].append(tmp_path / f"projected/{open_store(path).attrs['model']}.zarr")
        assert main(["project", str(path), str(paths["anchors"]), str(paths["projections"][-1])]) == 0
    return paths


def _argv(tmp_path, paths, settings: dict, similarity=SIMILARITY, selection=SELECTION) -> list[str]:
    """The anchor-sensitivity stage's command line, its table ``sensitivity.csv`` in ``tmp_path``."""
    return ["anchor-sensitivity", str(tmp_path / "sensitivity.csv"), "--structures", str(paths["structures"]),
            "--embeddings", *map(str, paths["embeddings"]), "--anchors", str(paths["anchors"]), "--controls", "noise",
            "--settings", json.dumps(settings), "--selection", json.dumps(selection),
            "--similarity", json.dumps(similarity)]  # fmt: skip


def _run(tmp_path, paths, settings: dict, similarity=SIMILARITY, figure=False, selection=SELECTION) -> list[dict]:
    """The anchor-sensitivity stage through the CLI; its table's rows (strings, as written)."""
    table = tmp_path / "sensitivity.csv"
    argv = _argv(tmp_path, paths, settings, similarity, selection)
    if figure:
        argv += ["--figure", str(tmp_path / "sensitivity.png"), "--also", "svg"]
    assert main(argv) == 0
    if figure:
        assert (tmp_path / "sensitivity.png").stat().st_size > 0 and (tmp_path / "sensitivity.svg").exists()
    with open(table) as handle:
        return list(csv.DictReader(handle))


def _fan_in_jobs(tmp_path, paths) -> xr.Dataset:
    """The similarity store of the workflow's fan-in jobs (summarise, compare-pair, gather) through the CLI."""
    options = ["--settings", json.dumps(SIMILARITY), "--anchors", str(paths["anchors"])]
    models = list(FAMILIES)
    stores = {m: (str(e), str(p)) for m, e, p in zip(models, paths["embeddings"], paths["projections"], strict=True)}
    summaries = {m: str(tmp_path / f"summaries/{m}.zarr") for m in models}
    for model, (embedding, projection) in stores.items():
        assert main(["summarise", summaries[model], "--embedding", embedding, "--projection", projection,
                     *options]) == 0  # fmt: skip
    pairs = []
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            pairs.append(str(tmp_path / f"pairs/{a}__{b}.zarr"))
            assert main(["compare-pair", pairs[-1], "--embeddings", stores[a][0], stores[b][0],
                         "--projections", stores[a][1], stores[b][1], "--summaries", summaries[a], summaries[b],
                         *options]) == 0  # fmt: skip
    out = tmp_path / "similarity.zarr"
    assert main(["gather", str(out), str(tmp_path / "similarity.csv"), "--summaries", *summaries.values(),
                 "--pairs", *pairs, "--controls", "noise", *options]) == 0  # fmt: skip
    return open_store(out).load()


def _stored(paths, spaces: dict) -> tuple:
    """The similarity store's rows of the compared atoms, as the fan-in reads them: ``{space: {model: rows}}``
    of each of ``spaces`` ("raw", "anchor", "unit") and the pairwise_similarity of them with the study's settings,
    control and family marked."""
    anchors = open_store(paths["anchors"])
    keep = anchors["compared"].values.astype(bool)
    embeddings = [open_store(p) for p in paths["embeddings"]]
    raw = {s.attrs["model"]: s["embedding"].values[keep] for s in embeddings}
    projected = [open_store(p) for p in paths["projections"]]
    features = {
        "raw": raw,
        "unit": {m: unit_space(x).x for m, x in raw.items()},  # what spaces.model_spaces gives the fan-in
        "anchor": {s.attrs["model"]: s["coordinate"].values[keep] for s in projected},
    }
    ids = np.array([str(i) for i in embeddings[0]["structure_id"].values[keep]], dtype=object)
    ds = pairwise_similarity(
        {space: features[space] for space in spaces},
        structure_index=np.unique(ids, return_inverse=True)[1],
        settings=SimilaritySettings.from_mapping(SIMILARITY),
        weights=anchors["multiplicity"].values[keep].astype(float),
    )
    ds["control"] = ("model", np.array([m == "noise" for m in raw]))
    ds["family"] = ("model", np.array([FAMILIES[m] for m in raw]))
    return ds


@pytest.mark.slow
def test_the_configured_direct_row_is_the_headline_of_the_stored_anchor_space_bit_for_bit(tmp_path):
    """At the configured anchors (DIRECT, anchors.n) the table's rows are the headline's anchor-space rows of the
    similarity store that the fan-in's jobs gather from the anchors and project stages' stores, with every configured
    similarity metric (the sensitivity computes only linear CKA and mutual k-NN): mean, interval, standard error and
    chance level, to the last bit through the CSV. One model left out two structures: its pairs are compared on
    fewer atoms, in the jobs and here, and no anchor set of the sensitivity holds an atom it did not embed."""
    paths = _study(tmp_path, left_out=True)
    rows = _run(tmp_path, paths, {"n_anchors": [5, 30], "random_seeds": 2})
    configured = [r for r in rows if r["configured"] == "True"]
    assert {(r["method"], r["n_anchors"], r["seed"]) for r in configured} == {("direct", "12", "")}
    gathered = _fan_in_jobs(tmp_path, paths)
    assert gathered["pair_atoms"].values.min() < gathered["pair_atoms"].values.max()
    expected = [r for r in headline_rows(gathered) if r["space"] == "anchor"]
    assert len(expected) == len(configured) == 2 * 3  # two metrics, three groups with pairs
    by_key = {(r["metric"], r["group"]): r for r in configured}
    for row in expected:
        got = by_key[row["metric"], row["group"]]
        assert int(got["n_pairs"]) == row["n_pairs"]
        for name in NUMBERS:
            assert float(got[name]) == row[name], (row["metric"], row["group"], name)
    # the anchor sets of other K and methods are other numbers
    other = [r for r in rows if r["space"] == "anchor" and r["n_anchors"] == "5" and r["method"] == "direct"]
    assert all(float(r["mean"]) != by_key[r["metric"], r["group"]]["mean"] for r in other)


def test_direct_starts_from_the_configured_threshold_everywhere(tmp_path, capsys):
    """anchors.threshold_init reaches the anchors stage and the sensitivity's DIRECT: the stage re-chooses the
    configured set from it and finds the stored one; from maml's default 0.5 DIRECT picks another set here, and the
    same store is then refused as out of date."""
    from platonic.anchors import direct_sampling

    selection = {**SELECTION, "threshold_init": 0.05}
    paths = _study(tmp_path, selection=selection)
    stored = open_store(paths["anchors"])
    assert stored.attrs["threshold_init"] == 0.05
    alpha = open_store(paths["embeddings"][0])["embedding"].values
    pool = np.flatnonzero(stored["compared"].values)
    np.testing.assert_array_equal(
        stored["anchor_atom"].values, pool[direct_sampling(alpha[pool], 12, threshold_init=0.05)]
    )
    assert not np.array_equal(stored["anchor_atom"].values, pool[direct_sampling(alpha[pool], 12)])
    rows = _run(tmp_path, paths, {"n_anchors": [5], "methods": ["direct"]}, selection=selection)
    assert {(r["method"], r["n_anchors"]) for r in rows if r["configured"] == "True"} == {("direct", "12")}
    assert main(_argv(tmp_path, paths, {"n_anchors": [5], "methods": ["direct"]})) == 2
    assert "holds other anchors than the anchors section chooses; re-run anchors" in capsys.readouterr().err


def test_given_anchors_are_the_configured_row_beside_the_chosen_ones(tmp_path, capsys):
    """With anchors.method indices the configured row is the given set (method ``indices`` at anchors.n), beside
    DIRECT and the random draws chosen at every K. Here the given atoms are the random draw of seed 3 (the anchor
    store made by the random method, its attrs as the indices route writes them), so the given row equals that
    draw's row at K = 12 to the last bit and differs from DIRECT's; an index list other than the store's is refused."""
    from platonic.anchor_indices import indices_sha256

    paths = _study(tmp_path, selection={**SELECTION, "method": "random"})
    store = open_store(paths["anchors"]).load()
    given = [int(i) for i in store["anchor_atom"].values]
    store.attrs.update(method="indices", indices_sha256=indices_sha256(given))
    write_store(store, paths["anchors"])
    selection = {**SELECTION, "method": "indices", "indices": given}
    settings = {"n_anchors": [5], "methods": ["direct", "random"], "random_seeds": 2}
    rows = _run(tmp_path, paths, settings, selection=selection, figure=True)
    configured = {(r["metric"], r["group"]): r for r in rows if r["configured"] == "True"}
    assert {(r["method"], r["n_anchors"], r["seed"]) for r in configured.values()} == {("indices", "12", "")}
    assert len(configured) == 6
    for method, seed in (("random", "3"), ("direct", "")):
        at_12 = [r for r in rows if (r["method"], r["n_anchors"], r["seed"]) == (method, "12", seed)]
        assert len(at_12) == 6
        for row in at_12:
            same = all(row[name] == configured[row["metric"], row["group"]][name] for name in NUMBERS)
            assert same == (method == "random"), (method, row["metric"], row["group"])
    assert main(_argv(tmp_path, paths, settings, selection={**selection, "indices": given[1:], "n": 11})) == 2
    assert "holds other anchors than anchors.indices gives; re-run anchors" in capsys.readouterr().err


def test_the_unit_line_is_the_fan_in_unit_space(tmp_path):
    """The unit rows are the fan-in's unit space (``spaces.unit_space`` of the stored rows) group means, bit for
    bit; the same-family pair (alpha and alpha turned) agrees exactly in linear CKA there."""
    paths = _study(tmp_path)
    rows = _run(tmp_path, paths, {"n_anchors": [5], "methods": ["direct"]}, figure=True)
    ds = _stored(paths, ("unit",))
    unit = {(r["metric"], r["group"]): r for r in rows if r["space"] == "unit"}
    assert len(unit) == 6
    for metric in ("linear_cka", "mutual_knn"):
        for group, pairs in pair_groups(ds).items():
            mean, _, chance = group_mean(pair_values(ds, metric, "unit", pairs))
            assert float(unit[metric, group]["mean"]) == mean
            assert float(unit[metric, group]["chance"]) == chance
    assert float(unit["linear_cka", "within family"]["mean"]) == pytest.approx(1.0, abs=1e-6)


def test_every_candidate_as_anchors_closed_forms(tmp_path):
    """K past the candidates is capped at them, where every method picks every candidate: the random draws'
    range shrinks to a point and equals DIRECT; the anchor space is then each model's cosine Gram matrix on the
    compared atoms, whose linear CKA (uniform weights) is the kernel CKA of the squared Gram matrices; a rotated,
    rescaled copy of a model agrees with it exactly (CKA and mutual k-NN 1) at every K and method."""
    paths = _study(tmp_path)
    similarity = {**SIMILARITY, "weights": "uniform"}
    rows = _run(tmp_path, paths, {"n_anchors": [4, 10_000], "random_seeds": 3}, similarity=similarity)
    anchors = open_store(paths["anchors"])
    keep = anchors["compared"].values.astype(bool)
    n = int(keep.sum())
    assert sorted({int(r["n_anchors"]) for r in rows if r["space"] == "anchor"}) == [4, 12, n]
    at_all = [r for r in rows if r["space"] == "anchor" and int(r["n_anchors"]) == n]
    for r in at_all:
        direct = next(d for d in at_all if (d["metric"], d["group"], d["method"]) == (r["metric"], r["group"],
                      "direct"))  # fmt: skip
        if r["method"] == "random" and r["seed"] == "":  # the mean of three equal numbers, to rounding
            assert r["n_seeds"] == "3" and float(r["seeds_min"]) == float(r["seeds_max"]) == float(direct["mean"])
            assert float(r["mean"]) == pytest.approx(float(direct["mean"]), rel=1e-15)
        else:  # every draw picks every candidate: the same anchor space
            assert float(r["mean"]) == float(direct["mean"])
    within = [r for r in rows if r["space"] == "anchor" and r["group"] == "within family"]
    assert len(within) == 2 * 3 * (1 + 3 + 1 + 1)  # metrics x K x (direct, random draws, their mean, fp)
    for r in within:  # alpha and alpha turned are the family's only pair
        assert float(r["mean"]) == pytest.approx(1.0, abs=1e-5), r

    def cosines(model):
        x = open_store(paths["embeddings"][list(FAMILIES).index(model)])["embedding"].values[keep].astype(float)
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        return u @ u.T

    def kernel_cka(a, b):
        h = np.eye(n) - 1.0 / n
        ka, kb = h @ a @ a.T @ h, h @ b @ b.T @ h
        return np.sum(ka * kb) / np.sqrt(np.sum(ka * ka) * np.sum(kb * kb))

    grams = {m: cosines(m) for m in FAMILIES}
    trained = [m for m in FAMILIES if m != "noise"]
    across = [(a, b) for i, a in enumerate(trained) for b in trained[i + 1 :] if FAMILIES[a] != FAMILIES[b]]
    expected = np.mean([kernel_cka(grams[a], grams[b]) for a, b in across])
    direct = next(r for r in at_all if (r["metric"], r["group"], r["method"]) == ("linear_cka", "across families",
                  "direct"))  # fmt: skip
    assert float(direct["mean"]) == pytest.approx(expected, rel=1e-5)


def test_anchor_counts_and_draws():
    assert sensitivity.anchor_counts([10, 25, 400], 100, 300) == [10, 25, 100, 300]
    assert sensitivity.anchor_counts([10], 10, 5) == [5]
    draws = sensitivity.anchor_draws(["direct", "random", "farthest-point"], [10, 20], seed=7, random_seeds=2)
    assert draws == [("direct", 10, None), ("random", 10, 7), ("random", 10, 8), ("farthest-point", 10, 7),
                     ("direct", 20, None), ("random", 20, 7), ("random", 20, 8), ("farthest-point", 20, 7)]  # fmt: skip


def test_the_reading_states_the_numbers():
    row = {"space": "anchor", "metric": "linear_cka", "group": "across families", "n_pairs": 4, "ci_low": 0.0,
           "ci_high": 1.0, "chance": 0.1, "configured": False, "standard_error": 0.1}  # fmt: skip
    rows = [
        {**row, "space": "unit", "method": "", "n_anchors": "", "seed": "", "n_seeds": 1, "mean": 0.8,
         "ci_low": 0.75, "ci_high": 0.85, "seeds_min": np.nan, "seeds_max": np.nan},
        *({**row, "method": "direct", "n_anchors": k, "seed": "", "n_seeds": 1, "mean": m, "seeds_min": np.nan,
           "seeds_max": np.nan} for k, m in ((10, 0.5), (100, 0.78))),
        *({**row, "method": "random", "n_anchors": k, "seed": "", "n_seeds": 3, "mean": m, "seeds_min": lo,
           "seeds_max": hi} for k, m, lo, hi in ((10, 0.45, 0.4, 0.48), (100, 0.79, 0.77, 0.8))),
    ]  # fmt: skip
    assert sensitivity.reading(rows) == (
        "across families: linear CKA: DIRECT 0.50 at K=10, 0.78 at K=100 vs unit 0.80 (approaches it; inside its"
        " interval); DIRECT above all 3 random draws at 1 of 2 K, below all at 0, within their range at 1."
    )
