"""The Wasserstein distance between two point clouds: an exact earth mover's plan with POT."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.base import Facts, Metric

OT_COSTS = ("sqeuclidean", "euclidean")  # similarity.ot_cost


def optimal_transport_distance(x: np.ndarray, y: np.ndarray, cost: str = "sqeuclidean") -> float:
    """Wasserstein distance between the point clouds ``x (m, d)`` and ``y (m', d)``: uniform weights, the exact
    earth mover's plan ``P`` of POT for the ground ``cost``. ``"sqeuclidean"``: the 2-Wasserstein distance
    ``sqrt(sum_ij P_ij |x_i - y_j|^2)``; ``"euclidean"``: the 1-Wasserstein distance ``sum_ij P_ij |x_i - y_j|``
    (the plan's total cost). NaN for spaces of different widths (compare e.g. the anchor space)."""
    import ot

    if cost not in OT_COSTS:
        raise ValueError(f"unknown transport cost {cost!r}; use {' or '.join(OT_COSTS)}")
    if x.shape[1] != y.shape[1]:
        return float("nan")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    weights_x, weights_y = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    total = ot.emd2(weights_x, weights_y, ot.dist(x, y, metric=cost), numItermax=10_000_000)
    return float(np.sqrt(max(total, 0.0))) if cost == "sqeuclidean" else float(total)


class OptimalTransport(Metric):
    """No interval (one exact earth mover's distance per replicate costs as much as the value) and no chance level
    (unpaired point clouds do not change under a permutation)."""

    facts = Facts(
        "optimal_transport", "2-Wasserstein distance",
        "2-Wasserstein distance between the point clouds; defined where the spaces have equal width (the"
        " anchor space)",
        "exact EMD with POT (Flamary et al., JMLR 2021)", False, False, "subsample", False,
        "exact earth mover's distance", "none: one exact earth mover's distance per replicate", scale_free=False,
    )  # fmt: skip

    def value(self, pair) -> dict:
        rows = pair.c.subsample
        return {(self.name, True): optimal_transport_distance(pair.x[rows], pair.y[rows], pair.c.settings.ot_cost)}

    def replicates(self, pair) -> dict:
        return {(self.name, True): np.full(pair.resampling.n_replicates, np.nan)}

    def permuted(self, pair) -> dict:
        return {(self.name, True): np.nan}
