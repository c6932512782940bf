import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from platonic.compare.metrics import (
    Features,
    cross_gram,
    gfre_ridge_cv,
    information_imbalance,
    lfre_errors_chosen,
    lfre_ridge_cv,
    moments,
    mutual_knn_alignment,
    optimal_transport_distance,
    principal_directions_count,
    procrustes_from_covariances,
    split_crosses,
    split_moments,
    svcca_from_covariances,
    svcca_max_directions,
    twonn_dimension,
    twonn_fit,
    twonn_ratios,
)
from platonic.compare.neighbours import nearest_neighbours
from platonic.compare.oracle import (
    centred_cross_covariance,
    cknna,
    debiased_cka,
    distance_correlation,
    gfre,
    gfre_cross_validated,
    knn_indices,
    lfre,
    linear_cka,
)


def dense_cka(x, y):
    """CKA from N x N Gram matrices and HSIC with the centring matrix H (Kornblith et al. 2019, eq. 3)."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    gram_x, gram_y = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(gram_x * gram_y) / np.sqrt(np.sum(gram_x * gram_x) * np.sum(gram_y * gram_y))


def dense_unbiased_hsic(kernel_a, kernel_b):
    """Song et al. 2012, eq. 5, on explicit N x N kernels."""
    m = len(kernel_a)
    a, b = kernel_a - np.diag(np.diag(kernel_a)), kernel_b - np.diag(np.diag(kernel_b))
    value = np.sum(a * b.T) + a.sum() * b.sum() / ((m - 1) * (m - 2)) - 2 * np.sum(a @ b) / (m - 2)
    return value / (m * (m - 3))


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)) + 2.0
    y = np.tanh(x @ rng.normal(size=(12, 20))) + 0.3 * rng.normal(size=(300, 20))
    return x, y


def test_cka_equals_the_dense_gram_definition(pair):
    x, y = pair
    assert linear_cka(x, y) == pytest.approx(dense_cka(x, y), abs=1e-10)


def test_cka_is_one_for_rotated_scaled_shifted_copies():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 10))
    y = 5.0 * x @ ortho_group.rvs(10, random_state=2) + 3.0
    assert linear_cka(x, y) == pytest.approx(1.0, abs=1e-10)


def test_cka_of_independent_gaussians_vanishes_with_n():
    rng = np.random.default_rng(3)
    d = 8
    for n in (200, 20000):
        # for independent data E||Xc^T Yc||^2 ~ N d^2 and ||Xc^T Xc|| ~ N sqrt(d), so CKA ~ d / N
        value = linear_cka(rng.normal(size=(n, d)), rng.normal(size=(n, d)))
        assert value == pytest.approx(d / n, rel=0.5)


def test_debiased_cka_equals_dense_unbiased_hsic(pair):
    x, y = pair
    kx, ky = x @ x.T, y @ y.T
    expected = dense_unbiased_hsic(kx, ky) / np.sqrt(dense_unbiased_hsic(kx, kx) * dense_unbiased_hsic(ky, ky))
    assert debiased_cka(x, y) == pytest.approx(expected, abs=1e-10)
    rng = np.random.default_rng(9)
    # unbiased: independent spaces give ~0 already at moderate N (the biased CKA gives ~d/N)
    assert abs(debiased_cka(rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8)))) < 0.005


def test_streamed_moments_equal_dense():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(1001, 5)) + 10, rng.normal(size=(1001, 3))
    dense = (x - x.mean(0)).T @ (y - y.mean(0))
    np.testing.assert_allclose(centred_cross_covariance(x, y, chunk=97), dense, atol=1e-8)
    m = moments(x, chunk=97)
    np.testing.assert_allclose(m.centred_gram, (x - x.mean(0)).T @ (x - x.mean(0)), atol=1e-8)
    np.testing.assert_allclose(m.row_dot_total, x @ x.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cross_gram(x, y, chunk=50), x.T @ y, atol=1e-8)


def _covariances(x, y):
    xc, yc = x - x.mean(0), y - y.mean(0)
    return xc.T @ yc, xc.T @ xc, yc.T @ yc


def _leading_basis(z, kept):
    """An orthonormal basis of ``z``'s centred rows projected on its ``kept(s)`` leading principal directions
    (``s``: the singular values)."""
    zc = z - z.mean(0)
    _, s, vt = np.linalg.svd(zc, full_matrices=False)
    return np.linalg.qr(zc @ vt[: kept(s)].T)[0]


def test_svcca_equals_pca_then_qr_cca(pair):
    x, y = pair
    expected = [
        _leading_basis(z, lambda s: int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.99) + 1)) for z in (x, y)
    ]
    correlations = np.linalg.svd(expected[0].T @ expected[1], compute_uv=False)
    assert svcca_from_covariances(*_covariances(x, y)) == pytest.approx(correlations.mean(), abs=1e-9)
    rotated = 2 * x @ ortho_group.rvs(12, random_state=5) - 1
    assert svcca_from_covariances(*_covariances(x, rotated)) == pytest.approx(1.0, abs=1e-9)


def test_procrustes_distance_matches_scipy_and_vanishes_for_rotations(pair):
    x, y = pair
    xc, yc = x - x.mean(0), y - y.mean(0)
    a = xc / np.linalg.norm(xc)
    b = np.hstack([yc / np.linalg.norm(yc), np.zeros((len(y), 0))])
    padded = np.hstack([a, np.zeros((len(a), b.shape[1] - a.shape[1]))])
    rotation, _ = orthogonal_procrustes(b, padded)
    residual = np.linalg.norm(padded - b @ rotation) ** 2  # = 2 - 2 cos(theta)
    theta = procrustes_from_covariances(*_covariances(x, y))
    assert 2 - 2 * np.cos(theta) == pytest.approx(residual, abs=1e-9)
    rotated = 3 * x @ ortho_group.rvs(12, random_state=6) + 7
    assert procrustes_from_covariances(*_covariances(x, rotated)) == pytest.approx(0.0, abs=1e-6)


def test_gfre_of_a_linear_map_is_zero_and_matches_dense_ridge(pair):
    x, y = pair
    rng = np.random.default_rng(7)
    train = rng.random(len(x)) < 0.7
    linear = x @ rng.normal(size=(12, 6)) + 4.0
    assert gfre(x, linear, train) == pytest.approx(0.0, abs=1e-5)
    # dense reference: standardise with train statistics, least squares, RMS test residual
    xs = (x - x[train].mean(0)) / np.sqrt(np.mean(np.sum((x[train] - x[train].mean(0)) ** 2, axis=1)))
    ys = (y - y[train].mean(0)) / np.sqrt(np.mean(np.sum((y[train] - y[train].mean(0)) ** 2, axis=1)))
    weights = np.linalg.lstsq(xs[train], ys[train], rcond=None)[0]
    expected = np.sqrt(np.sum((ys[~train] - xs[~train] @ weights) ** 2) / np.count_nonzero(~train))
    assert gfre(x, y, train, regularisation=0.0) == pytest.approx(expected, rel=1e-8)
    noise = rng.normal(size=(len(x), 6))
    assert gfre(x, noise, train) == pytest.approx(1.0, abs=0.15)


def test_knn_matches_brute_force_cosine():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(250, 6))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    expected = np.argsort(-similarity, axis=1)[:, :7]
    np.testing.assert_array_equal(knn_indices(x, 7, chunk=33), expected)


def test_mutual_knn_identical_spaces_is_one_and_independent_is_k_over_n():
    rng = np.random.default_rng(6)
    n, k = 2000, 10
    x = rng.normal(size=(n, 16))
    same = knn_indices(x, k)
    assert mutual_knn_alignment(same, knn_indices(2 * x @ ortho_group.rvs(16, random_state=0), k)) == 1.0
    independent = mutual_knn_alignment(same, knn_indices(rng.normal(size=(n, 16)), k))
    # chance overlap of two random k-subsets of n-1 atoms: k / (n - 1)
    assert independent == pytest.approx(k / (n - 1), rel=0.25)


def test_mutual_knn_hand_computed():
    a = np.array([[1, 2], [0, 2], [0, 1]])
    b = np.array([[1, 2], [2, 0], [1, 3]])
    assert mutual_knn_alignment(a, b) == pytest.approx((2 + 2 + 1) / 6)


def test_cknna_equals_dense_masked_unbiased_hsic(pair):
    x, y = pair
    k = 8
    nx, ny = knn_indices(x, k), knn_indices(y, k)
    n = len(x)
    ux = x / np.linalg.norm(x, axis=1, keepdims=True)
    uy = y / np.linalg.norm(y, axis=1, keepdims=True)
    kx, ky = ux @ ux.T, uy @ uy.T
    mask_x, mask_y = np.zeros((n, n)), np.zeros((n, n))
    mask_x[np.arange(n)[:, None], nx] = 1
    mask_y[np.arange(n)[:, None], ny] = 1
    shared = mask_x * mask_y
    # the estimator depends on the kernels' order when they are not symmetric; platonic averages both
    symmetric = (dense_unbiased_hsic(shared * kx, shared * ky) + dense_unbiased_hsic(shared * ky, shared * kx)) / 2
    expected = symmetric / np.sqrt(
        dense_unbiased_hsic(mask_x * kx, mask_x * kx) * dense_unbiased_hsic(mask_y * ky, mask_y * ky)
    )
    assert cknna(x, y, nx, ny) == pytest.approx(expected, abs=1e-10)
    assert cknna(x, x, nx, nx) == pytest.approx(1.0, abs=1e-12)
    assert cknna(y, x, ny, nx) == pytest.approx(cknna(x, y, nx, ny), abs=1e-14)


@pytest.mark.parametrize("d", [2, 5])
def test_twonn_recovers_the_dimension_of_a_plane_in_64_dimensions(d):
    rng = np.random.default_rng(d)
    plane = rng.uniform(size=(5000, d)) @ np.linalg.qr(rng.normal(size=(64, d)))[0].T + 3.0
    neighbours = knn_indices(plane, 2)
    assert twonn_dimension(plane, neighbours) == pytest.approx(d, rel=0.12)
    # every point three times (symmetry-equivalent atoms), up to float32 round-off: same dimension
    copies = np.repeat(plane, 3, axis=0) + 1e-7 * rng.normal(size=(15000, 64))
    assert twonn_dimension(copies, nearest_neighbours(copies, 6, "exact")) == pytest.approx(d, rel=0.12)


def _uniform(shape: str, n: int, d: int, rng) -> np.ndarray:
    """``n`` points uniform in the unit d-cube or d-ball, ``(n, d)``."""
    if shape == "cube":
        return rng.uniform(size=(n, d))
    direction = rng.normal(size=(n, d))
    return direction / np.linalg.norm(direction, axis=1, keepdims=True) * rng.uniform(size=(n, 1)) ** (1 / d)


AUTHORS_TWONN = {"discard": 0.0, "zero_tolerance": 0.0, "duplicates": "drop", "distance": "euclidean"}


@pytest.mark.parametrize("shape", ["cube", "ball"])
@pytest.mark.parametrize("d", [2, 5])
def test_both_twonn_protocols_recover_the_dimension_of_a_flat_set_in_64_dimensions(shape, d):
    """platonic's (unit rows, duplicates skipped, 10 % of the ratios discarded) and the reference study's (the rows
    as given, duplicates dropped, only the largest ratio discarded)."""
    rng = np.random.default_rng(10 * d + len(shape))
    points = _uniform(shape, 5000, d, rng) @ np.linalg.qr(rng.normal(size=(64, d)))[0].T + 3.0
    assert twonn_dimension(points, knn_indices(points, 2)) == pytest.approx(d, rel=0.12)
    euclidean = nearest_neighbours(points, 2, "exact", similarity="euclidean")
    assert twonn_dimension(points, euclidean, **AUTHORS_TWONN) == pytest.approx(d, rel=0.12)


def reference_twonn(x: np.ndarray) -> float:
    """The reference study's TwoNN, written out in plain numpy: Euclidean distances between the rows as given, each
    row's two nearest others, rows whose nearest is at distance exactly 0 left out, mu = r2 / r1 sorted,
    F = i / N, the last ratio left out, least squares of -log(1 - F) on log(mu) through the origin."""
    distances = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2))
    nearest = np.sort(distances, axis=1)[:, :3]  # itself (0) and the two nearest others
    r1, r2 = nearest[:, 1], nearest[:, 2]
    mu = np.sort(r2[r1 > 0] / r1[r1 > 0])
    f = np.arange(1, len(mu) + 1) / len(mu)
    slope = np.linalg.lstsq(np.log(mu[:-1])[:, None], -np.log(1 - f[:-1]), rcond=None)[0]
    return float(slope[0])


def reference_duplicates(rng) -> np.ndarray:
    """400 rows in 7 dimensions, 30 of them twice and 10 three times (the copies exactly equal)."""
    x = rng.normal(size=(400, 7)) * rng.uniform(0.5, 3.0, size=7)
    x[100:130] = x[:30]
    x[130:140] = x[200:210]
    x[140:150] = x[200:210]
    return x[rng.permutation(400)]


def test_the_reference_twonn_protocol_is_the_reference_procedure_on_rows_with_duplicates():
    x = reference_duplicates(np.random.default_rng(21))
    neighbours = nearest_neighbours(x, 2, "exact", similarity="euclidean")
    expected = reference_twonn(x)
    assert twonn_dimension(x, neighbours, **AUTHORS_TWONN) == pytest.approx(expected, rel=1e-12)
    # a duplicate's nearest other is its copy: dropped, not skipped (skipping gives another number)
    skipped = twonn_dimension(x, neighbours, **{**AUTHORS_TWONN, "duplicates": "skip"})
    assert abs(skipped - expected) > 1e-3


def test_twonn_ratios_and_fit_closed_cases():
    distances = np.array([[0.0, 2.0, 3.0], [1.0, 1.0, 4.0], [2.0, 0.0, 6.0], [0.5, 1.0, 1.5]])
    # drop: the two nearest as they are, a row whose nearest is within the tolerance left out
    np.testing.assert_array_equal(twonn_ratios(distances, 0.0, "drop"), [1.0, 2.0])
    np.testing.assert_array_equal(twonn_ratios(distances, 0.6, "drop"), [1.0])
    # skip: past the zeros, r2 the first beyond r1 by more than the tolerance
    np.testing.assert_array_equal(twonn_ratios(distances, 0.0, "skip"), [1.5, 2.0, 3.0, 4.0])
    # ratios on the curve -log(1 - i/n) = d log(mu_i) (the largest anywhere above): the fit through the origin is d
    n, d = 200, 3.0
    mu = (1 - np.arange(1, n) / n) ** (-1 / d)
    mu = np.append(mu, 2 * mu[-1])
    assert twonn_fit(mu, 0.0) == pytest.approx(d, rel=1e-12)
    # the largest 10 % moved off the curve: only the fit that discards them still gives d
    mu[180:] *= 1.5
    assert twonn_fit(mu, 0.1) == pytest.approx(d, rel=1e-12)
    assert twonn_fit(mu, 0.0) < 0.95 * d
    assert np.isnan(twonn_fit(mu[:9], 0.0))
    with pytest.raises(ValueError, match="unknown TwoNN distance"):
        twonn_dimension(np.eye(3), np.array([[1, 2], [0, 2], [0, 1]]), distance="cosine")


def test_lfre_of_a_linear_map_is_zero_and_of_noise_is_large():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(800, 6))
    neighbours = knn_indices(x, 20)
    queries = np.arange(0, 800, 4)
    assert lfre(x, x @ rng.normal(size=(6, 4)) + 1, neighbours, queries) == pytest.approx(0.0, abs=1e-4)
    assert lfre(x, rng.normal(size=(800, 4)), neighbours, queries) > 0.9


def test_distance_correlation_closed_cases():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(600, 4))
    assert distance_correlation(x, 3 * x @ ortho_group.rvs(4, random_state=1) + 2) == pytest.approx(1.0, abs=1e-9)
    # independent samples: the V-statistic's dCor^2 shrinks like 1/n, so dCor halves from n=600 to 2400
    small = distance_correlation(x, rng.normal(size=(600, 4)))
    large = distance_correlation(rng.normal(size=(2400, 4)), rng.normal(size=(2400, 4)))
    assert small < 0.25 and large == pytest.approx(small / 2, rel=0.35)


def test_optimal_transport_between_shifted_and_identical_clouds():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(200, 5))
    assert optimal_transport_distance(x, x.copy()) == pytest.approx(0.0, abs=1e-6)  # sqrt of round-off
    shift = np.array([3.0, 0, 0, 4.0, 0])
    # translating a cloud moves every point by |shift|: W2 = |shift| = 5
    assert optimal_transport_distance(x, x + shift) == pytest.approx(5.0, abs=1e-6)
    # and W1 = |shift| too: at least the distance between the means, at most the translation's cost
    assert optimal_transport_distance(x, x + shift, cost="euclidean") == pytest.approx(5.0, abs=1e-6)
    assert np.isnan(optimal_transport_distance(x, x[:, :3]))


@pytest.mark.parametrize("d", [1, 4])
def test_exact_transport_between_equal_uniform_clouds_is_the_optimal_assignment(d):
    """Equal sizes and uniform weights: the exact plan is a permutation (Birkhoff), so W1 is the mean Euclidean cost
    of the optimal assignment and W2 the root of the mean squared cost of its own optimal assignment; in 1-D both
    match the sorted samples."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(30 + d)
    x, y = rng.normal(size=(60, d)), 1.5 * rng.normal(size=(60, d)) + 0.7
    for metric in ("euclidean", "sqeuclidean"):
        cost = cdist(x, y, metric=metric)
        rows, columns = linear_sum_assignment(cost)
        total = cost[rows, columns].mean()
        expected = total if metric == "euclidean" else np.sqrt(total)
        assert optimal_transport_distance(x, y, cost=metric) == pytest.approx(expected, rel=1e-10), metric
    if d == 1:
        gap = np.sort(x[:, 0]) - np.sort(y[:, 0])
        assert optimal_transport_distance(x, y, cost="euclidean") == pytest.approx(np.abs(gap).mean(), rel=1e-10)
        assert optimal_transport_distance(x, y) == pytest.approx(np.sqrt(np.mean(gap**2)), rel=1e-10)
    with pytest.raises(ValueError, match="unknown transport cost"):
        optimal_transport_distance(x, y, cost="cosine")


