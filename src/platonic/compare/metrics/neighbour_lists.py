"""What the neighbour metrics share of two spaces' k-NN lists: shared neighbours, cosines and distances to the
listed neighbours, each in blocks of bounded memory."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.features import CHUNK, features


def shared_neighbours(neighbours_a: np.ndarray, neighbours_b: np.ndarray) -> np.ndarray:
    """Per row, how many of its k nearest neighbours the two ``(N, k)`` lists share, ``(N,)`` int64 (mutual k-NN
    alignment is their mean over k)."""
    if neighbours_a.shape != neighbours_b.shape:
        raise ValueError(f"neighbour lists differ in shape: {neighbours_a.shape} vs {neighbours_b.shape}")
    shared = np.empty(len(neighbours_a), dtype=np.int64)
    for start in range(0, len(neighbours_a), CHUNK):
        a = neighbours_a[start : start + CHUNK]
        b = neighbours_b[start : start + CHUNK]
        shared[start : start + CHUNK] = (a[:, :, None] == b[:, None, :]).sum(axis=(1, 2))
    return shared


def neighbour_cosines(unit: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """``u_i . u_j`` for every row i of the unit rows ``unit`` and each of its listed neighbours j, ``(N, k)``:
    only the neighbours' rows are gathered, in blocks of bounded memory whatever N."""
    n, k = neighbours.shape
    values = np.empty((n, k))
    chunk = max(64, 2**24 // (k * unit.shape[1]))  # gathered rows: <= 128 MiB per block
    for start in range(0, n, chunk):
        block = slice(start, start + chunk)
        values[block] = np.einsum("id,ikd->ik", unit[block], unit[neighbours[block]])
    return values


def neighbour_distances(x: np.ndarray, neighbours: np.ndarray, unit: bool = True) -> np.ndarray:
    """Distances between the rows of ``x`` and their listed ``neighbours (N, k)``, ``(N, k)`` float64, computed from
    the rows' differences in blocks of bounded size: between unit-normalised rows (``unit``) or the rows as given."""
    fx = features(x)
    rows = fx.unit if unit else np.asarray(fx.x, dtype=np.float64)
    n, k = neighbours.shape
    chunk = max(64, 2**24 // (k * rows.shape[1]))
    out = np.empty((n, k))
    for start in range(0, n, chunk):
        block = slice(start, start + chunk)
        own = rows[block]
        other = rows[neighbours[block].ravel()].reshape(len(own), k, -1)
        out[block] = np.linalg.norm(own[:, None, :] - other, axis=2)
    return out
