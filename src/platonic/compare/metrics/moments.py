"""Streamed second moments of a space and the cross Gram of a pair, over row chunks in float64: what the moment
metrics (linear and debiased CKA, SVCCA, Procrustes) are computed from. Memory grows with d, never with N."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from platonic.compare.metrics.features import ROW_CHUNK


@dataclass
class Moments:
    """Streamed statistics of one space: ``n`` rows, column ``total (d,)``, raw Gram ``gram = X^T X
    (d, d)``, squared row norms ``row_sq (N,)`` and ``row_dot_total = X @ total (N,)``.

    With row ``weights (N,)`` (e.g. each unique environment's number of symmetry copies) every sum over rows
    is weighted, ``n = sum(weights)``: the moments of the rows repeated ``weights`` times."""

    n: float
    total: np.ndarray
    gram: np.ndarray
    row_sq: np.ndarray
    row_dot_total: np.ndarray
    weights: np.ndarray | None = None

    def weighted(self, per_row: np.ndarray) -> np.ndarray:
        """``per_row (N,)`` times the row weights (unchanged without weights)."""
        return per_row if self.weights is None else per_row * self.weights

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.n

    @property
    def centred_gram(self) -> np.ndarray:
        """``Xc^T Xc`` with ``Xc`` column-centred."""
        return self.gram - np.outer(self.total, self.total) / self.n


def moments(x: np.ndarray, chunk: int = ROW_CHUNK, weights: np.ndarray | None = None) -> Moments:
    """One pass (two for the row dot products) over ``x (N, d)`` in float64; optional row ``weights (N,)``."""
    n, d = x.shape
    total = np.zeros(d)
    gram = np.zeros((d, d))
    row_sq = np.empty(n)
    for start in range(0, n, chunk):
        block = np.asarray(x[start : start + chunk], dtype=np.float64)
        if weights is None:
            total += block.sum(axis=0)
            gram += block.T @ block
        else:
            w = np.asarray(weights[start : start + chunk], dtype=np.float64)
            total += w @ block
            gram += block.T @ (block * w[:, None])
        row_sq[start : start + chunk] = np.einsum("ij,ij->i", block, block)
    row_dot_total = np.empty(n)
    for start in range(0, n, chunk):
        row_dot_total[start : start + chunk] = np.asarray(x[start : start + chunk], dtype=np.float64) @ total
    if weights is None:
        return Moments(n, total, gram, row_sq, row_dot_total)
    weights = np.asarray(weights, dtype=np.float64)
    return Moments(float(weights.sum()), total, gram, row_sq, row_dot_total, weights)


def cross_gram(x: np.ndarray, y: np.ndarray, chunk: int = ROW_CHUNK, weights: np.ndarray | None = None) -> np.ndarray:
    """Raw ``X^T Y`` (``X^T W Y`` with row ``weights``), shape ``(d_x, d_y)``, in float64 over row chunks."""
    if len(x) != len(y):
        raise ValueError(f"spaces have different numbers of atoms: {len(x)} vs {len(y)}")
    cross = np.zeros((x.shape[1], y.shape[1]))
    for start in range(0, len(x), chunk):
        block_y = np.asarray(y[start : start + chunk], dtype=np.float64)
        if weights is not None:
            block_y = block_y * np.asarray(weights[start : start + chunk], dtype=np.float64)[:, None]
        cross += np.asarray(x[start : start + chunk], dtype=np.float64).T @ block_y
    return cross


def centred_cross(cross: np.ndarray, mx: Moments, my: Moments) -> np.ndarray:
    """``Xc^T Yc`` from the raw cross Gram and both spaces' totals."""
    return cross - np.outer(mx.total, my.total) / mx.n
