import numpy as np
from scipy.stats import ortho_group

from platonic.projection import anchor_projection


def test_projection_is_cosine_similarity():
    x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    anchors = np.array([[2.0, 0.0], [0.0, 1.0]])
    expected = np.array([[1.0, 0.0], [np.sqrt(0.5), np.sqrt(0.5)], [0.0, -1.0]])
    np.testing.assert_allclose(anchor_projection(x, anchors), expected, atol=1e-7)


def test_projection_of_a_rotated_scaled_copy_equals_the_original():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16))
    rotation = ortho_group.rvs(16, random_state=1)
    y = 3.7 * x @ rotation
    anchors = [3, 50, 77, 400]
    np.testing.assert_allclose(anchor_projection(x, x[anchors]), anchor_projection(y, y[anchors]), atol=1e-6)


def test_chunking_does_not_change_results_and_nan_rows_stay_nan():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(101, 8))
    x[7] = np.nan
    whole = anchor_projection(x, x[:5], chunk=1000)
    np.testing.assert_array_equal(anchor_projection(x, x[:5], chunk=10), whole)
    assert np.isnan(whole[7]).all() and np.isfinite(np.delete(whole, 7, axis=0)).all()
