"""Projection into the shared space: each atom's cosine similarity to the anchor atoms of the same model."""

from __future__ import annotations

import numpy as np

from platonic.compare.neighbours import unit_rows

CHUNK = 16384


def anchor_projection(features: np.ndarray, anchors: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """``z[i, k] = cos(e_i, a_k)``: ``features (N, d)``, ``anchors (K, d)`` -> ``(N, K)`` float32.

    Accumulates in float64, streaming over ``chunk`` rows; rows that are NaN stay NaN, and a zero
    vector has cosine 0 with everything.
    """
    anchors = unit_rows(np.asarray(anchors, dtype=np.float64))
    out = np.empty((len(features), len(anchors)), dtype=np.float32)
    for start in range(0, len(features), chunk):
        block = unit_rows(np.asarray(features[start : start + chunk], dtype=np.float64))
        out[start : start + chunk] = block @ anchors.T
    return out
