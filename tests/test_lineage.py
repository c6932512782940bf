"""Training data vs architecture: pair groups from model metadata, group means and their differences with intervals
from the shared bootstrap replicates, the figure and the CLI's table."""

import csv
import json

import numpy as np
import pytest

from platonic.cli import main
from platonic.compare.lineage import GROUPS, lineage_rows, pair_groups, pair_rows, read_metadata
from platonic.compare.similarity import pairwise_similarity
from platonic.settings import SimilaritySettings

# a: architecture, t: training data; "unknown" has no architecture, "untrained" saw no data, "ctrl" is a control
METADATA = {
    "a1": {"architecture": "A", "training_data": ["MPtrj"]},
    "a2": {"architecture": "A", "training_data": ["MPtrj"], "fidelity": "PBE"},
    "a3": {"architecture": "A", "training_data": ["OMat24"]},
    "b1": {"architecture": "B", "training_data": ["MPtrj"]},
    "b2": {"architecture": "B", "training_data": ["sAlex", "MPtrj"]},
    "unknown": {"architecture": None, "training_data": ["MPtrj"]},
    "untrained": {"architecture": "A", "training_data": []},
    "ctrl": {"architecture": None, "training_data": [], "control": True},
}
MODELS = list(METADATA)
EXPECTED = {
    "both": [("a1", "a2")],
    "architecture only": [("a1", "a3"), ("a2", "a3"), ("b1", "b2")],
    "training data only": [("a1", "b1"), ("a2", "b1")],
    "neither": [("a1", "b2"), ("a2", "b2"), ("a3", "b1"), ("a3", "b2")],
}


def _named(pairs):
    return [(MODELS[i], MODELS[j]) for i, j in pairs]


def test_pairs_fall_in_the_four_groups_and_controls_untrained_and_unknowns_are_left_out():
    grouped = pair_groups(MODELS, read_metadata(json.dumps(METADATA)))
    assert {g: _named(p) for g, p in grouped.groups.items()} == EXPECTED
    assert list(grouped.groups) == list(GROUPS)
    assert len(grouped.left_out["control"]) == 7  # ctrl with every other model
    # untrained with the five known trained models and with unknown (untrained comes first)
    assert _named(grouped.left_out["untrained"]) == [(m, "untrained") for m in ("a1", "a2", "a3", "b1", "b2")] + [
        ("unknown", "untrained")
    ]
    assert _named(grouped.left_out["unknown"]) == [(m, "unknown") for m in ("a1", "a2", "a3", "b1", "b2")]
    n = len(MODELS)
    assert sum(map(len, grouped.groups.values())) + sum(map(len, grouped.left_out.values())) == n * (n - 1) // 2
    # MPtrj vs MPtrj + sAlex: different training data that overlap
    assert set(_named(grouped.partial_overlap)) == {("a1", "b2"), ("a2", "b2"), ("b1", "b2")}


def test_the_store_marks_controls_and_a_model_without_metadata_is_unknown():
    metadata = read_metadata({m: METADATA[m] for m in ("a1", "a2", "b1")})
    grouped = pair_groups(["a1", "a2", "b1", "x"], metadata, control=[False, True, False, False])
    assert grouped.groups["training data only"] == [(0, 2)]  # a1|b1
    assert grouped.left_out["control"] == [(0, 1), (1, 2), (1, 3)]
    assert grouped.left_out["unknown"] == [(0, 3), (2, 3)]
    assert not any(grouped.groups[g] for g in ("both", "architecture only", "neither"))


TRAINED = ["a1", "a2", "a3", "b1", "b2", "ctrl"]


@pytest.fixture(scope="module")
def store():
    """Models of architecture A share one signal, B another, the training data a third (so pairs that share the
    data agree more than pairs that share the architecture); a directed metric (GFRE) included."""
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(60), 3)
    n = len(groups)
    arch = {"A": rng.normal(size=(n, 2)), "B": rng.normal(size=(n, 2))}
    data = {name: rng.normal(size=(n, 3)) for name in ("MPtrj", "OMat24", "sAlex")}
    raw = {}
    for model in TRAINED[:-1]:
        spec = METADATA[model]
        raw[model] = np.hstack([0.5 * arch[spec["architecture"]], 2 * sum(data[d] for d in spec["training_data"])])
        raw[model] = raw[model] + 0.5 * rng.normal(size=raw[model].shape)
    raw["ctrl"] = rng.normal(size=(n, 3))
    anchor = {m: np.tanh(x[:, :4]) for m, x in raw.items()}
    settings = SimilaritySettings(metrics=("linear_cka", "gfre"), bootstrap=40, permutations=2)
    ds = pairwise_similarity({"raw": raw, "anchor": anchor}, structure_index=groups, settings=settings)
    ds["control"] = ("model", np.array([m == "ctrl" for m in TRAINED]))
    ds.attrs.update(bootstrap=40, permutations=2)
    return ds


