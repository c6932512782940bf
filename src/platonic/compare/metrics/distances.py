"""Dense distance matrices of a seeded subsample: what distance correlation and RSA compare."""

from __future__ import annotations

import numpy as np


def distance_matrix(x: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``x (m, d)``, ``(m, m)`` float64."""
    from scipy.spatial.distance import pdist, squareform

    return squareform(pdist(np.asarray(x, dtype=np.float64)))