def test_information_imbalance_identical_and_independent():
    rng = np.random.default_rng(12)
    n = 2000
    x = rng.normal(size=(n, 8))
    queries = np.arange(0, n, 5)
    nx = knn_indices(x, 1)
    # each query's nearest neighbour is rank 1 in an identical space: 2/N
    assert information_imbalance(x, 2 * x, nx, queries) == pytest.approx(2 / n)
    # independent space: the neighbour's rank is uniform over 1..N-1, mean N/2, so Delta ~ 1
    assert information_imbalance(x, rng.normal(size=(n, 8)), nx, queries) == pytest.approx(1.0, abs=0.1)


def test_features_give_the_array_metrics_and_a_permutation_keeps_the_centring(pair):
    """What Features caches is what the metrics compute from an array: LFRE and information imbalance of Features
    equal those of the arrays, a taken permutation's unit rows are the permuted unit rows, and its LFRE centring is
    the unpermuted one (a permutation moves neither the mean nor the scale)."""
    x, y = pair
    nx = knn_indices(x, 10)
    queries = np.arange(0, 300, 3)
    fx, fy = Features(x), Features(y)
    perm = np.random.default_rng(3).permutation(300)
    fyp = fy.take(perm)  # nothing derived yet: computed from the permuted rows
    fy.unit, fy.centring  # noqa: B018 (derived on the whole space, then taken along)
    along = fy.take(perm)
    np.testing.assert_array_equal(along.unit, fy.unit[perm])
    assert along.centring is fy.centring
    assert lfre(fx, along, nx, queries) == pytest.approx(lfre(fx, fyp, nx, queries), rel=1e-12)
    assert lfre(fx, fy, nx, queries) == pytest.approx(lfre(x, y, nx, queries), rel=1e-12)
    assert lfre(fx, fyp, nx, queries) == pytest.approx(lfre(x, y[perm], nx, queries), rel=1e-12)
    assert information_imbalance(fx, fyp, nx[:, :1], queries) == information_imbalance(x, y[perm], nx[:, :1], queries)
    np.testing.assert_allclose(fyp.unit, y[perm] / np.linalg.norm(y[perm], axis=1, keepdims=True), rtol=1e-14)
    mean, scale = fyp.centring
    np.testing.assert_allclose(mean, y.mean(axis=0), rtol=1e-14)
    assert scale == pytest.approx(np.sqrt(np.mean(np.sum((y - y.mean(axis=0)) ** 2, axis=1))), rel=1e-14)
    assert len(fyp) == 300 and fyp.shape == y.shape


