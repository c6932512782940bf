"""Values of model pairs read out of a similarity store, and means over groups of pairs with their intervals.

Every pair is resampled with the same structure draws, so the mean over a group's pairs in each bootstrap replicate
is a replicate of the group's mean, and the difference of two group means (or of two spaces) in each replicate is a
replicate of the difference; ``platonic.compare.bootstrap.summarise`` turns either into an interval.

A pair is unordered, ``(i, j)`` with i < j in the store's model order. A directed metric (``registry.DIRECTED``:
model_a predicts model_b) has two values per pair; here it is symmetrised, the mean of both directions, in its
value, every replicate and its chance level (as the model tree's distances, ``model_space.model_distances``), so
that a pair counts once and the result does not depend on the order of the models. An undirected metric's value
is the same in both cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from platonic.compare.bootstrap import summarise
from platonic.compare.registry import DIRECTED


@dataclass(frozen=True)
class PairValues:
    """One metric in one space for ``n`` unordered pairs: ``value``, ``ci_low``, ``ci_high``, ``chance``,
    ``chance_sd`` ``(n,)`` and the bootstrap ``replicates (n, B)`` (B = 0 in a store without a bootstrap)."""

    value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    chance: np.ndarray
    chance_sd: np.ndarray
    replicates: np.ndarray


def has_replicates(ds: xr.Dataset) -> bool:
    """Whether ``ds`` stores at least two bootstrap replicates per value (else no interval can be formed)."""
    return "bootstrap_replicates" in ds and ds.sizes.get("replicate", 0) > 1


def pair_values(ds: xr.Dataset, metric: str, space: str, pairs: list[tuple[int, int]]) -> PairValues:
    """The values of ``metric`` in ``space`` for ``pairs`` (indices into ``ds.model_a``), directed metrics
    symmetrised (the module's docstring). A symmetrised pair's interval is ``summarise`` of its symmetrised
    replicates; its ``chance_sd`` the mean of both directions' (an upper bound of the sd of their mean)."""
    n = len(pairs)
    index = tuple(np.array(pairs, dtype=np.int64).reshape(n, 2).T)
    reverse = index[::-1]
    directed = metric in DIRECTED

    def at(name: str, cells) -> np.ndarray:
        if name not in ds:
            return np.full(n, np.nan)
        return ds[name].sel(metric=metric, space=space).values[cells].astype(np.float64)

    def both(name: str) -> np.ndarray:
        return 0.5 * (at(name, index) + at(name, reverse)) if directed else at(name, index)

    n_replicates = ds.sizes.get("replicate", 0) if has_replicates(ds) else 0
    replicates = np.zeros((n, 0))
    if n_replicates:
        stack = ds["bootstrap_replicates"].sel(metric=metric, space=space).values
        replicates = 0.5 * (stack[index] + stack[reverse]) if directed else stack[index]
    value = both("similarity")
    if directed:
        intervals = np.array([summarise(r, v)[1:3] for r, v in zip(replicates, value, strict=True)]).reshape(n, 2)
        low, high = intervals.T
    else:
        low, high = at("ci_low", index), at("ci_high", index)
    return PairValues(value, low, high, both("chance"), both("chance_sd"), np.asarray(replicates, dtype=np.float64))


def group_mean(values: PairValues) -> tuple[float, np.ndarray, float]:
    """The mean over the pairs of ``values``, its replicates ``(B,)`` (empty without a bootstrap) and the pairs'
    mean chance level; NaN where there are no pairs."""
    if values.value.size == 0:
        return float("nan"), np.zeros(0), float("nan")
    return float(np.mean(values.value)), values.replicates.mean(axis=0), float(np.mean(values.chance))


def interval(replicates: np.ndarray, mean: float) -> dict[str, float]:
    """``standard_error``, ``ci_low``, ``ci_high`` of ``mean`` from its ``replicates`` (``summarise``)."""
    se, low, high, _ = summarise(replicates, mean)
    return {"ci_low": low, "ci_high": high, "standard_error": se}


def excludes_zero(row: dict) -> bool | str:
    """Whether a difference's interval (``row['ci_low']``, ``row['ci_high']``) excludes 0; "" without one."""
    return bool(row["ci_low"] > 0 or row["ci_high"] < 0) if np.isfinite(row["ci_low"]) else ""
