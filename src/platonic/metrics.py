"""Representation similarity metrics between two spaces over the same atoms (rows).

Everything streams over row chunks, so memory grows with the feature dimension and ``k``,
never with N^2.
"""

from __future__ import annotations

import numpy as np

CHUNK = 4096


def centred_cross_covariance(x: np.ndarray, y: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """``Xc^T Yc`` (column-centred), shape ``(d_x, d_y)``, accumulated in float64 over row chunks."""
    if len(x) != len(y):
        raise ValueError(f"spaces have different numbers of atoms: {len(x)} vs {len(y)}")
    n = len(x)
    cross = np.zeros((x.shape[1], y.shape[1]))
    sum_x = np.zeros(x.shape[1])
    sum_y = np.zeros(y.shape[1])
    for start in range(0, n, chunk):
        bx = np.asarray(x[start : start + chunk], dtype=np.float64)
        by = np.asarray(y[start : start + chunk], dtype=np.float64)
        cross += bx.T @ by
        sum_x += bx.sum(axis=0)
        sum_y += by.sum(axis=0)
    return cross - np.outer(sum_x, sum_y) / n


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) of ``x (N, d_x)`` and ``y (N, d_y)``.

    Uses the feature-space identity ``||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``.
    """
    return cka_from_covariances(
        centred_cross_covariance(x, y), centred_cross_covariance(x, x), centred_cross_covariance(y, y)
    )


def cka_from_covariances(cross: np.ndarray, self_x: np.ndarray, self_y: np.ndarray) -> float:
    """CKA from precomputed centred (cross-)covariances, so per-model Grams are computed once."""
    denominator = np.linalg.norm(self_x) * np.linalg.norm(self_y)
    if denominator == 0:
        return float("nan")
    return float(np.linalg.norm(cross) ** 2 / denominator)


def knn_indices(x: np.ndarray, k: int, chunk: int = CHUNK) -> np.ndarray:
    """Exact ``k`` nearest neighbours by cosine similarity, excluding self; shape ``(N, k)``.

    Ties are broken by the lower row index, so results are deterministic.
    """
    x = np.asarray(x, dtype=np.float64)
    if not 1 <= k < len(x):
        raise ValueError(f"k must be between 1 and N-1 = {len(x) - 1}, got {k}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = x / np.where(norms > 0, norms, 1.0)
    out = np.empty((len(x), k), dtype=np.int64)
    for start in range(0, len(x), chunk):
        similarity = unit[start : start + chunk] @ unit.T
        rows = np.arange(similarity.shape[0])
        similarity[rows, start + rows] = -np.inf
        # stable sort on -similarity: equal similarities keep index order
        out[start : start + chunk] = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return out


def mutual_knn_alignment(neighbours_a: np.ndarray, neighbours_b: np.ndarray) -> float:
    """Mean fraction of shared k-nearest neighbours (Huh et al. 2024), from ``(N, k)`` index arrays."""
    if neighbours_a.shape != neighbours_b.shape:
        raise ValueError(f"neighbour lists differ in shape: {neighbours_a.shape} vs {neighbours_b.shape}")
    k = neighbours_a.shape[1]
    shared = 0
    for start in range(0, len(neighbours_a), CHUNK):
        a = neighbours_a[start : start + CHUNK]
        b = neighbours_b[start : start + CHUNK]
        shared += int((a[:, :, None] == b[:, None, :]).sum())
    return shared / (len(neighbours_a) * k)
