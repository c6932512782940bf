import numpy as np
import pytest

from platonic.compare.neighbours import nearest_neighbours
from platonic.compare.oracle import knn_indices

pytest.importorskip("faiss", reason="faiss-cpu is a dependency of platonic; install it")


def test_exact_search_equals_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 24))
    np.testing.assert_array_equal(nearest_neighbours(x, 10, method="exact"), knn_indices(x, 10))


def test_ivf_search_recalls_almost_all_exact_neighbours():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(40, 32))
    x = centres[rng.integers(40, size=20000)] + 0.3 * rng.normal(size=(20000, 32))
    exact = nearest_neighbours(x, 10, method="exact")
    approximate = nearest_neighbours(x, 10, method="ivf", n_probe=16)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approximate, strict=True)])
    assert recall > 0.95
    assert not (approximate == np.arange(len(x))[:, None]).any()  # never itself
    np.testing.assert_array_equal(approximate, nearest_neighbours(x, 10, method="ivf", n_probe=16))  # seeded


def test_auto_switches_to_the_index_above_the_limit():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 8))
    np.testing.assert_array_equal(nearest_neighbours(x, 5, exact_limit=10_000), knn_indices(x, 5))
    approximate = nearest_neighbours(x, 5, exact_limit=1000, n_probe=1000)  # probing every cell: exact
    np.testing.assert_array_equal(approximate, knn_indices(x, 5))
    with pytest.raises(ValueError, match="unknown neighbour search"):
        nearest_neighbours(x, 5, method="magic")


def test_euclidean_search_equals_brute_force_on_the_rows_as_given():
    """Rows of very different lengths (where Euclidean and cosine order differ), exact copies among them; with
    groups, no neighbour from a row's own group."""
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 12)) * rng.uniform(0.1, 10.0, size=(600, 1))
    x[500:540] = x[:40]
    distances = cdist(x, x)
    np.fill_diagonal(distances, np.inf)
    expected = np.lexsort((np.broadcast_to(np.arange(600), (600, 600)), distances), axis=1)[:, :6]
    got = nearest_neighbours(x, 6, method="exact", similarity="euclidean")
    np.testing.assert_array_equal(got, expected)
    assert got[0, 0] == 500 and got[500, 0] == 0  # a copy is its original's nearest, and the other way round
    assert not np.array_equal(got, nearest_neighbours(x, 6, method="exact"))  # not the cosine order
    groups = np.arange(600) // 4
    distances[groups[:, None] == groups[None, :]] = np.inf
    expected = np.lexsort((np.broadcast_to(np.arange(600), (600, 600)), distances), axis=1)[:, :6]
    np.testing.assert_array_equal(nearest_neighbours(x, 6, "exact", groups=groups, similarity="euclidean"), expected)
    with pytest.raises(ValueError, match="unknown neighbour similarity"):
        nearest_neighbours(x, 5, similarity="manhattan")


def test_euclidean_ivf_search_recalls_almost_all_exact_neighbours():
    rng = np.random.default_rng(4)
    centres = 5 * rng.normal(size=(40, 16))
    x = centres[rng.integers(40, size=20000)] + rng.normal(size=(20000, 16)) * rng.uniform(0.2, 2.0, (20000, 1))
    exact = nearest_neighbours(x, 5, method="exact", similarity="euclidean")
    approximate = nearest_neighbours(x, 5, method="ivf", n_probe=16, similarity="euclidean")
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact, approximate, strict=True)])
    assert recall > 0.95