def _reference(ds, metric, space, pairs, directed=False):
    """The group mean, its interval and chance, computed here from the store's cells."""
    value = ds["similarity"].sel(metric=metric, space=space).values
    reps = ds["bootstrap_replicates"].sel(metric=metric, space=space).values
    chance = ds["chance"].sel(metric=metric, space=space).values
    index = [(TRAINED.index(a), TRAINED.index(b)) for a, b in pairs]
    if directed:
        v = [(value[i, j] + value[j, i]) / 2 for i, j in index]
        r = np.array([(reps[i, j] + reps[j, i]) / 2 for i, j in index])
        c = [(chance[i, j] + chance[j, i]) / 2 for i, j in index]
    else:
        v, c = [value[i, j] for i, j in index], [chance[i, j] for i, j in index]
        r = np.array([reps[i, j] for i, j in index])
    return float(np.mean(v)), r.mean(axis=0), float(np.mean(c)), np.array(v)


def _percentile_interval(replicates, mean):
    bias = replicates.mean() - mean
    return np.percentile(replicates, 2.5) - bias, np.percentile(replicates, 97.5) - bias


@pytest.mark.parametrize(("metric", "directed"), [("linear_cka", False), ("gfre", True)])
def test_group_means_intervals_and_differences_equal_an_independent_computation(store, metric, directed):
    metadata = read_metadata({m: METADATA[m] for m in TRAINED})
    rows = {(r["metric"], r["space"], r["group"]): r for r in lineage_rows(store, metadata)}
    for space in ("raw", "anchor"):
        means = {}
        for group in GROUPS:
            pairs = EXPECTED[group]
            mean, replicates, chance, values = _reference(store, metric, space, pairs, directed)
            row = rows[metric, space, group]
            assert row["kind"] == "group" and row["n_pairs"] == len(pairs)
            assert row["pairs"] == "; ".join(f"{a}|{b}" for a, b in pairs)
            assert row["mean"] == pytest.approx(mean, rel=1e-12)
            assert (row["median"], row["min"], row["max"]) == pytest.approx(
                (np.median(values), values.min(), values.max())
            )
            assert (row["ci_low"], row["ci_high"]) == pytest.approx(_percentile_interval(replicates, mean))
            assert row["standard_error"] == pytest.approx(replicates.std(ddof=1))
            assert row["chance"] == pytest.approx(chance)
            means[group] = mean, replicates
        difference = rows[metric, space, "training data only - architecture only"]
        (td, td_reps), (ar, ar_reps) = means["training data only"], means["architecture only"]
        assert difference["kind"] == "difference" and difference["mean"] == pytest.approx(td - ar)
        low, high = _percentile_interval(td_reps - ar_reps, td - ar)
        assert (difference["ci_low"], difference["ci_high"]) == pytest.approx((low, high))
        assert difference["differs"] == bool(low > 0 or high < 0)
        assert rows[metric, space, "architecture only"]["n_partial_overlap"] == 1  # b1|b2
    # by construction the shared training data dominates: the difference is far beyond its interval
    cka = rows["linear_cka", "raw", "training data only - architecture only"]
    assert cka["ci_low"] > 0.2 and cka["differs"] is True
    assert rows["gfre", "raw", "training data only - architecture only"]["ci_high"] < 0  # an error: lower = closer


@pytest.mark.parametrize(("metric", "directed"), [("linear_cka", False), ("gfre", True)])
def test_pair_rows_are_each_groups_pairs_read_from_the_store(store, metric, directed):
    rows = pair_rows(store, read_metadata({m: METADATA[m] for m in TRAINED}), metrics=[metric])
    assert {r["metric"] for r in rows} == {metric}
    for space in ("raw", "anchor"):
        cells = {name: store[name].sel(metric=metric, space=space).values for name in ("similarity", "ci_low",
                 "ci_high", "chance", "chance_sd", "bootstrap_replicates")}  # fmt: skip
        for group in GROUPS:
            got = [r for r in rows if (r["space"], r["group"]) == (space, group)]
            assert [(r["model_a"], r["model_b"]) for r in got] == EXPECTED[group]
            for row in got:
                i, j = TRAINED.index(row["model_a"]), TRAINED.index(row["model_b"])
                if not directed:  # one value per pair: the store's cell and interval
                    expected = {name: cells[name][i, j] for name in ("similarity", "ci_low", "ci_high", "chance",
                                                                     "chance_sd")}  # fmt: skip
                else:  # both directions averaged, the interval from the averaged replicates
                    both = {name: (cells[name][i, j] + cells[name][j, i]) / 2 for name in cells}
                    low, high = _percentile_interval(both["bootstrap_replicates"], both["similarity"])
                    expected = {**both, "ci_low": low, "ci_high": high}
                assert row["value"] == pytest.approx(expected["similarity"], rel=1e-12)
                for name in ("ci_low", "ci_high", "chance", "chance_sd"):
                    assert row[name] == pytest.approx(expected[name], rel=1e-12), name


