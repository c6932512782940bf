import numpy as np
import pytest

from platonic.atom_maps import joint_maps, principal_plane


def _plane(n=40, d=6, spread=(3.0, 1.0), seed=0):
    """Points on a known plane of R^d: centred coordinates ``c (n, 2)`` with orthogonal columns of norms ``spread``,
    placed by orthonormal directions ``q (d, 2)`` and shifted by an offset; returns (points, c)."""
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(n, 2))
    u, _, _ = np.linalg.svd(start - start.mean(axis=0), full_matrices=False)
    c = u * np.array(spread)
    q, _ = np.linalg.qr(rng.normal(size=(d, 2)))
    return c @ q.T + rng.normal(size=d), c


def test_principal_plane_recovers_the_plane_of_the_points_with_each_axis_signed():
    points, c = _plane()
    mapped = principal_plane(points)
    # the same coordinates up to each axis's sign; the sign puts each axis's largest |coordinate| on the positive side
    expected = c * np.sign(c[np.argmax(np.abs(c), axis=0), [0, 1]])
    np.testing.assert_allclose(mapped, expected, atol=1e-10)
    assert mapped[np.argmax(np.abs(mapped[:, 0])), 0] > 0 and mapped[np.argmax(np.abs(mapped[:, 1])), 1] > 0
    # the variance along each axis is the squared singular value of the centred points (largest first)
    centred = points - points.mean(axis=0)
    np.testing.assert_allclose((mapped**2).sum(axis=0), np.linalg.svd(centred, compute_uv=False)[:2] ** 2)
    np.testing.assert_allclose(principal_plane(-points), mapped, atol=1e-10)  # a mirrored cloud: the same map


def test_principal_plane_of_one_feature_is_the_centred_feature_and_zero():
    x = np.array([[1.0], [4.0], [-2.0]])
    np.testing.assert_allclose(principal_plane(x), [[-0.0, 0.0], [3.0, 0.0], [-3.0, 0.0]], atol=1e-12)


def test_joint_maps_are_one_fit_on_the_stacked_models_split_back():
    rng = np.random.default_rng(1)
    coordinates = {"a": rng.normal(size=(25, 5)), "b (control)": 3 * rng.normal(size=(25, 5)) + 1}
    maps = joint_maps(coordinates, ("pca",), seed=0)
    assert maps.dims == ("reduction", "model", "atom", "axis") and maps.shape == (1, 2, 25, 2)
    assert list(maps.model.values) == ["a", "b (control)"]
    assert maps.attrs == {"n_atoms": 25, "n_anchors": 5}
    joint = principal_plane(np.concatenate([coordinates["a"], coordinates["b (control)"]]))
    np.testing.assert_array_equal(maps.sel(reduction="pca", model="a").values, joint[:25])
    np.testing.assert_array_equal(maps.sel(reduction="pca", model="b (control)").values, joint[25:])
    # fitted jointly, not per model: model a's own PCA differs
    assert not np.allclose(maps.sel(reduction="pca", model="a").values, principal_plane(coordinates["a"]))
    with pytest.raises(ValueError, match="unknown 2-D map 'tsne'; choose from pca, umap"):
        joint_maps(coordinates, ("pca", "tsne"))


@pytest.mark.slow
def test_joint_umap_is_seeded_and_two_dimensional():
    pytest.importorskip("umap", reason="umap-learn is not installed (pip install 'platonic[umap]')")
    rng = np.random.default_rng(3)
    coordinates = {"m1": rng.normal(size=(80, 5)), "m2": rng.normal(size=(80, 5))}
    maps = joint_maps(coordinates, ("pca", "umap"), seed=4)
    assert list(maps.reduction.values) == ["pca", "umap"] and maps.shape == (2, 2, 80, 2)
    assert np.isfinite(maps.values).all()
