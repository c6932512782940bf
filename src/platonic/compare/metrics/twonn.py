"""TwoNN intrinsic dimension (Facco et al., Sci. Rep. 2017) of one space, from its neighbour lists: a model's
summary, not a metric of a pair."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.neighbour_lists import neighbour_distances

TWONN_DISTANCES = ("unit", "euclidean")  # similarity.twonn_distance


TWONN_DUPLICATES = ("skip", "drop")  # similarity.twonn_duplicates


def twonn_ratios(distances: np.ndarray, zero_tolerance: float = 1e-5, duplicates: str = "skip") -> np.ndarray:
    """TwoNN's ratios ``mu = r2 / r1``, sorted, ``(M,)`` with M <= N, from each row's distances to its nearest
    neighbours ``(N, k)`` (any order). Neighbours ``zero_tolerance`` or closer count as the row's own position:
    ``duplicates="skip"`` passes over them (r1 is the first distance above the tolerance, r2 the first above r1 plus
    the tolerance; rows without two such neighbours are left out); ``"drop"`` takes the two nearest as they are and
    leaves out a row whose r1 is within the tolerance."""
    if duplicates not in TWONN_DUPLICATES:
        raise ValueError(f"unknown duplicates {duplicates!r}; use {' or '.join(TWONN_DUPLICATES)}")
    distances = np.sort(distances, axis=1)
    if duplicates == "drop":
        r1, r2 = distances[:, 0], distances[:, 1]
        kept = r1 > zero_tolerance
        return np.sort(r2[kept] / r1[kept])
    distinct = distances > zero_tolerance
    has_first = distinct.any(axis=1)
    first_index = np.argmax(distinct, axis=1)
    r1 = distances[np.arange(len(distances)), first_index]
    beyond = distances > r1[:, None] + zero_tolerance
    has_second = beyond.any(axis=1) & has_first
    r2 = distances[np.arange(len(distances)), np.argmax(beyond, axis=1)]
    return np.sort(r2[has_second] / r1[has_second])


def twonn_fit(mu: np.ndarray, discard: float = 0.1) -> float:
    """TwoNN's dimension from the sorted ratios ``mu (M,)``: the least-squares slope through the origin of
    ``-log(1 - i/M)`` on ``log(mu_i)``, i = 1.. the ratios kept: the largest ``discard`` fraction is left out, and
    always at least the largest (``-log(1 - M/M)`` is infinite). NaN with fewer than 10 ratios."""
    n = len(mu)
    if n < 10:
        return float("nan")
    kept = min(int(np.floor(n * (1 - discard))), n - 1)
    log_mu = np.log(mu[:kept])
    empirical = -np.log(1 - np.arange(1, kept + 1) / n)
    return float(log_mu @ empirical / (log_mu @ log_mu))


def twonn_dimension(
    x: np.ndarray,
    neighbours: np.ndarray,
    discard: float = 0.1,
    zero_tolerance: float = 1e-5,
    duplicates: str = "skip",
    distance: str = "unit",
) -> float:
    """TwoNN intrinsic dimension (Facco et al., Sci. Rep. 7, 12140 (2017)) of ``x (N, d)`` from the ratio of the
    second to the first nearest-neighbour distance (``twonn_ratios``), fitting ``-log(1 - F(mu)) = d log(mu)``
    through the origin after discarding the largest ``discard`` fraction of the ratios (``twonn_fit``; 0.1 as Facco
    et al. recommend). ``neighbours (N, k)``: each row's nearest neighbours (k >= 2) in the geometry of
    ``distance``: ``"unit"``, distances between unit-normalised rows (the cosine geometry of the k-NN lists), or
    ``"euclidean"``, between the rows as given (lists searched by Euclidean distance).

    Symmetry-equivalent atoms of a crystal have (numerically) identical embeddings; such duplicates would make
    ``mu`` blow up (float32 round-off leaves them ~1e-6 apart on the unit sphere, distinct atoms are ~1e-3 or
    more), so by default (``duplicates="skip"``) neighbours within ``zero_tolerance`` are skipped and r2 is the
    first neighbour farther than r1 by more than the tolerance; ``"drop"`` leaves out the atoms whose nearest
    neighbour is within the tolerance instead."""
    if distance not in TWONN_DISTANCES:
        raise ValueError(f"unknown TwoNN distance {distance!r}; use {' or '.join(TWONN_DISTANCES)}")
    distances = neighbour_distances(x, neighbours, unit=distance == "unit")
    return twonn_fit(twonn_ratios(distances, zero_tolerance, duplicates), discard)
