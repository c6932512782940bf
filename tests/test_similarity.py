import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import ortho_group, spearmanr

from platonic.compare import fan_in, metrics, oracle
from platonic.compare.neighbours import nearest_neighbours
from platonic.compare.registry import NAMES as METRICS
from platonic.compare.similarity import pairwise_similarity, similarity_table
from platonic.settings import SimilaritySettings


@pytest.fixture(scope="module")
def spaces():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(400, 6))
    models = {
        "a": base,
        "b": 2 * base @ ortho_group.rvs(6, random_state=1),  # a rotated, scaled copy of a (cosine geometry kept)
        "c": np.tanh(base[:, :4]) + 0.5 * rng.normal(size=(400, 4)),
    }
    anchor = {name: x[:, :3] for name, x in models.items()}
    return {"raw": models, "anchor": anchor}


@pytest.fixture(scope="module")
def result(spaces):
    groups = np.repeat(np.arange(100), 4)
    settings = SimilaritySettings(
        k=5, lfre_k=12, subsample=150, queries=120, seed=3, neighbour_search="exact", threads=2
    )
    return pairwise_similarity(spaces, structure_index=groups, settings=settings), groups, settings


def test_every_pair_matches_the_metric_called_directly(spaces, result):
    ds, groups, settings = result
    assert ds["similarity"].dims == ("metric", "space", "model_a", "model_b")
    assert list(ds.metric.values) == list(METRICS)
    rng = np.random.default_rng(settings.seed)
    subsample = np.sort(rng.choice(400, size=150, replace=False))
    queries = np.sort(rng.choice(400, size=120, replace=False))
    train = fan_in.train_mask(groups, settings)
    for space, models in spaces.items():
        for a, x in models.items():
            for b, y in models.items():
                got = ds["similarity"].sel(space=space, model_a=a, model_b=b)
                ridge = ds["ridge"].sel(space=space, model_a=a, model_b=b)
                nx, ny = nearest_neighbours(x, 12, "exact"), nearest_neighbours(y, 12, "exact")
                expected = {
                    "linear_cka": oracle.linear_cka(x, y),
                    "debiased_cka": oracle.debiased_cka(x, y),
                    "mutual_knn": metrics.mutual_knn_alignment(nx[:, :5], ny[:, :5]),
                    "cknna": oracle.cknna(x, y, nx[:, :5], ny[:, :5]),
                    "distance_correlation": oracle.distance_correlation(x[subsample], y[subsample]),
                    "information_imbalance": metrics.information_imbalance(x, y, nx, queries),
                    # with the relative ridge its cross-validation chose (tests/test_metrics.py checks the choice)
                    "lfre": oracle.lfre(x, y, nx, queries, float(ridge.sel(metric="lfre"))),
                    "gfre": oracle.gfre(x, y, train, float(ridge.sel(metric="gfre"))),
                    "rsa": spearmanr(pdist(x[subsample]), pdist(y[subsample])).statistic,
                }
                for metric, value in expected.items():
                    # GFRE's training cross Gram is the sum of its folds' here: round-off, whose root is ~1e-8 at 0
                    tolerance = 1e-7 if metric == "gfre" else 1e-9
                    assert float(got.sel(metric=metric)) == pytest.approx(value, abs=tolerance, nan_ok=True), metric
    raw = ds["similarity"].sel(space="raw")
    for metric in ("linear_cka", "debiased_cka", "svcca", "mutual_knn", "cknna", "distance_correlation", "rsa"):
        assert float(raw.sel(metric=metric, model_a="a", model_b="b")) == pytest.approx(1.0, abs=1e-9), metric
    assert float(raw.sel(metric="procrustes", model_a="a", model_b="b")) == pytest.approx(0.0, abs=1e-6)
    assert float(raw.sel(metric="gfre", model_a="a", model_b="b")) == pytest.approx(0.0, abs=1e-5)


def test_directed_metrics_keep_both_directions(result):
    ds, _, _ = result
    gfre = ds["similarity"].sel(metric="gfre", space="raw")
    assert float(gfre.sel(model_a="a", model_b="c")) != pytest.approx(float(gfre.sel(model_a="c", model_b="a")))
    cka = ds["similarity"].sel(metric="linear_cka", space="raw").values
    np.testing.assert_array_equal(cka, cka.T)


def test_gfre_split_keeps_structures_whole_and_sample_sizes_are_recorded(spaces, result):
    ds, groups, _ = result
    n_test = int(ds["n_samples"].sel(metric="gfre"))
    assert n_test % 4 == 0 and 0 < n_test < 400  # whole structures of 4 atoms
    assert int(ds["n_samples"].sel(metric="distance_correlation")) == 150
    assert int(ds["n_samples"].sel(metric="linear_cka")) == 400
    assert ds.attrs["k"] == 5 and ds.attrs["seed"] == 3


def test_intrinsic_dimension_per_model_and_space(result):
    ds, _, _ = result
    assert ds["intrinsic_dimension"].dims == ("space", "model")
    # a and b are the same 6-dimensional Gaussian cloud (up to rotation), seen through cosine geometry
    a, b = (float(ds["intrinsic_dimension"].sel(space="raw", model=m)) for m in ("a", "b"))
    assert 3 < a < 8 and b > 3


