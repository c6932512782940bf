"""Spearman rank correlation with a structure-bootstrap interval, a permutation chance level and controls.

Used to test whether a latent signal (cross-model disagreement, atypicality, latent symmetry breaking)
tracks a physical one (prediction spread, formation-energy error, forbidden force). Items are atoms or
structures; ``groups`` gives each item's structure, and both the bootstrap and the permutations move whole
structures, so atoms of one structure never count as independent evidence.

*Controls*: a partial rank correlation removes what covariates such as element identity (one-hot) or
structure size explain: both variables' ranks are residualised on the covariates' ranks (with an
intercept) by least squares and the residuals correlated. The *baseline* is how well the covariates alone rank the
target: the Spearman correlation between the target and its least-squares prediction from them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import rankdata

from platonic.compare import bootstrap

__all__ = ["RankTest", "baseline_spearman", "partial_spearman", "rank_test", "spearman"]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    scale = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / scale) if scale > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho of ``x (n,)`` and ``y (n,)`` (average ranks for ties); NaN when either is constant."""
    return _pearson(rankdata(x), rankdata(y))


def _ranked(controls: np.ndarray, n: int) -> np.ndarray:
    """Each column of ``controls`` replaced by its ranks; a column of two values (an indicator) is kept as it is,
    since its ranks are an affine copy of it and span the same space with the intercept."""
    controls = np.asarray(controls, dtype=np.float64).reshape(n, -1)
    if not controls.shape[1] or not n:
        return controls
    binary = np.all((controls == controls.min(axis=0)) | (controls == controls.max(axis=0)), axis=0)
    if binary.all():
        return controls
    ranked = controls.copy()
    ranked[:, ~binary] = rankdata(controls[:, ~binary], axis=0)
    return ranked


