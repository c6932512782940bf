"""How much a metric moves and what it is by chance: a structure bootstrap and structure-block permutations.

**Bootstrap.** A replicate draws the structures with replacement (``structure_counts``); its value is the metric on
the drawn structures, a structure drawn c times counting c times (its rows repeated c times). No replicate
searches neighbours again or rereads atoms. Each metric's class makes its replicates (``replicates`` in
``platonic.compare.metrics``) from what this module gives it:

- moment metrics (linear CKA, debiased CKA, SVCCA, Procrustes, GFRE) are exact: every replicate's Grams, cross
  Grams and totals are the counts times per-structure sums (``replicate_sums``), then the same formulas as the
  value (``platonic.compare.metrics``), GFRE with the relative ridge its value chose (no replicate
  cross-validates again) and SVCCA with the value's cap on its directions;
- neighbour metrics keep each atom's neighbour list fixed (an approximation: in a resample, neighbours from
  structures not drawn would be replaced by others): mutual k-NN is the count-weighted mean of each atom's shared
  neighbours, CKNNA the unbiased HSIC of the masked kernels with rows repeated by their counts, information
  imbalance the count-weighted mean rank of the queries, LFRE the root of the count-weighted mean squared error;
- distance correlation is the V-statistic on its subsample with rows weighted by their counts (exact), RSA the
  Spearman correlation of the subsample's distinct pairs, each weighted by its two rows' counts;
- optimal transport gets no interval: one exact earth mover's distance per replicate costs as much as the value.

The diagonal (a model with itself) does not move with the draw: its interval is the value.

**Chance level.** Model B's rows are permuted by whole structures (``block_permutation``: B's structures in a
random order, each structure's rows kept together), so that every atom of A meets an atom of an unrelated
structure of B while B's own geometry is untouched; every metric is computed again on (A, permuted B) with
B's neighbour lists permuted along (no new search; ``metrics.Pair.permutations``); GFRE and LFRE choose their
ridge on each permuted pair as the value does. Optimal transport compares unpaired point clouds and does not
change under a permutation, so it has no chance level; information imbalance and LFRE use at most
``metrics.CHANCE_QUERIES`` of the queries.
"""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.moments import Moments
from platonic.compare.metrics.svcca import svcca_whitening

INTERVAL = (2.5, 97.5)  # percentiles of the bootstrap distribution: a 95 % interval


def structure_counts(n_structures: int, n_replicates: int, seed: int) -> np.ndarray:
    """How often each structure is drawn in each bootstrap replicate, ``(n_replicates, n_structures)`` int64: a
    multinomial draw of ``n_structures`` structures with equal probabilities (``numpy.random.default_rng(seed)``),
    i.e. sampling the structures with replacement."""
    if n_replicates == 0 or n_structures == 0:
        return np.zeros((n_replicates, n_structures), dtype=np.int64)
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_structures, np.full(n_structures, 1.0 / n_structures), size=n_replicates).astype(np.int64)


