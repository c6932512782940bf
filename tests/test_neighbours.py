import numpy as np
import pytest

from platonic.compare.metrics import knn_indices
from platonic.compare.neighbours import nearest_neighbours

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