def _projector(controls: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``(design (n, c + 1), map (c + 1, n), rank)``: the intercept-and-``controls`` design, the pseudo-inverse that
    maps values to their least-squares coefficients (through the Gram matrix: cheap for n >> c) and its rank."""
    design = np.column_stack([np.ones(len(controls)), controls])
    # scale columns to unit length so that one relative tolerance fits all
    norms = np.linalg.norm(design, axis=0)
    norms[norms == 0] = 1.0
    scaled = design / norms
    eigenvalues, vectors = np.linalg.eigh(scaled.T @ scaled)
    keep = eigenvalues > eigenvalues.max() * 1e-10
    inverse = (vectors[:, keep] / eigenvalues[keep]) @ vectors[:, keep].T
    return scaled, inverse @ scaled.T, int(keep.sum())


def _residuals(values: np.ndarray, controls: np.ndarray) -> np.ndarray:
    design, solve, _ = _projector(controls)
    return values - design @ (solve @ values)


# a partial correlation needs this many residual degrees of freedom (items less the controls' rank and the
# intercept): with fewer, the residuals are determined by the fit and correlate at +-1 whatever the data
MIN_RESIDUAL_DOF = 3


def partial_spearman(x: np.ndarray, y: np.ndarray, controls: np.ndarray) -> float:
    """Rank correlation of ``x`` and ``y`` after removing what the ranks of ``controls (n, c)`` explain linearly of
    their ranks (the partial correlation of the ranks of every variable); NaN where the controls leave fewer than
    ``MIN_RESIDUAL_DOF`` residual degrees of freedom."""
    design, solve, rank = _projector(_ranked(controls, len(x)))
    if len(x) - rank < MIN_RESIDUAL_DOF:
        return float("nan")
    both = np.column_stack([rankdata(x), rankdata(y)])
    residual = both - design @ (solve @ both)
    return _pearson(residual[:, 0], residual[:, 1])


def baseline_spearman(y: np.ndarray, controls: np.ndarray) -> float:
    """How well ``controls (n, c)`` alone rank ``y``: Spearman of ``y`` and the least-squares prediction of its
    ranks from the ranks of the controls (in sample)."""
    controls = _ranked(controls, len(y))
    ranks = rankdata(y)
    return spearman(y, ranks - _residuals(ranks, controls))


@dataclass(frozen=True)
class RankTest:
    """A correlation ``value`` over ``n`` items of ``n_structures`` structures, its bootstrap ``ci_low``/``ci_high``
    (95 %), the mean ``chance`` value over permutations with its 95 % range ``chance_low``/``chance_high``, and the
    two-sided permutation ``p_value`` ((1 + #|permuted| >= |value|) / (1 + permutations))."""

    value: float
    ci_low: float
    ci_high: float
    chance: float
    chance_low: float
    chance_high: float
    p_value: float
    n: int
    n_structures: int

    def row(self) -> dict:
        return asdict(self)


def rank_test(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    replicates: int = 200,
    permutations: int = 200,
    seed: int = 0,
    controls: np.ndarray | None = None,
) -> RankTest:
    """Spearman (or, with ``controls``, partial Spearman) of ``x (n,)`` and ``y (n,)``, items grouped by structure
    ``groups (n,)``; items where either value is not finite are left out. Replicates draw structures with
    replacement (:func:`platonic.compare.bootstrap.structure_counts`); permutations reorder whole structures of
    ``y`` (:func:`platonic.compare.bootstrap.block_permutation`)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if controls is not None:
        controls = np.asarray(controls, dtype=np.float64).reshape(len(x), -1)
        keep &= np.all(np.isfinite(controls), axis=1)
        controls = controls[keep]
    x, y = x[keep], y[keep]
    _, groups = np.unique(np.asarray(groups)[keep], return_inverse=True)
    n_structures = int(groups.max()) + 1 if len(groups) else 0
    nan = float("nan")
    if len(x) < 3:
        return RankTest(nan, nan, nan, nan, nan, nan, nan, len(x), n_structures)

    def statistic(rows: np.ndarray, target: np.ndarray) -> float:
        if controls is None:
            return spearman(x[rows], target[rows])
        return partial_spearman(x[rows], target[rows], controls[rows])

    everything = np.arange(len(x))
    value = statistic(everything, y)
    # rows of each structure, in order, so that a replicate repeats a structure's rows as often as it is drawn
    order = np.argsort(groups, kind="stable")
    starts = np.searchsorted(groups[order], np.arange(n_structures + 1))
    counts = bootstrap.structure_counts(n_structures, replicates, seed)
    drawn = []
    for count in counts:
        rows = np.concatenate([np.tile(order[starts[s] : starts[s + 1]], c) for s, c in enumerate(count) if c])
        drawn.append(statistic(rows, y))
    _, low, high, _ = bootstrap.summarise(np.asarray(drawn), value)
    # the bias-shifted percentile interval can leave [-1, 1] near the bounds; a correlation cannot
    low, high = (float(np.clip(v, -1.0, 1.0)) if np.isfinite(v) else v for v in (low, high))
    rng = np.random.default_rng(seed + 1)
    orders = (bootstrap.block_permutation(groups, rng) for _ in range(permutations))
    if controls is None:
        permuted = np.array([statistic(everything, y[order]) for order in orders])
    else:  # the items and their controls stay put: one fit of the controls serves every permutation
        design, solve, rank = _projector(_ranked(controls, len(x)))
        rx = rankdata(x)
        rx = rx - design @ (solve @ rx)
        enough = len(x) - rank >= MIN_RESIDUAL_DOF
        permuted = np.array([_pearson(rx, (r := rankdata(y[order])) - design @ (solve @ r)) if enough else nan
                             for order in orders])  # fmt: skip
    finite = permuted[np.isfinite(permuted)]
    if finite.size == 0 or not np.isfinite(value):
        chance = chance_low = chance_high = p_value = nan
    else:
        chance = float(finite.mean())
        chance_low, chance_high = (float(v) for v in np.percentile(finite, bootstrap.INTERVAL))
        p_value = float((1 + np.sum(np.abs(finite) >= abs(value))) / (1 + finite.size))
    return RankTest(value, low, high, chance, chance_low, chance_high, p_value, len(x), n_structures)
