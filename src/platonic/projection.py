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
        out[start : start + chunk] = unit_projection(block, anchors)
    return out


def unit_projection(unit: np.ndarray, unit_anchors: np.ndarray) -> np.ndarray:
    """The projection of rows already scaled to unit length: ``unit (N, d)`` float64 times ``unit_anchors (K, d)``
    float64 (``unit_rows`` of the anchors' features) -> ``(N, K)`` float32, as ``anchor_projection`` computes it.
    Unit rows computed once serve any number of anchor sets."""
    return (unit @ unit_anchors.T).astype(np.float32)
