"""Debiased linear CKA: unbiased HSIC estimators (Song et al., JMLR 2012) from streamed moments."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.base import Facts, MomentMetric
from platonic.compare.metrics.moments import Moments


def _unbiased_hsic(cross_sq: float, mx: Moments, my: Moments, row_sq_dot: float, u_dot_v: float) -> float:
    """Unbiased HSIC (Song et al., JMLR 13, 1393 (2012), eq. 5) of linear kernels ``K = XX^T`` and
    ``L = YY^T``, from feature-space sums: ``cross_sq = ||X^T Y||_F^2``, ``row_sq_dot = sum_i
    |x_i|^2 |y_i|^2`` and ``u_dot_v = sum_i (x_i . s_x - |x_i|^2)(y_i . s_y - |y_i|^2)``."""
    m = mx.n
    trace_term = cross_sq - row_sq_dot  # tr(K~ L~), K~ = K with zero diagonal
    sum_k = mx.total @ mx.total - mx.weighted(mx.row_sq).sum()
    sum_l = my.total @ my.total - my.weighted(my.row_sq).sum()
    return (trace_term + sum_k * sum_l / ((m - 1) * (m - 2)) - 2 * u_dot_v / (m - 2)) / (m * (m - 3))


def debiased_cka_from_moments(cross: np.ndarray, mx: Moments, my: Moments) -> float:
    """Debiased linear CKA: unbiased HSIC estimators (as in Nguyen et al. 2021 and Huh et al. 2024)
    in place of the biased ones; ``cross`` is the raw ``X^T Y`` (``X^T W Y`` for weighted moments: then it is
    the estimator on the rows repeated by their weights, whose copies are not each other's diagonal)."""
    u = mx.row_dot_total - mx.row_sq
    v = my.row_dot_total - my.row_sq
    wu, wv = mx.weighted(u), my.weighted(v)
    hsic_xy = _unbiased_hsic(float(np.sum(cross**2)), mx, my, float(mx.row_sq @ my.weighted(my.row_sq)), float(u @ wv))
    hsic_xx = _unbiased_hsic(
        float(np.sum(mx.gram**2)), mx, mx, float(mx.row_sq @ mx.weighted(mx.row_sq)), float(u @ wu)
    )
    hsic_yy = _unbiased_hsic(
        float(np.sum(my.gram**2)), my, my, float(my.row_sq @ my.weighted(my.row_sq)), float(v @ wv)
    )
    if hsic_xx <= 0 or hsic_yy <= 0:
        return float("nan")
    return float(hsic_xy / np.sqrt(hsic_xx * hsic_yy))


class DebiasedCka(MomentMetric):
    """Debiased CKA reads the raw cross Gram and both spaces' row sums rather than the centred covariances."""

    facts = Facts(
        "debiased_cka", "debiased linear CKA",
        "linear CKA with unbiased HSIC estimators; about 0 for unrelated spaces",
        "Song et al., JMLR 2012", True, False, "all", False, "from streamed moments",
        "exact, from per-structure sums",
    )  # fmt: skip

    def value(self, pair) -> dict:
        return {(self.name, True): debiased_cka_from_moments(pair.cross, pair.sx.moments, pair.sy.moments)}

    def replicates(self, pair) -> dict:
        cross, mx, my = pair.replicate_cross, pair.sx.replicates, pair.sy.replicates
        return {(self.name, True): np.array([debiased_cka_from_moments(cross[b], mx.full(b), my.full(b))
                                             for b in range(len(cross))])}  # fmt: skip