def test_without_a_bootstrap_groups_have_values_but_no_intervals(store):
    plain = store.isel(replicate=slice(0, 0))
    rows = lineage_rows(plain, read_metadata({m: METADATA[m] for m in TRAINED}))
    grouped = [r for r in rows if r["kind"] == "group"]
    assert all(np.isfinite(r["mean"]) and np.isnan(r["ci_low"]) for r in grouped)
    assert all(r["differs"] == "" for r in rows if r["kind"] == "difference")


def test_the_figure_draws_an_empty_group_as_such(store, tmp_path):
    from platonic.figures import save_figure, training_vs_architecture

    metadata = read_metadata({m: METADATA[m] for m in TRAINED if m != "a2"})  # a1|a2 was the only "both" pair
    table = lineage_rows(store, metadata)
    pairs = pair_rows(store, metadata)
    fig = training_vs_architecture(table, pairs, store.attrs)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == 4  # two metrics x two spaces
    rows = {(r["metric"], r["space"], r["group"]): r for r in table}
    cells = [(m, s) for m in ("linear_cka", "gfre") for s in ("raw", "anchor")]
    for ax, (metric, space) in zip(panels, cells, strict=True):
        assert [t.get_text() for t in ax.texts if t.get_gid() == "no pairs"] == ["no pairs"]
        means = [c for c in ax.collections if c.get_gid() == "group mean"]
        drawn = [float(c.get_segments()[0][0, 1]) for c in means]
        expected = [rows[metric, space, g]["mean"] for g in ("architecture only", "training data only", "neither")]
        np.testing.assert_allclose(drawn, expected)
        difference = rows[metric, space, "training data only - architecture only"]
        assert f"{difference['mean']:+.2g}" in ax.get_title()
    assert "left out: 5 with a control representation, 4 with an unknown" in fig._suptitle.get_text()
    path = save_figure(fig, tmp_path / "lineage.png", also=(".svg",))
    assert path.stat().st_size > 20_000 and path.with_suffix(".svg").exists()


def test_the_cli_writes_the_table(store, tmp_path):
    from platonic.store import write_store

    path = write_store(store, tmp_path / "similarity.zarr")
    metadata = json.dumps({m: METADATA[m] for m in TRAINED})
    table, figure = tmp_path / "table.csv", tmp_path / "figure.png"
    assert main(["training-vs-architecture", str(path), str(table), "--figure", str(figure),
                 "--metadata", metadata, "--also", "svg"]) == 0  # fmt: skip
    with open(table) as handle:
        written = list(csv.DictReader(handle))
    expected = lineage_rows(store, read_metadata(metadata))
    assert len(written) == len(expected) == 2 * 2 * (4 + 5) + 3
    for got, want in zip(written, expected, strict=True):
        assert (got["metric"], got["space"], got["group"], got["pairs"]) == (
            want["metric"], want["space"], want["group"], want["pairs"]
        )  # fmt: skip
        if want["kind"] != "left out" and np.isfinite(want["mean"]):
            assert float(got["mean"]) == pytest.approx(want["mean"], rel=1e-12)
    left_out = {r["group"]: int(r["n_pairs"]) for r in written if r["kind"] == "left out"}
    assert left_out == {"control": 5, "untrained": 0, "unknown": 0}
    assert figure.stat().st_size > 20_000 and figure.with_suffix(".svg").exists()


def test_the_model_tree_colours_by_architecture_and_marks_training_data(store, tmp_path):
    from platonic.compare.model_space import linkage_and_mds
    from platonic.figures import MODEL_PALETTE, model_tree, save_figure

    # b2's architecture unknown here; the control's too, which the legend need not name
    metadata = read_metadata({**{m: METADATA[m] for m in TRAINED}, "b2": {"training_data": ["MPtrj", "sAlex"]},
                              "ctrl": {"control": True}})  # fmt: skip
    fig = model_tree(linkage_and_mds(store, "linear_cka"), metadata)
    trees = [ax for ax in fig.axes if "dendrogram" in ax.get_title()]
    maps = [ax for ax in fig.axes if "MDS" in ax.get_title()]
    colour = {"A": MODEL_PALETTE[0], "B": MODEL_PALETTE[1]}
    for tree in trees:
        for tick in tree.get_yticklabels():
            model = tick.get_text().removesuffix(" (control)")
            expected = colour[METADATA[model]["architecture"]] if model not in ("b2", "ctrl") else "0.7"
            assert tick.get_color() == expected
    for ax in maps:
        points = [c for c in ax.collections]
        assert len(points) == len(TRAINED)
        paths = [p.get_paths()[0].vertices.shape[0] for p in points]
        assert paths[0] == paths[1] == paths[3] != paths[2]  # MPtrj alike (circles), OMat24 another marker
        assert points[-1].get_facecolor().size == 0  # the control stays hollow
        texts = [t.get_text() for legend in [ax.get_legend(), *ax.artists] for t in legend.get_texts()]
        assert {"A", "B", "unknown", "MPtrj", "OMat24", "MPtrj + sAlex", "control (hollow)"} <= set(texts)
    assert "colour: architecture, marker: training data" in fig._suptitle.get_text()
    assert save_figure(fig, tmp_path / "tree.png").stat().st_size > 20_000
