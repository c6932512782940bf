"""How much a metric moves and what it is by chance: a structure bootstrap and structure-block permutations.

**Bootstrap.** A replicate draws the structures with replacement (``structure_counts``); its value is the metric on
the drawn structures, a structure drawn c times counting c times (its rows repeated c times). No replicate
searches neighbours again or rereads atoms:

- moment metrics (linear CKA, debiased CKA, SVCCA, Procrustes, GFRE) are exact: every replicate's Grams, cross
  Grams and totals are the counts times per-structure sums (``replicate_sums``), then the same formulas as the
  value (``platonic.compare.metrics``), GFRE with the relative ridge its value chose (no replicate
  cross-validates again) and SVCCA with the value's cap on its directions;
- neighbour metrics keep each atom's neighbour list fixed (an approximation: in a resample, neighbours from
  structures not drawn would be replaced by others): mutual k-NN is the count-weighted mean of each atom's shared
  neighbours, CKNNA the unbiased HSIC of the masked kernels with rows repeated by their counts, information
  imbalance the count-weighted mean rank of the queries, LFRE the root of the count-weighted mean squared error;
- distance correlation is the V-statistic on its subsample with rows weighted by their counts (exact);
- optimal transport gets no interval: one exact earth mover's distance per replicate costs as much as the value.

The diagonal (a model with itself) does not move with the draw: its interval is the value.

**Chance level.** Model B's rows are permuted by whole structures (``block_permutation``: B's structures in a
random order, each structure's rows kept together), so that every atom of A meets an atom of an unrelated
structure of B while B's own geometry is untouched; every metric is computed again on (A, permuted B) with
B's neighbour lists permuted along (no new search); GFRE and LFRE choose their ridge on each permuted pair as the
value does. Optimal transport compares unpaired point clouds and does not change under a permutation, so it has no
chance level; information imbalance and LFRE use at most ``CHANCE_QUERIES`` of the queries.
"""

from __future__ import annotations

import numpy as np

from platonic.compare import metrics
from platonic.compare.metrics import Moments

CHANCE_QUERIES = 500
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
    """``metrics.svcca_whitening``, or None for a replicate without variance."""
    try:
        if not np.all(np.isfinite(centred_gram)):
            return None
        return metrics.svcca_whitening(centred_gram, max_directions=max_directions)
    except (ValueError, np.linalg.LinAlgError):
        return None


def gfre_replicates(
    cross_train: np.ndarray, cross_test: np.ndarray, sx: ReplicateMoments, sy: ReplicateMoments,
    regularisation: float = 1e-8,
):  # fmt: skip
    """GFRE of y from x in every replicate, ``(B,)``, from the replicates' raw ``X^T Y`` on the train and the test
    structures ``(B, d_x, d_y)``: ``metrics.gfre_from_moments`` on stacks, with the relative ridge
    ``regularisation`` (the value's, kept fixed: the replicates do not cross-validate again). One replicate's system
    at a time, so that no second ``(B, d_x, d_x)`` stack is held."""
    scales = _per(sx.scale * sy.scale)
    mx, my = sx.mean_train, sy.mean_train

    def centred(cross, total_x, total_y, n):
        return (cross - _outer(total_x, my) - _outer(mx, total_y) + _per(n) * _outer(mx, my)) / scales

    cxy = centred(cross_train, sx.total_train, sy.total_train, sx.n_train)
    txy = centred(cross_test, sx.total_test, sy.total_test, sx.n_test)
    eye = np.eye(sx.gfre_gram.shape[1])
    weights = np.empty_like(cxy)
    for b in range(len(cxy)):
        weights[b] = np.linalg.solve(sx.gfre_gram[b] + regularisation * sx.ridge_scale[b] * eye, cxy[b])
    residual = (
        np.trace(sy.test_gram, axis1=1, axis2=2)
        - 2 * np.sum(weights * txy, axis=(1, 2))
        + np.sum(weights * (sx.test_gram @ weights), axis=(1, 2))
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sx.gfre_defined & sy.gfre_defined, np.sqrt(np.maximum(residual, 0.0) / sx.n_test), np.nan)


