"""Linear centred kernel alignment (Kornblith et al., ICML 2019) from streamed covariances."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.base import Facts, MomentMetric


def cka_from_covariances(cross: np.ndarray, self_x: np.ndarray, self_y: np.ndarray) -> float:
    """CKA from centred (cross-)covariances, so per-model Grams are computed once."""
    denominator = np.linalg.norm(self_x) * np.linalg.norm(self_y)
    if denominator == 0:
        return float("nan")
    return float(np.linalg.norm(cross) ** 2 / denominator)


class LinearCka(MomentMetric):
    facts = Facts(
        "linear_cka", "linear CKA",
        "linear centred kernel alignment; 1 = identical up to rotation and isotropic scale",
        "Kornblith et al., ICML 2019", True, False, "all", False, "from streamed d x d covariances",
        "exact, from per-structure sums",
    )  # fmt: skip

    def from_covariances(self, cross, cxx, cyy, pair) -> float:
        return cka_from_covariances(cross, cxx, cyy)

    def from_replicates(self, centred, mx, my, pair) -> np.ndarray:
        norms = np.linalg.norm(mx.centred_gram, axis=(1, 2)) * np.linalg.norm(my.centred_gram, axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(norms > 0, np.sum(centred**2, axis=(1, 2)) / norms, np.nan)