def test_invalid_k_raises():
    with pytest.raises(ValueError, match="k must be between"):
        knn_indices(np.zeros((5, 2)), 5)


GRID = (1e-8, 1e-6, 1e-4, 1e-2, 1.0)


def wide_pair(seed, n_structures=80, atoms=3, width=60):
    """A source ``width`` columns wide (a 4-dimensional latent plus noise) and a target from the same latent, on
    structures of ``atoms`` atoms: the training half holds about as many atoms as the source has columns."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_structures), atoms)
    z = rng.normal(size=(len(groups), 4))
    x = z @ rng.normal(size=(4, width)) + rng.normal(size=(len(groups), width)) + 1.0
    y = np.tanh(z @ rng.normal(size=(4, 7))) + 0.3 * rng.normal(size=(len(groups), 7))
    return x, y, groups


def test_gfre_ridge_cross_validation_equals_explicit_fold_fits():
    """The eigenbasis shortcut of gfre_ridge_cv against a ridge solved on each fold for each ridge of the grid: the
    same held-out errors and choice, and the value is GFRE with that ridge."""
    x, y, groups = wide_pair(0)
    train = groups % 2 == 0
    folds = (groups % 4 >= 2).astype(np.int8)  # two folds of whole structures
    mean_x, mean_y = x[train].mean(0), y[train].mean(0)
    xs = (x - mean_x) / np.sqrt(np.mean(np.sum((x[train] - mean_x) ** 2, axis=1)))
    ys = (y - mean_y) / np.sqrt(np.mean(np.sum((y[train] - mean_y) ** 2, axis=1)))
    largest = np.linalg.eigvalsh(xs[train].T @ xs[train])[-1]
    expected = []
    for ridge in GRID:
        error = 0.0
        for a in (0, 1):
            fit, held_out = train & (folds == a), train & (folds != a)
            w = np.linalg.solve(xs[fit].T @ xs[fit] + ridge * largest * np.eye(x.shape[1]), xs[fit].T @ ys[fit])
            error += np.sum((ys[held_out] - xs[held_out] @ w) ** 2)
        expected.append(error)
    split_x, split_y = split_moments(x, train, folds=folds), split_moments(y, train, folds=folds)
    chosen, errors = gfre_ridge_cv(split_crosses(x, y, train, folds=folds)[2], split_x, split_y, GRID)
    np.testing.assert_allclose(errors, expected, rtol=1e-8)
    assert chosen == GRID[int(np.argmin(expected))] and chosen > GRID[0]  # wide: least squares is not chosen
    value, ridge = gfre_cross_validated(x, y, train, folds, GRID)
    assert ridge == chosen and value == pytest.approx(gfre(x, y, train, chosen), rel=1e-12)
    assert value < gfre(x, y, train, 1e-8)


def test_lfre_ridge_cross_validation_equals_explicit_neighbourhood_fits():
    """lfre_ridge_cv against a dual ridge solved for each query, fold and ridge: fit on one fold of the query's
    neighbours (centred on them), predict the other fold's, penalty relative to the whole neighbourhood's trace."""
    x, y, groups = wide_pair(1, width=30)
    folds = (groups % 2).astype(np.int8)
    neighbours = knn_indices(x, 12)
    queries = np.arange(0, len(x), 7)
    xs = (x - x.mean(0)) / np.sqrt(np.mean(np.sum((x - x.mean(0)) ** 2, axis=1)))
    ys = (y - y.mean(0)) / np.sqrt(np.mean(np.sum((y - y.mean(0)) ** 2, axis=1)))
    expected = np.zeros(len(GRID))
    for q in queries:
        local = neighbours[q]
        trace = np.sum((xs[local] - xs[local].mean(0)) ** 2)
        for a in (0, 1):
            fit, held_out = local[folds[local] == a], local[folds[local] != a]
            if len(fit) < 2 or len(held_out) < 1:
                continue
            xa, ya = xs[fit] - xs[fit].mean(0), ys[fit] - ys[fit].mean(0)
            for i, ridge in enumerate(GRID):
                alpha = np.linalg.solve(xa @ xa.T + ridge * trace * np.eye(len(fit)), ya)
                prediction = ys[fit].mean(0) + (xs[held_out] - xs[fit].mean(0)) @ xa.T @ alpha
                expected[i] += np.sum((ys[held_out] - prediction) ** 2)
    chosen, errors = lfre_ridge_cv(x, y, neighbours, queries, folds, GRID)
    np.testing.assert_allclose(errors, expected, rtol=1e-6)
    assert chosen == GRID[int(np.argmin(expected))]
    squared, ridge = lfre_errors_chosen(x, y, neighbours, queries, GRID, folds)
    assert ridge == chosen and np.sqrt(squared.mean()) == pytest.approx(lfre(x, y, neighbours, queries, chosen))
    squared, ridge = lfre_errors_chosen(x, y, neighbours, queries, (1e-8,))  # one ridge: no cross-validation
    assert ridge == 1e-8 and np.sqrt(squared.mean()) == lfre(x, y, neighbours, queries)


def test_svcca_cap_keeps_the_leading_directions_and_counts_them(pair):
    x, y = pair
    expected = [_leading_basis(z, lambda s: 5) for z in (x, y)]  # the five leading directions
    correlations = np.linalg.svd(expected[0].T @ expected[1], compute_uv=False)
    value = svcca_from_covariances(*_covariances(x, y), max_directions=5)
    assert value == pytest.approx(correlations.mean(), abs=1e-9)
    # a cap above what 99 % of the variance needs changes nothing
    assert svcca_from_covariances(*_covariances(x, y), max_directions=20) == svcca_from_covariances(*_covariances(x, y))
    _, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    kept = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.99) + 1)
    assert principal_directions_count(_covariances(x, x)[1]) == kept
    assert svcca_max_directions(984, 0.1) == 98 and svcca_max_directions(5, 0.1) == 1