def moment_replicates(
    wanted, cross_train, cross_test, mx: ReplicateMoments, my: ReplicateMoments, ridges: dict | None = None
) -> dict:
    """The moment metrics of one pair in every replicate, ``{(metric, forward): (B,)}``, from the replicates'
    cross Grams on the train and test structures ``(B, d_x, d_y)``; directed GFRE has both directions, each with
    the relative ridge its value chose, ``ridges[("gfre", forward)]`` (default 1e-8)."""
    ridges = ridges or {}
    out = {}
    cross = cross_train + cross_test
    centred = cross - _outer(mx.total, my.total) / _per(mx.n)
    if "linear_cka" in wanted:
        norms = np.linalg.norm(mx.centred_gram, axis=(1, 2)) * np.linalg.norm(my.centred_gram, axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            out["linear_cka", True] = np.where(norms > 0, np.sum(centred**2, axis=(1, 2)) / norms, np.nan)
    if "svcca" in wanted:
        out["svcca", True] = np.array(
            [
                np.nan if wx is None or wy is None else metrics.svcca_from_whitening(c, wx, wy)
                for c, wx, wy in zip(centred, mx.whitening, my.whitening, strict=True)
            ]
        )
    if "procrustes" in wanted:
        nuclear = np.linalg.svd(centred, compute_uv=False).sum(axis=1)
        traces = np.trace(mx.centred_gram, axis1=1, axis2=2) * np.trace(my.centred_gram, axis1=1, axis2=2)
        out["procrustes", True] = np.arccos(np.clip(nuclear / np.sqrt(traces), -1.0, 1.0))
    if "debiased_cka" in wanted:
        out["debiased_cka", True] = np.array(
            [metrics.debiased_cka_from_moments(cross[b], mx.full(b), my.full(b)) for b in range(len(cross))]
        )
    if "gfre" in wanted:
        out["gfre", True] = gfre_replicates(cross_train, cross_test, mx, my, ridges.get(("gfre", True), 1e-8))
        flip = (0, 2, 1)
        out["gfre", False] = gfre_replicates(
            cross_train.transpose(flip), cross_test.transpose(flip), my, mx, ridges.get(("gfre", False), 1e-8)
        )
    return out


def moment_values(
    wanted, cross, mx: Moments, my: Moments, split=None, grid=(1e-8,), svcca_directions: int | None = None
) -> tuple[dict[tuple[str, bool], float], dict[tuple[str, bool], float]]:
    """The moment metrics of one pair from its raw cross Gram ``cross`` and moments; ``split`` = (train cross,
    test cross, split moments of x, of y, the cross Grams of the two folds' training rows or None) for GFRE, whose
    relative ridge is the one of ``grid`` that ``metrics.gfre_ridge_cv`` chooses (a grid of one value: that one);
    ``svcca_directions``: SVCCA's cap on the directions kept. Returns ``{(metric, forward): value}`` and GFRE's
    chosen ridges ``{("gfre", forward): ridge}``; directed GFRE has both directions."""
    out, ridges = {}, {}
    if wanted & {"linear_cka", "svcca", "procrustes"}:
        covariances = metrics.centred_cross(cross, mx, my), mx.centred_gram, my.centred_gram
        if "linear_cka" in wanted:
            out["linear_cka", True] = metrics.cka_from_covariances(*covariances)
        if "svcca" in wanted:
            out["svcca", True] = metrics.svcca_from_covariances(*covariances, max_directions=svcca_directions)
        if "procrustes" in wanted:
            out["procrustes", True] = metrics.procrustes_from_covariances(*covariances)
    if "debiased_cka" in wanted:
        out["debiased_cka", True] = metrics.debiased_cka_from_moments(cross, mx, my)
    if "gfre" in wanted and split is not None:
        cross_train, cross_test, sx, sy, cross_folds = split
        for forward, (a, b, crosses) in ((True, (sx, sy, cross_folds)), (False, (sy, sx, cross_folds))):
            if len(grid) == 1:
                ridge = float(grid[0])
            else:
                ridge = metrics.gfre_ridge_cv(crosses if forward else [c.T for c in crosses], a, b, grid)[0]
            train, test = (cross_train, cross_test) if forward else (cross_train.T, cross_test.T)
            out["gfre", forward], ridges["gfre", forward] = metrics.gfre_from_moments(train, test, a, b, ridge), ridge
    return out, ridges


MOMENT_METRICS = frozenset({"linear_cka", "debiased_cka", "svcca", "procrustes", "gfre"})
TERMS = frozenset({"mutual_knn", "information_imbalance", "lfre"})  # a value that is a mean of per-atom terms


def pair_replicates(x, y, mx: ReplicateMoments | None, my: ReplicateMoments | None, nx, ny, terms, resampling,
                    wanted, k, queries, subsample, distances=(None, None), kernels=None,
                    knn_rows=None, ridges=None) -> dict:  # fmt: skip
    """Every bootstrap replicate of every ``wanted`` metric of one pair (x, y): ``{(metric, forward): (B,)}``;
    ``forward`` False is the directed metric from y to x. ``nx``/``ny`` are the pair's neighbour lists (None where
    no neighbour metric is wanted); ``terms[(metric, forward)]`` the per-atom terms the value was the mean of
    (``TERMS``: shared neighbours, query ranks, squared LFRE errors); ``distances`` the two subsample distance
    matrices (distance correlation); ``kernels``: CKNNA's ``metrics.cknna_kernels`` of the pair, where the value
    already built them; ``knn_rows``: the rows of mutual k-NN's terms, where it has a subsample of its own
    (``similarity.knn_subsample``); ``ridges``: GFRE's relative ridges ``{("gfre", forward): ridge}``, the value's
    (``moment_values``), kept in every replicate."""
    n_rep = resampling.n_replicates
    out: dict[tuple[str, bool], np.ndarray] = {}
    if wanted & MOMENT_METRICS:
        out.update(moment_replicates(wanted, *replicate_sums(x, y, resampling), mx, my, ridges))
    if "mutual_knn" in wanted:
        out["mutual_knn", True] = resampling.mean(terms["mutual_knn", True] / k, knn_rows)
    if "cknna" in wanted:
        if kernels is None:
            kernels = metrics.cknna_kernels(x, y, nx[:, :k], ny[:, :k])
        out["cknna", True] = metrics.weighted_cknna(kernels, resampling.counts[:, resampling.groups].T)
    for forward in (True, False):
        if "information_imbalance" in wanted:
            ranks = terms["information_imbalance", forward]
            out["information_imbalance", forward] = 2.0 / len(x) * resampling.mean(ranks, queries)
        if "lfre" in wanted:
            out["lfre", forward] = np.sqrt(resampling.mean(terms["lfre", forward], queries))
    if "distance_correlation" in wanted:
        p = resampling.counts[:, resampling.groups[subsample]]
        with np.errstate(invalid="ignore", divide="ignore"):
            p = p / p.sum(axis=1, keepdims=True)
        out["distance_correlation", True] = metrics.weighted_distance_correlations(*distances, p)
    if "optimal_transport" in wanted:
        out["optimal_transport", True] = np.full(n_rep, np.nan)
    return out


def permuted_mutual_knn(nx: np.ndarray, ny: np.ndarray, permutations) -> np.ndarray:
    """Mutual k-NN of the neighbour lists ``nx``, ``ny`` ``(m, k)`` with y's rows permuted by each of
    ``permutations`` ``(P, m)`` (its lists relabelled along, no new search): the chance level, ``(P,)``."""
    out = np.full(len(permutations), np.nan)
    for p, perm in enumerate(permutations):
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        out[p] = metrics.mutual_knn_alignment(nx, inverse[ny[perm]])
    return out


def chance_moments(y: np.ndarray, resampling: Resampling, train: np.ndarray, wanted, subsample, folds=None) -> list:
    """Per permutation, what the chance level needs of the permuted space, computed once per model: its moments
    and train/test split moments (with ``folds (N,)``, the rows' cross-validation folds, also the folds'; row
    weights and folds staying with the rows of model A), and its subsample's distance matrix; None where no wanted
    metric needs it."""
    out = []
    for perm in resampling.permutations:
        permuted = y[perm]
        moments = metrics.moments(permuted, weights=resampling.weights) if wanted & MOMENT_METRICS else None
        split = metrics.split_moments(permuted, train, resampling.weights, folds) if "gfre" in wanted else None
        distances = metrics.distance_matrix(permuted[subsample]) if "distance_correlation" in wanted else None
        out.append((moments, split, distances))
    return out


def pair_chance(x, y, mx: Moments | None, my_permuted: list, nx, ny, resampling, wanted, train, k, lfre_k, queries,
                distances=None, excluded=None, kernels=None, split_x=None, folds=None, grid=(1e-8,),
                svcca_directions=None, forward_only=False) -> dict[tuple[str, bool], np.ndarray]:  # fmt: skip
    """Every ``wanted`` metric of (x, y permuted by whole structures) for each of ``resampling.permutations``:
    ``{(metric, forward): (P,)}``. ``mx``: x's moments; ``split_x``: its split moments (``metrics.split_moments``
    with ``folds``; computed here where not given); ``my_permuted``: ``chance_moments`` of y; ``distances``: x's
    subsample distance matrix; ``kernels``: the pair's ``metrics.cknna_kernels``, where already built. GFRE and LFRE
    choose their ridge from ``grid`` on each permuted pair (by ``folds (N,)``, the rows' cross-validation folds) as
    their values do; SVCCA keeps at most ``svcca_directions``. ``x`` and ``y`` are arrays or ``metrics.Features``:
    a permutation of y takes y's unit rows and centring along. ``forward_only``: the directed metrics from x to y
    only (a model with itself, whose other direction is the same number)."""
    fx, fy = metrics.features(x), metrics.features(y)
    x, y = fx.x, fy.x
    n_perm = len(resampling.permutations)
    if "cknna" in wanted:
        if kernels is None:
            kernels = metrics.cknna_kernels(fx, fy, nx[:, :k], ny[:, :k])
        unit_y = fy.unit
        own_x = metrics.neighbour_cosines(fx.unit, nx[:, :k])
    w = resampling.weights
    few = queries[np.unique(np.linspace(0, len(queries) - 1, min(len(queries), CHANCE_QUERIES)).astype(np.int64))]
    out: dict[tuple[str, bool], np.ndarray] = {}
    cv = len(grid) > 1
    if "gfre" in wanted and split_x is None:
        split_x = metrics.split_moments(x, train, w, folds if cv else None)

    def put(key, p, value):
        out.setdefault(key, np.full(n_perm, np.nan))[p] = value

    for p, perm in enumerate(resampling.permutations):
        fyp = fy.take(perm)
        yp = fyp.x
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        nyp = None if ny is None else inverse[ny[perm]]
        if wanted & MOMENT_METRICS:
            myp, split_yp, _ = my_permuted[p]
            split = None
            if "gfre" in wanted:
                crosses = metrics.split_crosses(x, yp, train, w, folds if cv else None)
                split = (*crosses[:2], split_x, split_yp, crosses[2])
            values, _ = moment_values(
                wanted, metrics.cross_gram(x, yp, weights=w), mx, myp, split, grid, svcca_directions
            )
            for key, value in values.items():
                put(key, p, value)
        if "mutual_knn" in wanted:
            put(("mutual_knn", True), p, metrics.mutual_knn_alignment(nx[:, :k], nyp[:, :k]))
        if "cknna" in wanted:
            # the own kernels' HSICs do not change under the permutation: only the mutual-pair kernels are new
            shared = metrics.cknna_shared_kernels(own_x, unit_y, nx[:, :k], nyp[:, :k], rows=perm)
            put(("cknna", True), p, metrics.cknna_from_kernels((*shared, *kernels[2:])))
        if "distance_correlation" in wanted:
            value = metrics.distance_correlation_from_distances(distances, my_permuted[p][2])
            put(("distance_correlation", True), p, value)
        for forward, (source, target, neighbours) in ((True, (fx, fyp, nx)), (False, (fyp, fx, nyp))):
            if forward_only and not forward:
                continue
            if "information_imbalance" in wanted:
                value = metrics.information_imbalance(source, target, neighbours, few, groups=excluded)
                put(("information_imbalance", forward), p, value)
            if "lfre" in wanted:
                # folds go by row, like the split: a permutation moves whole structures, so a row's two structures
                # (of x and of permuted y) are each in one fold
                errors, _ = metrics.lfre_errors_chosen(source, target, neighbours[:, :lfre_k], few, grid, folds)
                put(("lfre", forward), p, float(np.sqrt(errors.mean())))
    if "optimal_transport" in wanted:
        out["optimal_transport", True] = np.full(n_perm, np.nan)
    return out
