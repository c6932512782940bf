"""Representational similarity analysis (Kriegeskorte et al., Front. Syst. Neurosci. 2008): the Spearman rank
correlation of two models' pairwise distances on the seeded subsample, each distinct pair of atoms once."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.base import Facts, Metric


def upper_triangle(distances: np.ndarray) -> np.ndarray:
    """The distances of the distinct pairs i < j of a ``(m, m)`` matrix, ``(m (m - 1) / 2,)`` in row order."""
    return distances[np.triu_indices(len(distances), 1)]


def rsa_from_distances(distances_x: np.ndarray, distances_y: np.ndarray) -> float:
    """Spearman correlation of the upper triangles of two ``(m, m)`` distance matrices: the Pearson correlation of
    their ranks, ties at their mean rank; NaN where either has a single distinct distance."""
    from scipy.stats import rankdata

    a = rankdata(upper_triangle(distances_x))
    b = rankdata(upper_triangle(distances_y))
    a -= a.mean()
    b -= b.mean()
    denominator = np.sqrt((a @ a) * (b @ b))
    if not denominator > 0:
        return float("nan")
    return float(a @ b / denominator)


def weighted_rsa(distances_x: np.ndarray, distances_y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """RSA of the subsample's rows repeated ``counts (B, m)`` times, for each row of counts, ``(B,)``: each distinct
    pair i < j stands for its ``c_i c_j`` copies, ranked among the copies (ties at their mean rank), and the Pearson
    correlation of the ranks is weighted likewise. Pairs of two copies of one row (distance 0 in both spaces, which
    would raise the correlation) are left out, as the value has no pair of a row with itself. Counts of one give
    ``rsa_from_distances``'s value."""
    i, j = np.triu_indices(len(distances_x), 1)
    ties = [np.unique(d[i, j], return_inverse=True) for d in (distances_x, distances_y)]
    counts = np.asarray(counts, dtype=np.float64)
    out = np.full(len(counts), np.nan)
    for b, c in enumerate(counts):
        weights = c[i] * c[j]
        total = weights.sum()
        if not total > 0:
            continue
        ranks = []
        for values, inverse in ties:
            group = np.bincount(inverse, weights=weights, minlength=len(values))
            mean_rank = np.cumsum(group) - group + (group + 1) / 2  # the mean of the group's positions
            rank = mean_rank[inverse]
            ranks.append(rank - (weights @ rank) / total)
        ra, rb = ranks
        denominator = np.sqrt((weights @ (ra * ra)) * (weights @ (rb * rb)))
        if denominator > 0:
            out[b] = weights @ (ra * rb) / denominator
    return out


class Rsa(Metric):
    """From the subsample's distance matrices of both models' summaries (as distance correlation); a bootstrap
    replicate weights each pair by its rows' draws (``weighted_rsa``), the chance level is the value with the second
    model's rows permuted by whole structures."""

    facts = Facts(
        "rsa", "RSA (Spearman)",
        "Spearman correlation of the two models' pairwise distances on the subsample (representational similarity"
        " analysis); about 0 for unrelated spaces",
        "Kriegeskorte et al., Front. Syst. Neurosci. 2008", True, False, "subsample", False,
        "ranks of the dense distance matrices' upper triangles",
        "exact, the subsample's distinct pairs weighted by their rows' draws",
    )  # fmt: skip
    needs = frozenset({"distances"})

    def value(self, pair) -> dict:
        return {(self.name, True): rsa_from_distances(pair.sx.distances, pair.sy.distances)}

    def replicates(self, pair) -> dict:
        r = pair.resampling
        counts = r.counts[:, r.groups[pair.c.subsample]]
        return {(self.name, True): weighted_rsa(pair.sx.distances, pair.sy.distances, counts)}
