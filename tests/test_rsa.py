"""RSA, the worked example of adding a metric: its value against scipy, its closed cases, its replicates and its
chance level through the fan-in."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from platonic.compare import metrics, registry
from platonic.compare.similarity import pairwise_similarity
from platonic.settings import SimilaritySettings


def test_rsa_is_scipys_spearman_correlation_of_the_distinct_pairs_distances():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    y = np.tanh(x[:, :3]) + 0.7 * rng.normal(size=(40, 3))
    expected = spearmanr(pdist(x), pdist(y)).statistic
    got = metrics.rsa_from_distances(metrics.distance_matrix(x), metrics.distance_matrix(y))
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.1 < got < 0.9  # related, not identical: the check above is not of a trivial case


def test_rsa_is_one_for_a_monotone_function_of_the_distances_and_nan_without_distinct_distances():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4))
    d = metrics.distance_matrix(x)
    rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    assert metrics.rsa_from_distances(d, metrics.distance_matrix(3 * x @ rotation + 2)) == pytest.approx(1.0, abs=1e-12)
    assert metrics.rsa_from_distances(d, np.exp(d) + d**3) == pytest.approx(1.0, abs=1e-12)
    assert metrics.rsa_from_distances(d, -d) == pytest.approx(-1.0, abs=1e-12)
    equilateral = 1.0 - np.eye(30)
    assert np.isnan(metrics.rsa_from_distances(d, equilateral))


def test_weighted_rsa_with_one_draw_each_is_the_value_and_zero_draws_weigh_nothing():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(25, 3)), rng.normal(size=(25, 6))
    dx, dy = metrics.distance_matrix(x), metrics.distance_matrix(y)
    counts = np.ones((1, 25))
    assert metrics.weighted_rsa(dx, dy, counts)[0] == pytest.approx(metrics.rsa_from_distances(dx, dy), abs=1e-12)
    # a row drawn zero times is left out: the value on the other rows
    counts[0, :5] = 0
    kept = metrics.rsa_from_distances(dx[5:, 5:], dy[5:, 5:])
    assert metrics.weighted_rsa(dx, dy, counts)[0] == pytest.approx(kept, abs=1e-12)


def test_rsa_in_the_fan_in_near_zero_for_independent_spaces_and_its_chance_level_near_zero():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(100), 3)
    x = rng.normal(size=(300, 4))
    related = x @ rng.normal(size=(4, 6)) + 0.3 * rng.normal(size=(300, 6))
    independent = rng.normal(size=(300, 5))
    settings = SimilaritySettings(metrics=("rsa",), subsample=200, bootstrap=40, permutations=20, seed=1, threads=1)
    ds = pairwise_similarity({"raw": {"x": x, "r": related, "i": independent}}, groups, settings)
    got = ds.sel(metric="rsa", space="raw")
    assert float(got["similarity"].sel(model_a="x", model_b="r")) > 0.8
    assert abs(float(got["similarity"].sel(model_a="x", model_b="i"))) < 0.05
    # a permutation by whole structures leaves no relation: the chance level of a related pair is about 0
    assert abs(float(got["chance"].sel(model_a="x", model_b="r"))) < 0.05
    # the interval is about the value and narrower than the distance to the chance level
    low, high = float(got["ci_low"].sel(model_a="x", model_b="r")), float(got["ci_high"].sel(model_a="x", model_b="r"))
    assert low < float(got["similarity"].sel(model_a="x", model_b="r")) < high and high - low < 0.3
    assert int(ds["n_samples"].sel(metric="rsa")) == 200


def test_rsa_is_registered_as_a_symmetric_scale_free_subsample_similarity():
    facts = registry.METRICS["rsa"]
    assert (facts.similarity, facts.directed, facts.atoms, facts.scale_free) == (True, False, "subsample", True)
    assert "rsa" in registry.LAYER_METRICS and registry.IMPLEMENTATIONS["rsa"].needs == {"distances"}