def test_the_reference_protocol_keys_reach_the_transport_cost_and_the_twonn_fit(spaces):
    """ot_cost and the twonn_* keys as the reference study chose them: the store's optimal transport is the optimal
    assignment's mean Euclidean cost (all 400 atoms, equal sizes), its intrinsic dimension the reference procedure
    on the rows as given, and its attrs and labels say so."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist
    from test_metrics import reference_twonn

    from platonic.compare import registry

    reference = {"ot_cost": "euclidean", "twonn_distance": "euclidean", "twonn_duplicates": "drop",
                 "twonn_zero_tolerance": 0.0, "twonn_discard": 0.0}  # fmt: skip
    chosen = {"metrics": ["mutual_knn", "optimal_transport"], "k": 5, "subsample": 400, "neighbour_search": "exact",
              "bootstrap": 0, "permutations": 0}  # fmt: skip
    settings = SimilaritySettings.from_mapping({**chosen, **reference})
    ds = pairwise_similarity(spaces, settings=settings)
    for space, models in spaces.items():
        for m, x in models.items():
            got = float(ds["intrinsic_dimension"].sel(space=space, model=m))
            assert got == pytest.approx(reference_twonn(x), rel=1e-12), (space, m)
        x, y = models["a"], models["c"]
        if x.shape[1] == y.shape[1]:
            cost = cdist(x, y)
            rows, columns = linear_sum_assignment(cost)
            got = float(ds["similarity"].sel(metric="optimal_transport", space=space, model_a="a", model_b="c"))
            assert got == pytest.approx(cost[rows, columns].mean(), rel=1e-10)
    assert {k: ds.attrs[k] for k in reference} == reference
    assert registry.label("optimal_transport", ds.attrs) == "1-Wasserstein distance"
    assert registry.label("optimal_transport", SimilaritySettings()) == "2-Wasserstein distance"
    assert "total Euclidean cost" in registry.caption("optimal_transport", settings)


def test_tidy_table_has_one_row_per_metric_space_and_ordered_pair(result):
    ds, _, _ = result
    rows = similarity_table(ds)
    assert len(rows) == len(METRICS) * 2 * 3 * 3
    assert {row["n_samples"] for row in rows if row["metric"] == "lfre"} == {120}


def test_metric_subset_and_bad_requests(spaces):
    ds = pairwise_similarity(spaces, settings=SimilaritySettings(metrics=("linear_cka",)))
    assert list(ds.metric.values) == ["linear_cka"]
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        pairwise_similarity(spaces, settings=SimilaritySettings(metrics=("nope",)))
    with pytest.raises(ValueError, match="expected"):
        pairwise_similarity({"raw": spaces["raw"], "anchor": {"a": spaces["anchor"]["a"]}})


def test_the_store_records_each_value_s_ridge_and_width_ratio_and_the_csv_marks_wide_cells(spaces, result):
    """GFRE's and LFRE's chosen relative ridges come from the grid (least squares for a model with itself); each
    value's width ratio is its source's width over GFRE's training atoms or LFRE's neighbours, SVCCA's directions
    over the atoms; the CSV carries both and marks the cells above the threshold. A fixed ridge is that ridge
    everywhere."""
    ds, groups, settings = result
    ridge, ratio = ds["ridge"], ds["width_ratio"]
    chosen = ridge.sel(metric=["gfre", "lfre"]).values
    assert np.isin(chosen, settings.ridge_grid).all()
    assert (ridge.sel(metric="gfre", space="raw", model_a="a", model_b="a") == settings.ridge_grid[0]).all()
    assert np.isnan(ridge.sel(metric="linear_cka")).all() and np.isnan(ratio.sel(metric="cknna")).all()
    n_train = int(fan_in.train_mask(groups, settings).sum())
    for space, models in spaces.items():
        for a, x in models.items():
            row = ratio.sel(space=space, model_a=a)
            np.testing.assert_array_equal(row.sel(metric="gfre").values, x.shape[1] / n_train)
            np.testing.assert_array_equal(row.sel(metric="lfre").values, x.shape[1] / settings.lfre_k)
            directions = ds["svcca_directions"].sel(space=space)
            for b in models:
                expected = max(int(directions.sel(model=a)), int(directions.sel(model=b))) / 400
                assert float(row.sel(metric="svcca", model_b=b)) == expected
    assert int(ds["svcca_directions"].sel(space="raw", model="a")) == 6 and ds.attrs["svcca_max_directions"] == 40
    rows = similarity_table(ds)
    wide = {(r["metric"], r["space"], r["model_a"], r["model_b"]) for r in rows if r["wide"]}
    assert ("lfre", "raw", "a", "c") in wide and ("gfre", "raw", "a", "c") not in wide  # 6 / 12 > 0.1 > 6 / ~200
    assert all(r["width_ratio"] > settings.width_ratio_threshold for r in rows if r["wide"])
    fixed = pairwise_similarity(
        spaces, structure_index=groups, settings=SimilaritySettings(metrics=("gfre", "lfre"), ridge=1e-4, lfre_k=12)
    )
    assert (fixed["ridge"].values == 1e-4).all()