def block_permutation(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation ``perm (N,)`` of the rows that moves whole structures: the structures of ``groups (N,)`` in a
    random order, each one's rows together and in their order; row i of model A is paired with row ``perm[i]`` of
    model B."""
    unique, first = np.unique(groups, return_index=True)
    rank = np.empty(len(unique), dtype=np.int64)
    rank[rng.permutation(len(unique))] = np.arange(len(unique))
    position = np.searchsorted(unique, groups)
    return np.lexsort((np.arange(len(groups)), rank[position]))


def summarise(replicates: np.ndarray, value: float) -> tuple[float, float, float, float]:
    """Standard error (sample standard deviation of the replicates), the 95 % interval and the bootstrap's bias
    (mean of the replicates minus ``value``), ignoring replicates where the metric is undefined; NaN where fewer
    than two are finite.

    The interval is the 2.5 / 97.5 % percentiles of the replicates minus that bias: a structure drawn twice pairs
    each of its atoms with an identical copy, which raises dependence measures (CKA, distance correlation) by an
    amount that matters only near their chance level; the shift keeps the interval about the estimate."""
    finite = np.asarray(replicates, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size < 2 or not np.isfinite(value):
        return float("nan"), float("nan"), float("nan"), float("nan")
    bias = float(finite.mean() - value)
    low, high = np.percentile(finite, INTERVAL) - bias
    return float(finite.std(ddof=1)), float(low), float(high), bias


class Resampling:
    """What every replicate and permutation of one comparison shares: each row's structure ``groups (N,)``
    (0..S-1), the bootstrap ``counts (B, S)``, which structures are GFRE's training ones ``train_structures
    (S,)``, the row ``weights (N,)`` of the moment metrics (None: uniform), and the permutations ``(P, N)``."""

    def __init__(self, groups, counts, train_structures, weights=None, permutations=()):
        self.groups = np.asarray(groups, dtype=np.int64)
        self.counts = np.asarray(counts, dtype=np.float64)
        self.train_structures = np.asarray(train_structures, dtype=bool)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.permutations = [np.asarray(p, dtype=np.int64) for p in permutations]
        self.n_structures = self.counts.shape[1]

    @property
    def n_replicates(self) -> int:
        return self.counts.shape[0]

    def row_counts(self, b: int) -> np.ndarray:
        """How often each row is drawn in replicate ``b``."""
        return self.counts[b, self.groups]

    @property
    def count_matrix(self) -> np.ndarray:
        """How often each row is drawn in every replicate, ``(N, B)``: the rows' weights of all replicates at once."""
        return self.counts[:, self.groups].T

    def row_weights(self, b: int) -> np.ndarray:
        """The moment metrics' row weights in replicate ``b``: its counts times the rows' own weights."""
        counts = self.row_counts(b)
        return counts if self.weights is None else counts * self.weights

    def per_structure(self, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """``values`` summed per structure, ``(S,)``; with ``rows``, ``values[j]`` belongs to row ``rows[j]``."""
        groups = self.groups if rows is None else self.groups[rows]
        return np.bincount(groups, weights=values, minlength=self.n_structures)

    def mean(self, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Per replicate, the count-weighted mean of per-row ``values`` (of ``rows``, default every row), ``(B,)``."""
        ones = np.ones(len(values))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.counts @ self.per_structure(values, rows)) / (self.counts @ self.per_structure(ones, rows))


def replicate_sums(
    x: np.ndarray, y: np.ndarray, resampling: Resampling, block_bytes: int = 2**27
) -> tuple[np.ndarray, np.ndarray]:
    """Every replicate's ``sum_i c_b(i) w_i x_i y_i^T`` over the training and over the test structures,
    two ``(B, d_x, d_y)`` arrays: per-structure sums, in blocks of ``block_bytes``, each block contracted with the
    counts of its structures (the training ones with the training sums, the test ones with the test sums)."""
    groups, counts = resampling.groups, resampling.counts
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(resampling.n_structures + 1))
    width = x.shape[1] * y.shape[1]
    chunk = max(1, block_bytes // (8 * width))
    block = np.empty((min(chunk, resampling.n_structures), width))
    out = []
    for part in (resampling.train_structures, ~resampling.train_structures):
        total = np.zeros((len(counts), width))
        structures = np.flatnonzero(part)
        for start in range(0, len(structures), chunk):
            block_structures = structures[start : start + chunk]
            for j, s in enumerate(block_structures):
                rows = order[bounds[s] : bounds[s + 1]]
                ys = np.asarray(y[rows], dtype=np.float64)
                if resampling.weights is not None:
                    ys = ys * resampling.weights[rows, None]
                block[j] = (np.asarray(x[rows], dtype=np.float64).T @ ys).ravel()
            total += counts[:, block_structures] @ block[: len(block_structures)]
        out.append(total.reshape(len(counts), x.shape[1], y.shape[1]))
    return out[0], out[1]


def _outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per replicate, the outer product of ``a (B, m)`` and ``b (B, n)``: ``(B, m, n)``."""
    return a[:, :, None] * b[:, None, :]


def _per(values: np.ndarray) -> np.ndarray:
    return values[:, None, None]


class ReplicateMoments:
    """One space's moments in every bootstrap replicate, on the training and the test structures (GFRE) and on
    all of them (the other moment metrics), as ``(B, ...)`` stacks; with ``svcca``/``gfre`` also the per-space
    parts of those metrics, computed once per replicate rather than once per pair and replicate."""

    def __init__(
        self, x: np.ndarray, resampling: Resampling, svcca: bool = True, gfre: bool = True,
        svcca_directions: int | None = None,
    ):  # fmt: skip
        self.resampling = resampling
        self.gram_train, self.gram_test = replicate_sums(x, x, resampling)
        ones = np.ones((len(x), 1))
        total_train, total_test = replicate_sums(x, ones, resampling)
        self.total_train, self.total_test = total_train[:, :, 0], total_test[:, :, 0]
        weights = np.ones(len(x)) if resampling.weights is None else resampling.weights
        per_structure = resampling.per_structure(weights)
        self.n_train = (resampling.counts * resampling.train_structures) @ per_structure
        self.n_test = (resampling.counts * ~resampling.train_structures) @ per_structure
        self.n = self.n_train + self.n_test
        self.total = self.total_train + self.total_test
        self.centred_gram = self.gram_train + self.gram_test - _outer(self.total, self.total) / _per(self.n)
        self.row_sq = np.einsum("ij,ij->i", np.asarray(x, np.float64), np.asarray(x, np.float64))
        self.row_dot_total = np.asarray(x, np.float64) @ self.total.T  # (N, B)
        self.whitening = [_whitening(gram, svcca_directions) for gram in self.centred_gram] if svcca else None
        if gfre:
            self._gfre_parts()

    def _gfre_parts(self) -> None:
        """GFRE's scaling, its scaled training Gram ``gfre_gram (B, d, d)`` as a source with its largest eigenvalue
        ``ridge_scale (B,)`` (a relative ridge r adds ``r * ridge_scale``), and its scaled test Gram, centred on the
        train means (as ``metrics.gfre_from_moments``). A replicate that drew no training or no test structure
        (possible on tiny sets), or no variance, has no GFRE (``gfre_defined``)."""
        n_train = np.where(self.n_train > 0, self.n_train, 1.0)
        self.mean_train = self.total_train / n_train[:, None]
        centred_train = self.gram_train - _outer(self.total_train, self.total_train) / _per(n_train)
        self.scale = np.sqrt(np.clip(np.trace(centred_train, axis1=1, axis2=2), 0.0, None) / n_train)
        self.gfre_defined = (self.n_train > 0) & (self.n_test > 0) & (self.scale > 0)
        self.scale = np.where(self.gfre_defined, self.scale, 1.0)
        cxx = np.where(_per(self.gfre_defined), centred_train / _per(self.scale**2), np.eye(centred_train.shape[1]))
        self.ridge_scale = np.maximum(np.linalg.eigvalsh(cxx)[:, -1], 1e-300)
        self.gfre_gram = cxx
        mean = self.mean_train
        test = self.gram_test - _outer(self.total_test, mean) - _outer(mean, self.total_test)
        self.test_gram = (test + _per(self.n_test) * _outer(mean, mean)) / _per(self.scale**2)

    def full(self, b: int) -> Moments:
        return Moments(
            self.n[b],
            self.total[b],
            self.gram_train[b] + self.gram_test[b],
            self.row_sq,
            self.row_dot_total[:, b],
            self.resampling.row_weights(b),
        )


def _whitening(centred_gram: np.ndarray, max_directions: int | None = None) -> np.ndarray | None:
    """``metrics.svcca.svcca_whitening``, or None for a replicate without variance."""
    try:
        if not np.all(np.isfinite(centred_gram)):
            return None
        return svcca_whitening(centred_gram, max_directions=max_directions)
    except (ValueError, np.linalg.LinAlgError):
        return None
