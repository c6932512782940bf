import numpy as np
import pytest
from scipy.stats import ortho_group

from platonic.metrics import (
    centred_cross_covariance,
    knn_indices,
    linear_cka,
    mutual_knn_alignment,
)


def dense_cka(x, y):
    """CKA from N x N Gram matrices and HSIC with the centring matrix H (Kornblith et al. 2019, eq. 3)."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    gram_x, gram_y = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(gram_x * gram_y) / np.sqrt(np.sum(gram_x * gram_x) * np.sum(gram_y * gram_y))


def test_cka_equals_the_dense_gram_definition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12))
    y = np.tanh(x @ rng.normal(size=(12, 20))) + 0.3 * rng.normal(size=(300, 20))
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


def test_streamed_covariance_equals_dense():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(1001, 5)) + 10, rng.normal(size=(1001, 3))
    dense = (x - x.mean(0)).T @ (y - y.mean(0))
    np.testing.assert_allclose(centred_cross_covariance(x, y, chunk=97), dense, atol=1e-8)


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


def test_invalid_k_raises():
    with pytest.raises(ValueError, match="k must be between"):
        knn_indices(np.zeros((5, 2)), 5)
