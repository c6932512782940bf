"""The angular orthogonal-Procrustes distance (Williams et al., NeurIPS 2021)."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.base import Facts, MomentMetric


def procrustes_from_covariances(cross_c: np.ndarray, cxx: np.ndarray, cyy: np.ndarray) -> float:
    """Angular orthogonal-Procrustes distance (Williams et al. 2021), in radians:
    ``arccos(||Xc^T Yc||_* / (||Xc||_F ||Yc||_F))``. Zero-padding the narrower space to the wider
    one leaves the nuclear norm unchanged, so spaces of different widths compare directly."""
    nuclear = np.linalg.svd(cross_c, compute_uv=False).sum()
    denominator = np.sqrt(np.trace(cxx) * np.trace(cyy))
    return float(np.arccos(np.clip(nuclear / denominator, -1.0, 1.0)))


class Procrustes(MomentMetric):
    facts = Facts(
        "procrustes", "Procrustes angular distance (rad)",
        "angular orthogonal-Procrustes distance after centring and unit norm, in radians; 0 = identical up to"
        " rotation",
        "Williams et al., NeurIPS 2021", False, False, "all", False, "nuclear norm of the centred cross-covariance",
        "exact, from per-structure sums",
    )  # fmt: skip

    def from_covariances(self, cross, cxx, cyy, pair) -> float:
        return procrustes_from_covariances(cross, cxx, cyy)

    def from_replicates(self, centred, mx, my, pair) -> np.ndarray:
        nuclear = np.linalg.svd(centred, compute_uv=False).sum(axis=1)
        traces = np.trace(mx.centred_gram, axis1=1, axis2=2) * np.trace(my.centred_gram, axis1=1, axis2=2)
        return np.arccos(np.clip(nuclear / np.sqrt(traces), -1.0, 1.0))
