import csv
import threading
from dataclasses import replace

import numpy as np
import pytest
from analysis_stores import element_clusters, rotation, write_study
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score

from platonic.analysis import transfer
from platonic.cli import main
from platonic.compare.bootstrap import structure_counts
from platonic.elements import periodic_group
from platonic.projection import anchor_projection
from platonic.settings import TransferSettings
from platonic.store import open_store


def test_the_group_target_puts_the_f_block_in_group_3():
    z = np.array([1, 2, 3, 6, 8, 18, 21, 26, 39, 57, 71, 72, 80, 89, 92, 103, 104, 118])
    expected = [1, 18, 1, 14, 16, 18, 3, 8, 3, 3, 3, 4, 12, 3, 3, 3, 4, 18]
    np.testing.assert_array_equal(periodic_group(z, f_block=3), expected)
    with pytest.raises(ValueError, match="1..118"):
        periodic_group(np.array([0, 5]), f_block=3)


def test_held_out_mask_keeps_every_structure_on_one_side():
    structure_index = np.repeat(np.arange(200), np.random.default_rng(1).integers(1, 9, 200))
    test = transfer.held_out_mask(structure_index, 0.25, seed=3)
    in_test = set(structure_index[test])
    in_train = set(structure_index[~test])
    assert in_test.isdisjoint(in_train) and len(in_test | in_train) == 200
    assert len(in_test) == 50
    np.testing.assert_array_equal(test, transfer.held_out_mask(structure_index, 0.25, seed=3))
    assert not np.array_equal(test, transfer.held_out_mask(structure_index, 0.25, seed=4))
    with pytest.raises(ValueError, match="between 0 and 1"):
        transfer.held_out_mask(structure_index, 1.0, seed=0)


