"""Atypicality: distances against a brute-force computation, other structures only, percentiles in closed form."""

import numpy as np
import pytest

from platonic.analysis.atypicality import atypicality, consensus_percentile, percentile_in, query_atypicality


def _brute(x, groups, k):
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    distance = 1 - unit @ unit.T
    distance[groups[:, None] == groups[None, :]] = np.inf
    return np.sort(distance, axis=1)[:, :k].mean(axis=1)


def test_atypicality_equals_brute_force_over_other_structures():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 4)
    x = rng.normal(size=(120, 6))
    np.testing.assert_allclose(atypicality(x, groups, 5), _brute(x, groups, 5), atol=1e-6)


def test_own_structure_copies_do_not_make_an_atom_typical():
    """An atom with three identical copies in its own structure and nothing like it elsewhere is the most atypical."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(20), 4)
    x = rng.normal(size=(80, 5)) + np.array([5.0, 0, 0, 0, 0])
    x[:4] = np.array([0, 0, 0, 0, -3.0])  # structure 0: four copies pointing elsewhere
    values = atypicality(x, groups, 3)
    assert set(np.argsort(values)[-4:]) == {0, 1, 2, 3}


def test_query_atypicality_equals_brute_force():
    rng = np.random.default_rng(2)
    reference, queries = rng.normal(size=(200, 4)), rng.normal(size=(30, 4))
    mean, nearest, distance = query_atypicality(queries, reference, 7, chunk=8)
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    full = 1 - q @ ref.T
    np.testing.assert_allclose(distance, np.sort(full, axis=1)[:, :7], atol=1e-12)
    np.testing.assert_array_equal(nearest, np.argsort(full, axis=1, kind="stable")[:, :7])
    np.testing.assert_allclose(mean, distance.mean(axis=1))
    with pytest.raises(ValueError, match="between 1 and the 200"):
        query_atypicality(queries, reference, 201)


def test_percentiles():
    reference = np.arange(1.0, 11.0)  # 1 .. 10
    np.testing.assert_allclose(percentile_in(np.array([0.5, 5.0, 10.0, 11.0]), reference), [0, 45, 95, 100])
    per_model = np.array([[1.0, 2.0, 3.0, 4.0], [40.0, 30.0, 20.0, 10.0]])
    np.testing.assert_allclose(consensus_percentile(per_model), [50, 50, 50, 50])
