import numpy as np
import pytest

from platonic.anchors import anchor_dataset, common_valid, direct_sampling, select_anchors


def test_random_anchors_are_seeded_sorted_and_respect_candidates():
    features = np.random.default_rng(0).normal(size=(200, 5))
    candidates = np.arange(200) % 3 == 0
    first = select_anchors(features, 20, "random", seed=4, candidates=candidates)
    np.testing.assert_array_equal(first, select_anchors(features, 20, "random", seed=4, candidates=candidates))
    assert len(set(first)) == 20
    assert np.all(np.diff(first) > 0)
    assert candidates[first].all()
    assert not np.array_equal(first, select_anchors(features, 20, "random", seed=5, candidates=candidates))


def test_farthest_point_picks_one_atom_per_separated_cluster():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [100, 0], [0, 100], [100, 100]], dtype=float)
    labels = np.repeat(np.arange(4), 50)
    features = centres[labels] + rng.normal(scale=0.5, size=(200, 2))
    chosen = select_anchors(features, 4, "farthest-point", seed=3)
    assert sorted(labels[chosen]) == [0, 1, 2, 3]


def test_common_valid_is_the_intersection():
    a = np.array([1, 1, 0, 1], bool)
    b = np.array([1, 0, 1, 1], bool)
    np.testing.assert_array_equal(common_valid([a, b]), [1, 0, 0, 1])
    with pytest.raises(ValueError, match="disagree on the number of atoms"):
        common_valid([a, b[:3]])


def test_bad_requests_raise():
    features = np.zeros((5, 2))
    with pytest.raises(ValueError, match="cannot pick 6 anchors from 5"):
        select_anchors(features, 6, "random", 0)
    with pytest.raises(ValueError, match="unknown anchor method"):
        select_anchors(features, 2, "magic", 0)
    with pytest.raises(ValueError, match="must be positive"):
        select_anchors(features, 0, "random", 0)


def test_anchor_store_layout():
    ds = anchor_dataset(np.array([1, 3]), np.ones(4, bool), np.array([8, 1, 1, 26]), np.array(list("abcd")), seed=0)
    np.testing.assert_array_equal(ds["anchor_Z"].values, [1, 26])
    np.testing.assert_array_equal(ds["anchor_structure_id"].values, ["b", "d"])
    assert len(ds.attrs["anchor_set_hash"]) == 64
    assert ds.attrs["n_common_valid"] == 4


def test_direct_picks_one_atom_from_each_separated_blob():
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=50.0, size=(6, 10))
    labels = np.repeat(np.arange(6), 40)
    features = centres[labels] + rng.normal(scale=0.3, size=(240, 10))
    chosen = select_anchors(features, 6, "direct", 0)
    assert sorted(labels[chosen]) == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(chosen, select_anchors(features, 6, "direct", 0))  # deterministic


def test_direct_equals_maml_direct_sampler():
    maml_direct = pytest.importorskip("maml.sampling.direct", reason="maml (reference DIRECT implementation) absent")
    from maml.sampling.clustering import BirchClustering
    from maml.sampling.stratified_sampling import SelectKFromClusters

    rng = np.random.default_rng(11)
    features = rng.normal(size=(1500, 24)) @ rng.normal(size=(24, 24)) + rng.normal(size=24)
    for n in (10, 40):
        sampler = maml_direct.DIRECTSampler(
            structure_encoder=None, clustering=BirchClustering(n=n), select_k_from_clusters=SelectKFromClusters(k=1)
        )
        expected = np.sort(sampler.fit_transform(features)["selected_indexes"])
        np.testing.assert_array_equal(direct_sampling(features, n), expected)