def test_pool_by_structure_is_the_mean_per_structure():
    rng = np.random.default_rng(0)
    structure_index = np.array([0, 0, 2, 2, 2, 3])
    x = rng.normal(size=(6, 4)).astype(np.float32)
    pooled = transfer.pool_by_structure(x, structure_index, 5, chunk=4)
    np.testing.assert_allclose(pooled[0], x[:2].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(pooled[2], x[2:5].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(pooled[3], x[5], rtol=1e-6)
    assert np.isnan(pooled[1]).all() and np.isnan(pooled[4]).all()


def test_ridge_from_streamed_moments_equals_sklearn_and_lstsq():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) * [1, 2, 3, 4, 5, 6] + 10.0
    y = x @ rng.normal(size=(6, 2)) + rng.normal(size=(300, 2)) + 4.0
    head = transfer.fit_ridge(x, y, alpha=7.5)
    reference = Ridge(alpha=7.5).fit(x, y)
    np.testing.assert_allclose(head.coef, reference.coef_.T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(head.decision(x), reference.predict(x), rtol=1e-9)
    # no penalty: ordinary least squares with an intercept
    ols = transfer.fit_ridge(x, y[:, 0], alpha=0.0)
    design = np.hstack([x, np.ones((300, 1))])
    solution = np.linalg.lstsq(design, y[:, 0], rcond=None)[0]
    np.testing.assert_allclose(ols.coef[:, 0], solution[:-1], rtol=1e-8)
    np.testing.assert_allclose(ols.predict(x), design @ solution, rtol=1e-9)


def test_ridge_penalty_chosen_by_grouped_cross_validation_matches_explicit_refits():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(60), 3)
    x = rng.normal(size=(180, 8))
    y = x[:, 0] + 0.5 * rng.normal(size=180)
    rows = np.arange(180)
    relatives = (1e-3, 0.1, 10.0, 1000.0)
    head, chosen = transfer.select_ridge(x, y, rows, groups, relatives, folds=4, seed=0)
    # the same folds, refitted explicitly for every candidate
    unique = np.unique(groups)
    fold_of_row = (np.random.default_rng(0).permutation(len(unique)) % 4)[groups]
    scale = np.trace(np.cov(x.T, bias=True)) * len(x) / x.shape[1]
    errors = []
    for relative in relatives:
        sse = 0.0
        for f in range(4):
            fitted = transfer.fit_ridge(x[fold_of_row != f], y[fold_of_row != f], alpha=relative * scale)
            sse += np.sum((fitted.predict(x[fold_of_row == f]) - y[fold_of_row == f]) ** 2)
        errors.append(sse)
    assert chosen == relatives[int(np.argmin(errors))]
    np.testing.assert_allclose(head.predict(x), transfer.fit_ridge(x, y, alpha=chosen * scale).predict(x), rtol=1e-9)


def test_scores_match_sklearn():
    rng = np.random.default_rng(0)
    truth, prediction = rng.normal(size=50), rng.normal(size=50)
    got = transfer.scores(prediction, truth, classify=False)
    assert got["mae"] == pytest.approx(mean_absolute_error(truth, prediction))
    assert got["r2"] == pytest.approx(r2_score(truth, prediction))
    assert transfer.scores(np.array([1, 2, 3, 3]), np.array([1, 2, 2, 3]), classify=True)["accuracy"] == 0.75


def _rows_of_structures(n_structures, seed):
    """A small test set: 1-4 rows per structure, regression truth and predictions, class labels and predictions."""
    rng = np.random.default_rng(seed)
    structure = np.repeat(np.arange(n_structures), rng.integers(1, 5, n_structures))
    truth, prediction = rng.normal(size=len(structure)), rng.normal(size=len(structure))
    labels, guesses = rng.integers(0, 3, len(structure)), rng.integers(0, 3, len(structure))
    return structure, truth, prediction, labels, guesses


def test_bootstrap_from_structure_sums_equals_resampling_the_rows():
    structure, truth, prediction, labels, guesses = _rows_of_structures(15, seed=6)
    draws = structure_counts(15, 40, seed=2)
    rows_of = [np.flatnonzero(structure == s) for s in range(15)]
    for classify, p, t in ((False, prediction, truth), (True, guesses, labels)):
        sums = transfer.structure_sums(p, t, structure, 15, classify)
        fast = transfer.scores_of_sums(draws @ sums, classify)
        intervals = transfer.bootstrap_intervals(sums, draws, classify)
        for metric in ("accuracy",) if classify else ("mae", "r2"):
            naive = []
            for counts in draws:  # the drawn structures' rows, a structure drawn twice twice
                rows = np.concatenate([rows_of[s] for s in range(15) for _ in range(counts[s])])
                naive.append(transfer.scores(p[rows], t[rows], classify)[metric])
            np.testing.assert_allclose(fast[metric], naive, rtol=1e-12, atol=1e-14)
            se, low, high = intervals[metric]
            assert se == pytest.approx(np.std(naive, ddof=1), rel=1e-10)
            np.testing.assert_allclose([low, high], np.percentile(naive, [2.5, 97.5]), rtol=1e-10)
        # the metrics that do not apply to the target's kind have no interval
        other = ("mae", "r2") if classify else ("accuracy",)
        assert all(np.isnan(intervals[m]).all() for m in other)
    # no replicates: no interval
    assert np.isnan(transfer.bootstrap_intervals(sums, structure_counts(15, 0, seed=2), True)["accuracy"]).all()


def test_bootstrap_standard_error_of_a_mean_score_is_sd_over_root_n():
    rng = np.random.default_rng(8)
    n, replicates = 200, 4000
    truth, prediction = rng.normal(size=n), rng.normal(size=n) * 2.0  # one row per structure
    sums = transfer.structure_sums(prediction, truth, np.arange(n), n, classify=False)
    se = transfer.bootstrap_intervals(sums, structure_counts(n, replicates, seed=0), classify=False)["mae"][0]
    # the ideal bootstrap's standard error of a mean is the plug-in sd / sqrt(n); estimated from B replicates it
    # scatters by a relative 1 / sqrt(2 (B - 1)) ~ 1.1 %, so 5 % is more than four of those
    assert se == pytest.approx(np.std(np.abs(prediction - truth)) / np.sqrt(n), rel=0.05)
    correct = rng.random(n) < 0.7
    sums = transfer.structure_sums(correct.astype(int), np.ones(n, dtype=int), np.arange(n), n, classify=True)
    se = transfer.bootstrap_intervals(sums, structure_counts(n, replicates, seed=1), classify=True)["accuracy"][0]
    share = correct.mean()
    assert se == pytest.approx(np.sqrt(share * (1 - share) / n), rel=0.05)


@pytest.fixture(scope="module")
def rotated_study():
    """Model b is model a rotated; model c is a wider random linear map of a (a different width)."""
    structure_index, z, raw_a = element_clusters(
        seed=0, n_structures=240, elements=[3, 8, 11, 19, 26], width=12, noise=0.4
    )
    rng = np.random.default_rng(5)
    raw = {"a": raw_a, "b": raw_a @ rotation(1, 12), "c": raw_a @ rng.normal(size=(12, 20))}
    anchors = rng.choice(len(z), size=24, replace=False)
    anchor = {m: anchor_projection(x, x[anchors]) for m, x in raw.items()}
    pooled = transfer.pool_by_structure(anchor["a"], structure_index, 240)
    labels = {"energy": pooled @ rng.normal(size=24) + 0.01 * rng.normal(size=240)}
    return structure_index, z, raw, anchor, anchors, labels


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("head", ["ridge", "mlp"])
def test_a_rotated_copy_stitches_perfectly_in_the_anchor_space_only(rotated_study, head):
    structure_index, z, raw, anchor, _, labels = rotated_study
    settings = TransferSettings(heads=(head,), mlp_max_iter=200, mlp_hidden=(16,))
    ds = transfer.transfer_scores(
        {"raw": raw, "anchor": anchor}, structure_index, labels, {"element": z}, settings, threads=2
    )
    score = ds["score"].sel(head=head)
    for target, metric in (("energy", "r2"), ("energy", "mae"), ("element", "accuracy")):
        a_to_a = float(score.sel(space="anchor", target=target, metric=metric, source_model="a", target_model="a"))
        a_to_b = float(score.sel(space="anchor", target=target, metric=metric, source_model="a", target_model="b"))
        assert a_to_b == pytest.approx(a_to_a, rel=1e-4, abs=1e-6)
    r2 = score.sel(target="energy", metric="r2")
    assert float(r2.sel(space="anchor", source_model="a", target_model="a")) > (0.9 if head == "ridge" else 0.7)
    # raw space: b's columns are a's rotated, so a's head reads the wrong columns
    assert float(r2.sel(space="raw", source_model="a", target_model="b")) < 0.5
    # raw c is wider: undefined, with the reason; in the anchor space it is defined
    assert np.isnan(float(r2.sel(space="raw", source_model="a", target_model="c")))
    assert "widths differ (12 vs 20)" in str(ds["note"].sel(space="raw", source_model="a", target_model="c").item())
    assert np.isfinite(float(r2.sel(space="anchor", source_model="a", target_model="c")))
    assert int(ds["n_test"].sel(target="energy")) == 72  # 30 % of 240 structures


def test_every_transfer_score_carries_its_structure_bootstrap(rotated_study):
    structure_index, z, raw, anchor, _, labels = rotated_study
    spaces = {"raw": raw, "anchor": anchor}
    settings = TransferSettings(heads=("ridge",), bootstrap=60, seed=2)
    ds = transfer.transfer_scores(spaces, structure_index, labels, {"element": z}, settings, controls=("c",))
    assert ds.attrs["bootstrap"] == 60
    np.testing.assert_array_equal(ds["control"].sel(model=["a", "b", "c"]).values, [False, False, True])
    score = ds["score"].values
    for name in ("standard_error", "ci_low", "ci_high"):
        assert ds[name].dims == ds["score"].dims
        np.testing.assert_array_equal(np.isfinite(ds[name].values), np.isfinite(score))  # wherever there is a score
    finite = np.isfinite(score)
    low, high, se = (ds[name].values[finite] for name in ("ci_low", "ci_high", "standard_error"))
    assert (se >= 0).all() and (low <= score[finite]).all() and (score[finite] <= high).all()
    # b is a rotated a: a's head predicts the same on both, and every model pair of a target sees the same draws
    anchor_space = ds.sel(space="anchor", head="ridge")
    for name in transfer.ESTIMATES:
        a_to_a = anchor_space[name].sel(source_model="a", target_model="a").values
        a_to_b = anchor_space[name].sel(source_model="a", target_model="b").values
        np.testing.assert_allclose(a_to_b, a_to_a, rtol=1e-4, atol=1e-6)
    # the same seed draws the same replicates; no replicates: the same scores without intervals
    again = transfer.transfer_scores(spaces, structure_index, labels, {"element": z}, settings, controls=("c",))
    for name in transfer.ESTIMATES:
        np.testing.assert_array_equal(again[name].values, ds[name].values)
    off = transfer.transfer_scores(spaces, structure_index, labels, {"element": z}, replace(settings, bootstrap=0))
    np.testing.assert_array_equal(off["score"].values, score)
    assert all(np.isnan(off[name].values).all() for name in ("standard_error", "ci_low", "ci_high"))
    assert off.attrs["bootstrap"] == 0 and not off["control"].values.any()


def test_transfer_and_analogies_cli_on_synthetic_stores(tmp_path, rotated_study, capsys):
    structure_index, z, raw, _, anchors, labels = rotated_study
    paths = write_study(tmp_path, raw, z, structure_index, labels, anchors)
    common = ["--embeddings", *map(str, paths["embeddings"]), "--projections", *map(str, paths["projections"])]
    common += ["--anchors", str(paths["anchors"]), "--structures", str(paths["structures"])]
    out = tmp_path / "transfer.zarr"
    table = tmp_path / "transfer.csv"
    figure = ["--figure", str(tmp_path / "t.png")]
    assert main(["transfer", str(out), str(table), *common, *figure, "--seed", "1", "--controls", "c"]) == 0
    ds = open_store(out)
    assert list(ds["target"].values) == ["energy", "element", "group"]
    assert ds.attrs["bootstrap"] == 100  # null: similarity.bootstrap's default
    rows = list(csv.DictReader(open(table)))
    key = ("anchor", "energy", "r2", "c", "b")
    row = next(r for r in rows if (r["space"], r["target"], r["metric"], r["source_model"], r["target_model"]) == key)
    cell = dict(head="ridge", space="anchor", target="energy", metric="r2", source_model="c", target_model="b")
    assert float(row["value"]) == pytest.approx(float(ds["score"].sel(cell)))
    for name in ("standard_error", "ci_low", "ci_high"):
        assert float(row[name]) == pytest.approx(float(ds[name].sel(cell)))
    assert (row["source_control"], row["target_control"]) == ("True", "False")
    assert (tmp_path / "t.png").stat().st_size > 10_000
    # a target the structure store does not carry is named, with the config key
    assert main(["transfer", str(tmp_path / "x.zarr"), str(tmp_path / "x.csv"), *common, "--targets", "band_gap"]) == 2
    err = capsys.readouterr().err
    assert "'band_gap'" in err and "analysis.transfer.targets" in err and "energy" in err


def test_the_transfer_figure_sets_controls_apart(rotated_study):
    from platonic.figures import transfer_heatmaps

    structure_index, z, raw, anchor, _, labels = rotated_study
    settings = TransferSettings(heads=("ridge",), bootstrap=0)
    ds = transfer.transfer_scores(
        {"raw": raw, "anchor": anchor}, structure_index, labels, {}, settings, threads=1, controls=("a",)
    )
    fig = transfer_heatmaps(ds)
    first = fig.axes[0]
    assert [t.get_text() for t in first.get_yticklabels()] == ["b", "c", "a (control)"]
    # the cell (b -> a) is now at row 0, column 2: its number is a's column of b's head
    value = float(ds["score"].sel(head="ridge", space="raw", target="energy", metric="r2", source_model="b",
                                  target_model="a"))  # fmt: skip
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in first.texts}
    assert texts[0, 2] == f"{value:.2f}"
    panels = [ax for ax in fig.axes if ax.get_images()]
    for ax in panels:  # every cell in a's row or column: 2 * 3 - 1 of them
        assert sum(p.get_gid() == "control" for p in ax.patches) == 5
        assert sum(line.get_gid() == "control separator" for line in ax.lines) == 2


