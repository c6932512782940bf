import numpy as np
import pytest
import xarray as xr

from platonic.compare.model_space import (
    classical_mds,
    embedding_norms,
    linkage_and_mds,
    model_distances,
    shared_sample,
)
from platonic.elements import F_BLOCK, element_means, periodic_group, periodic_order


def test_periodic_group_of_known_elements():
    symbols_and_groups = {
        1: 1, 2: 18, 3: 1, 4: 2, 5: 13, 8: 16, 10: 18, 11: 1, 13: 13, 18: 18, 19: 1, 21: 3, 26: 8, 30: 12,
        31: 13, 36: 18, 39: 3, 47: 11, 54: 18, 55: 1, 56: 2, 72: 4, 79: 11, 86: 18, 87: 1, 88: 2, 104: 4, 118: 18,
    }  # fmt: skip
    z = np.array(list(symbols_and_groups))
    np.testing.assert_array_equal(periodic_group(z), list(symbols_and_groups.values()))
    # La-Lu and Ac-Lr: the separate f-block label
    assert set(periodic_group(np.r_[57:72, 89:104]).tolist()) == {F_BLOCK}
    # every group 1-18 occurs, each of the 118 elements gets one
    assert set(periodic_group(np.arange(1, 119)).tolist()) == set(range(1, 20))
    with pytest.raises(ValueError, match="1..118"):
        periodic_group([0, 5])


def test_periodic_order_sorts_by_group_then_z():
    z = np.array([8, 1, 11, 3, 16, 26])  # O, H, Na, Li, S, Fe
    assert z[periodic_order(z)].tolist() == [1, 3, 11, 26, 8, 16]


def test_element_means_match_a_direct_groupby_across_chunks():
    rng = np.random.default_rng(0)
    z = rng.choice([1, 8, 26, 57], size=103)
    features = rng.normal(size=(103, 5))
    valid = rng.random(103) > 0.2
    elements, means, counts = element_means(features, z, valid, chunk=10)
    assert elements.tolist() == sorted(set(z[valid].tolist()))
    for e, mean, count in zip(elements, means, counts, strict=True):
        rows = (z == e) & valid
        assert count == rows.sum()
        np.testing.assert_allclose(mean, features[rows].mean(axis=0), rtol=1e-12)


def test_embedding_norms_over_valid_atoms():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(37, 4)).astype(np.float32)
    valid = np.arange(37) % 3 != 0
    np.testing.assert_allclose(
        embedding_norms(features, valid, chunk=8), np.sqrt((features[valid].astype(float) ** 2).sum(axis=1))
    )


def _similarity(values, metric):
    models = [f"m{i}" for i in range(values.shape[-1])]
    return xr.Dataset(
        {"similarity": (("metric", "space", "model_a", "model_b"), values[None, None])},
        coords={"metric": [metric], "space": ["anchor"], "model_a": models, "model_b": models},
    )


def test_model_distances_from_similarities_and_directed_errors():
    cka = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.4], [0.3, 0.4, 1.0]])
    np.testing.assert_allclose(model_distances(_similarity(cka, "linear_cka"), "linear_cka", "anchor"), 1 - cka)
    gfre = np.array([[0.01, 0.2, 0.5], [0.4, 0.02, 0.3], [0.7, 0.1, 0.0]])
    expected = (gfre + gfre.T) / 2
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(model_distances(_similarity(gfre, "gfre"), "gfre", "anchor"), expected)


def test_classical_mds_recovers_planar_distances():
    points = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [1.0, 1.0], [-2.0, 0.5]])
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    xy = classical_mds(distances)
    np.testing.assert_allclose(np.linalg.norm(xy[:, None] - xy[None], axis=-1), distances, atol=1e-10)
    # two models: one non-zero axis, distance kept
    two = classical_mds(np.array([[0.0, 0.3], [0.3, 0.0]]))
    assert two[:, 1].tolist() == [0.0, 0.0] and abs(two[0, 0] - two[1, 0]) == pytest.approx(0.3)


def test_linkage_and_mds_of_three_models_by_hand():
    # 1 - CKA distances: a-b 0.1, a-c 0.4, b-c 0.5; average linkage merges a and b at 0.1, then c at (0.4 + 0.5) / 2
    cka = np.array([[1.0, 0.9, 0.6], [0.9, 1.0, 0.5], [0.6, 0.5, 1.0]])
    ds = xr.Dataset(
        {
            "similarity": (("metric", "space", "model_a", "model_b"), np.stack([np.full((3, 3), np.nan), cka])[None]),
            "control": ("model", [False, False, True]),
        },
        coords={"metric": ["linear_cka"], "space": ["raw", "anchor"], "model_a": ["a", "b", "c"],
                "model_b": ["a", "b", "c"], "model": ["a", "b", "c"]},
        attrs={"n_anchors": 7},
    )  # fmt: skip
    tree = linkage_and_mds(ds, "linear_cka")
    assert tree.attrs == {"n_anchors": 7, "metric": "linear_cka"}
    assert tree["control"].values.tolist() == [False, False, True]
    np.testing.assert_allclose(tree["linkage"].sel(space="anchor").values, [[0, 1, 0.1, 2], [2, 3, 0.45, 3]])
    # the MDS map keeps the three distances (three points always fit in a plane)
    xy = tree["mds"].sel(space="anchor").values
    distances = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.testing.assert_allclose(distances, [[0, 0.1, 0.4], [0.1, 0, 0.5], [0.4, 0.5, 0]], atol=1e-12)
    # a space with an undefined value: no tree, no map
    assert tree["defined"].values.tolist() == [False, True]
    assert np.isnan(tree["linkage"].sel(space="raw").values).all() and np.isnan(tree["mds"].sel(space="raw")).all()


def test_shared_sample_is_seeded_and_within_valid():
    valid = np.arange(100) % 4 != 0
    a, b = shared_sample(valid, 20, seed=5), shared_sample(valid, 20, seed=5)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 20 and valid[a].all() and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(shared_sample(valid, 1000, 0), np.flatnonzero(valid))
