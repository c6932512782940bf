"""Rank correlation machinery: equals scipy's Spearman, recovers a planted monotone relation with an interval
that covers it, gives chance-level values on shuffled data, and a partial correlation removes a shared cause."""

import numpy as np
import pytest
from scipy import stats

from platonic.analysis.rank_correlation import baseline_spearman, partial_spearman, rank_test, spearman


def _structures(n_structures=80, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 8, size=n_structures)
    return rng, np.repeat(np.arange(n_structures), sizes)


def test_spearman_equals_scipy_with_ties():
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 6, size=50).astype(float), rng.normal(size=50)
    assert spearman(x, y) == __import__("pytest").approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_planted_monotone_relation_is_recovered():
    """y = exp(x) + small noise: rho is near 1, the interval covers the value and excludes chance, p is minimal."""
    rng, groups = _structures()
    x = rng.normal(size=len(groups))
    y = np.exp(x) + 0.05 * rng.normal(size=len(groups))
    test = rank_test(x, y, groups, replicates=100, permutations=100)
    assert test.value > 0.95
    assert test.ci_low <= test.value <= test.ci_high and test.ci_low > 0.9
    assert abs(test.chance) < 0.05 and test.chance_high < 0.3
    assert test.p_value == 1 / 101
    assert test.n == len(groups) and test.n_structures == 80


def test_shuffled_data_give_chance_level_values():
    """Independent x and y, over 20 seeds: the value lies inside the permutation range 19 times in 20 or so, and
    the p-values are spread (mean near 1/2)."""
    inside, p_values = 0, []
    for seed in range(20):
        rng, groups = _structures(seed=seed)
        test = rank_test(rng.normal(size=len(groups)), rng.normal(size=len(groups)), groups, replicates=20,
                         permutations=100, seed=seed)  # fmt: skip
        inside += test.chance_low <= test.value <= test.chance_high
        p_values.append(test.p_value)
        assert abs(test.value) < 0.3
    assert inside >= 16
    assert 0.3 < np.mean(p_values) < 0.7


def test_partial_correlation_removes_a_shared_cause():
    """x and y each follow a control z plus independent noise: their Spearman rho is high, their partial rho
    given z is near 0, and z alone ranks y as well as a linear fit can."""
    rng, groups = _structures(200)
    z = rng.normal(size=len(groups))
    x, y = z + 0.3 * rng.normal(size=len(groups)), z + 0.3 * rng.normal(size=len(groups))
    assert spearman(x, y) > 0.8
    assert abs(partial_spearman(x, y, z)) < 0.1
    test = rank_test(x, y, groups, replicates=50, permutations=50, controls=z[:, None])
    assert test.ci_low < 0 < test.ci_high or abs(test.value) < 0.1
    assert baseline_spearman(y, z) == __import__("pytest").approx(spearman(y, z), abs=1e-12)


def test_non_finite_items_are_left_out_and_too_few_give_nan():
    rng, groups = _structures(30)
    x, y = rng.normal(size=len(groups)), rng.normal(size=len(groups))
    x[:5] = np.nan
    assert rank_test(x, y, groups, replicates=5, permutations=5).n == len(groups) - 5
    assert np.isnan(rank_test(x[:2], y[:2], groups[:2]).value)


def test_partial_correlation_with_too_few_residual_degrees_of_freedom_is_undefined():
    """Five items and three control columns plus the intercept leave one residual degree of freedom, where any
    two variables' residuals correlate at +-1: the partial correlation is reported as undefined instead."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=5), rng.normal(size=5)
    assert np.isnan(partial_spearman(x, y, rng.normal(size=(5, 3))))
    assert np.isfinite(partial_spearman(x, y, rng.normal(size=(5, 1))))


def test_chance_with_controls_is_the_mean_partial_correlation_over_the_same_permutations():
    """The permutations reuse one fit of the controls: their mean equals partial_spearman recomputed on each
    permuted target (the same seeded block permutations)."""
    from platonic.compare import bootstrap

    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(12), 4)
    x, y, controls = rng.normal(size=48), rng.normal(size=48), rng.normal(size=(48, 2))
    test = rank_test(x, y, groups, replicates=5, permutations=30, seed=7, controls=controls)
    orders_rng = np.random.default_rng(8)
    direct = [partial_spearman(x, y[bootstrap.block_permutation(groups, orders_rng)], controls) for _ in range(30)]
    assert test.chance == pytest.approx(np.mean(direct), rel=1e-9)
    assert test.value == pytest.approx(partial_spearman(x, y, controls), rel=1e-12)
