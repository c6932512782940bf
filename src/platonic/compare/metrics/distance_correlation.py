"""Distance correlation (Szekely et al., Ann. Stat. 2007) of two subsample distance matrices."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.base import Facts, Metric


def distance_correlation_from_distances(distances_x: np.ndarray, distances_y: np.ndarray) -> float:
    """Distance correlation from both point clouds' ``distance_matrix`` (each computed once per model)."""

    def doubly_centred(d):
        return d - d.mean(axis=0) - d.mean(axis=1)[:, None] + d.mean()

    a, b = doubly_centred(distances_x), doubly_centred(distances_y)
    dcov_xy, dcov_xx, dcov_yy = (a * b).mean(), (a * a).mean(), (b * b).mean()
    if dcov_xx <= 0 or dcov_yy <= 0:
        return float("nan")
    return float(np.sqrt(max(dcov_xy, 0.0) / np.sqrt(dcov_xx * dcov_yy)))


def weighted_distance_correlations(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Distance correlation of two ``(m, m)`` distance matrices under each row of ``p (B, m)``, a probability
    vector over the rows (a bootstrap replicate's counts, normalised): the V-statistic of the rows repeated by
    their weights, ``dCov^2 = p^T (a o b) p - 2 sum_i p_i alpha_i beta_i + alpha beta`` with ``alpha_i = (a p)_i``
    and ``alpha = p^T a p``. Uniform ``p`` gives ``distance_correlation``'s value."""
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))

    def dcov(u, v):
        mean_u, mean_v = p @ u, p @ v  # (B, m): alpha_i per replicate
        grand_u, grand_v = np.einsum("bi,bi->b", mean_u, p), np.einsum("bi,bi->b", mean_v, p)
        cross = np.einsum("bi,bi->b", p @ (u * v), p)
        return cross - 2 * np.einsum("bi,bi,bi->b", p, mean_u, mean_v) + grand_u * grand_v

    xy, xx, yy = dcov(a, b), dcov(a, a), dcov(b, b)
    out = np.sqrt(np.clip(xy, 0.0, None) / np.sqrt(np.clip(xx * yy, 1e-300, None)))
    return np.where((xx > 0) & (yy > 0), out, np.nan)


class DistanceCorrelation(Metric):
    facts = Facts(
        "distance_correlation", "distance correlation",
        "distance correlation of the two point clouds",
        "Szekely et al., Ann. Stat. 2007", True, False, "subsample", False, "dense distance matrices",
        "exact, the subsample's rows weighted by their draws",
    )  # fmt: skip
    needs = frozenset({"distances"})

    def value(self, pair) -> dict:
        return {(self.name, True): distance_correlation_from_distances(pair.sx.distances, pair.sy.distances)}

    def replicates(self, pair) -> dict:
        r = pair.resampling
        p = r.counts[:, r.groups[pair.c.subsample]]
        with np.errstate(invalid="ignore", divide="ignore"):
            p = p / p.sum(axis=1, keepdims=True)
        return {(self.name, True): weighted_distance_correlations(pair.sx.distances, pair.sy.distances, p)}
