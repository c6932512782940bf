import numpy as np
import pytest

from platonic.elements import trend_matrices


def test_trend_matrices_are_cosines_of_the_element_means_in_periodic_order_and_their_r():
    rng = np.random.default_rng(4)
    elements = np.array([26, 1, 8, 11])  # Fe, H, O, Na
    means = {"m1": rng.normal(size=(4, 6)), "m2": rng.normal(size=(4, 6)), "m3": rng.normal(size=(4, 6))}
    trends = trend_matrices(elements, means)
    order = [1, 3, 0, 2]  # H, Na (group 1), Fe (group 8), O (group 16)
    assert trends["element_a"].values.tolist() == [1, 11, 26, 8] and list(trends.model.values) == list(means)
    off = ~np.eye(4, dtype=bool)
    reference = None
    for model, x in means.items():
        unit = x[order] / np.linalg.norm(x[order], axis=1, keepdims=True)
        np.testing.assert_allclose(trends["cosine"].sel(model=model).values, unit @ unit.T, atol=1e-12)
        reference = unit @ unit.T if reference is None else reference
        r = np.corrcoef(reference[off], (unit @ unit.T)[off])[0, 1]
        assert float(trends["r"].sel(model=model)) == pytest.approx(r, rel=1e-12)
    assert float(trends["r"].sel(model="m1")) == pytest.approx(1.0)


def test_trend_matrices_of_two_elements_have_no_r():
    trends = trend_matrices(np.array([8, 1]), {"a": np.array([[1.0, 0.0], [1.0, 1.0]]), "b": np.eye(2)})
    np.testing.assert_allclose(trends["cosine"].sel(model="a").values, [[1, 2**-0.5], [2**-0.5, 1]])
    assert np.isnan(trends["r"].values).all()  # one off-diagonal value: no correlation
