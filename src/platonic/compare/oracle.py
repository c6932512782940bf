"""One-call forms of the metrics, for the tests and for checking a number by hand.

Each takes two feature arrays (and, where the metric needs them, neighbour lists or a split) and returns the metric,
composed from the pieces the fan-in computes from summaries (``platonic.compare.metrics``). The workflow never
calls them: a number in a store comes from ``platonic.compare.fan_in``, and the tests compare the two.
"""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics import (
    CHUNK,
    ROW_CHUNK,
    cka_from_covariances,
    cknna_from_kernels,
    cknna_kernels,
    cross_gram,
    debiased_cka_from_moments,
    distance_correlation_from_distances,
    distance_matrix,
    gfre_from_moments,
    gfre_ridge_cv,
    lfre_errors,
    moments,
    split_crosses,
    split_moments,
)
from platonic.compare.neighbours import unit_rows

__all__ = [
    "centred_cross_covariance", "cknna", "debiased_cka", "distance_correlation", "gfre", "gfre_cross_validated",
    "knn_indices", "lfre", "linear_cka",
]  # fmt: skip


def centred_cross_covariance(x: np.ndarray, y: np.ndarray, chunk: int = ROW_CHUNK) -> np.ndarray:
    """``Xc^T Yc`` (column-centred), shape ``(d_x, d_y)``, accumulated in float64 over row chunks."""
    if len(x) != len(y):
        raise ValueError(f"spaces have different numbers of atoms: {len(x)} vs {len(y)}")
    total_x = np.zeros(x.shape[1])
    total_y = np.zeros(y.shape[1])
    for start in range(0, len(x), chunk):
        total_x += np.asarray(x[start : start + chunk], dtype=np.float64).sum(axis=0)
        total_y += np.asarray(y[start : start + chunk], dtype=np.float64).sum(axis=0)
    return cross_gram(x, y, chunk) - np.outer(total_x, total_y) / len(x)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) of ``x (N, d_x)`` and ``y (N, d_y)``.

    Uses the feature-space identity ``||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``.
    """
    return cka_from_covariances(
        centred_cross_covariance(x, y), centred_cross_covariance(x, x), centred_cross_covariance(y, y)
    )


def debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    mx, my = moments(x), moments(y)
    return debiased_cka_from_moments(cross_gram(x, y), mx, my)


def gfre(x: np.ndarray, y: np.ndarray, train: np.ndarray, regularisation: float = 1e-8) -> float:
    """GFRE of ``y`` from ``x``; ``train`` is a boolean row mask (the rest is the test split)."""
    return gfre_from_moments(
        cross_gram(x[train], y[train]),
        cross_gram(x[~train], y[~train]),
        split_moments(x, train),
        split_moments(y, train),
        regularisation,
    )


def gfre_cross_validated(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, folds: np.ndarray, grid
) -> tuple[float, float]:
    """GFRE of ``y`` from ``x`` with the relative ridge of ``grid`` that ``gfre_ridge_cv`` chooses on the ``train``
    rows split by ``folds (N,)`` (0 or 1); returns (GFRE, chosen ridge)."""
    mx, my = split_moments(x, train, folds=folds), split_moments(y, train, folds=folds)
    cross_train, cross_test, crosses = split_crosses(x, y, train, folds=folds)
    ridge, _ = gfre_ridge_cv(crosses, mx, my, grid)
    return gfre_from_moments(cross_train, cross_test, mx, my, ridge), ridge


def knn_indices(x: np.ndarray, k: int, chunk: int = CHUNK) -> np.ndarray:
    """Exact ``k`` nearest neighbours by cosine similarity, excluding self; shape ``(N, k)``,
    nearest first. Ties are broken by the lower row index, so results are deterministic."""
    x = np.asarray(x, dtype=np.float64)
    if not 1 <= k < len(x):
        raise ValueError(f"k must be between 1 and N-1 = {len(x) - 1}, got {k}")
    unit = unit_rows(x)
    out = np.empty((len(x), k), dtype=np.int64)
    for start in range(0, len(x), chunk):
        similarity = unit[start : start + chunk] @ unit.T
        rows = np.arange(similarity.shape[0])
        similarity[rows, start + rows] = -np.inf
        # stable sort on -similarity: equal similarities keep index order
        out[start : start + chunk] = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return out


def cknna(x: np.ndarray, y: np.ndarray, neighbours_x: np.ndarray, neighbours_y: np.ndarray) -> float:
    """Centred kernel nearest-neighbour alignment (Huh et al. 2024): unbiased HSIC of the cosine
    kernels restricted to pairs that are k-nearest neighbours in both spaces, normalised by each
    space's own restricted HSIC. Sparse, so it runs on all N."""
    return cknna_from_kernels(cknna_kernels(x, y, neighbours_x, neighbours_y))


def lfre(x: np.ndarray, y: np.ndarray, neighbours_x: np.ndarray, queries: np.ndarray, regularisation=1e-8) -> float:
    """Local feature reconstruction error (Goscinski et al. 2021) of Y from X: for each query atom,
    a ridge map fitted on its k neighbours in X (centred on the neighbourhood) reconstructs the
    query's Y features; root-mean-square error over the queries. Spaces are first scaled to unit
    mean squared norm (after centring), like GFRE."""
    return float(np.sqrt(lfre_errors(x, y, neighbours_x, queries, regularisation).mean()))


def distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Distance correlation (Székely et al., Ann. Stat. 35, 2769 (2007)); O(m^2) memory, so it is
    called on a subsample of ``m`` rows."""
    return distance_correlation_from_distances(distance_matrix(x), distance_matrix(y))