READS_LOCK = threading.Lock()


class CountedReads:
    """An out-of-core stand-in: a model's features that count how often they are read whole."""

    def __init__(self, x, reads, name):
        self._x, self._reads, self._name = x, reads, name
        self.shape, self.dtype, self.ndim = x.shape, x.dtype, x.ndim

    def __len__(self):
        return len(self._x)

    def __array__(self, dtype=None, copy=None):
        with READS_LOCK:  # two worker threads read
            self._reads[self._name] = self._reads.get(self._name, 0) + 1
        return self._x if dtype is None else self._x.astype(dtype)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_transfer_reads_each_model_twice_and_scores_as_from_arrays(rotated_study):
    """Out of core: every model of every space is read exactly twice (once to fit its heads, once to be scored),
    whatever the number of models, and the scores equal those of in-memory arrays bit for bit."""
    structure_index, z, raw, anchor, _, labels = rotated_study
    settings = TransferSettings(heads=("ridge", "mlp"), bootstrap=20, mlp_max_iter=50, mlp_hidden=(8,))
    spaces = {"raw": raw, "anchor": anchor}
    reads: dict = {}
    lazy = {
        space: {m: CountedReads(x, reads, (space, m)) for m, x in models.items()} for space, models in spaces.items()
    }
    expected = transfer.transfer_scores(spaces, structure_index, labels, {"element": z}, settings, threads=2)
    ds = transfer.transfer_scores(lazy, structure_index, labels, {"element": z}, settings, threads=2)
    assert reads == {(space, m): 2 for space in spaces for m in raw}
    for name in (*transfer.ESTIMATES, "ridge_relative_alpha"):
        np.testing.assert_array_equal(ds[name].values, expected[name].values)
