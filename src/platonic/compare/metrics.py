"""Representation similarity metrics between two spaces over the same atoms (rows).

Three kinds, by what they need:
- second moments (d x d Gram and cross-covariance matrices, streamed over row chunks): linear CKA,
  debiased CKA, SVCCA, orthogonal Procrustes, GFRE. Memory grows with d, never with N.
- neighbour lists (N x k, from ``platonic.compare.neighbours``): mutual k-NN, CKNNA,
  TwoNN intrinsic dimension (or its own Euclidean lists), LFRE.
- a seeded subsample (inherently quadratic): distance correlation, optimal transport,
  information imbalance (queries on a subsample, ranks over all N).

Every function takes arrays and returns numbers; inputs are ``(N, d)`` with the same N rows. The one-call forms
(``linear_cka(x, y)``, ``gfre(x, y, train)``, exact ``knn_indices``, ...) that the tests check these pieces against
are in ``platonic.compare.oracle``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from platonic.compare.neighbours import unit_rows

CHUNK = 4096
ROW_CHUNK = 16384
RANK_TOLERANCE = 1e-6  # squared distance between unit vectors (0..4); float32 cosine resolves ~1e-7


class Features:
    """One space's rows ``x (N, d)`` with what several metrics derive from all of them, each computed once, on
    first use: the float64 unit rows (the cosine geometry of neighbour ranks, CKNNA and TwoNN), their squared
    norms, and LFRE's centring (column means and root mean squared centred norm). The metric functions take
    either this or a plain array (``features``); a pair's jobs wrap each space once, so that its metrics and
    their chance levels share these instead of each computing them again."""

    def __init__(self, x, unit=None, square=None, centring=None):
        self.x = x.x if isinstance(x, Features) else x
        self._unit, self._square, self._centring = unit, square, centring

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.x.shape

    @property
    def unit(self) -> np.ndarray:
        if self._unit is None:
            self._unit = unit_rows(np.asarray(self.x, dtype=np.float64))
        return self._unit

    @property
    def square(self) -> np.ndarray:
        if self._square is None:
            self._square = np.einsum("ij,ij->i", self.unit, self.unit)
        return self._square

    @property
    def centring(self) -> tuple[np.ndarray, float]:
        if self._centring is None:
            x = np.asarray(self.x, dtype=np.float64)
            mean = x.mean(axis=0)
            self._centring = mean, float(np.sqrt(np.mean(np.sum((x - mean) ** 2, axis=1))))
        return self._centring

    def take(self, rows: np.ndarray) -> Features:
        """The rows ``rows`` (e.g. a permutation), with what is already derived taken along; the centring stays
        (a permutation does not move it)."""
        x = self.x[rows]
        if self._unit is self.x:  # the unit space: its rows are their own unit rows, taken once
            return Features(x, x, None if self._square is None else self._square[rows], self._centring)
        return Features(
            x,
            None if self._unit is None else self._unit[rows],
            None if self._square is None else self._square[rows],
            self._centring,
        )


def features(x) -> Features:
    """``x`` as ``Features`` (itself when it already is)."""
    return x if isinstance(x, Features) else Features(np.asarray(x))


# ----------------------------------------------------------------------------------------------
# second moments


@dataclass
class Moments:
    """Streamed statistics of one space: ``n`` rows, column ``total (d,)``, raw Gram ``gram = X^T X
    (d, d)``, squared row norms ``row_sq (N,)`` and ``row_dot_total = X @ total (N,)``.

    With row ``weights (N,)`` (e.g. each unique environment's number of symmetry copies) every sum over rows
    is weighted, ``n = sum(weights)``: the moments of the rows repeated ``weights`` times."""

    n: float
    total: np.ndarray
    gram: np.ndarray
    row_sq: np.ndarray
    row_dot_total: np.ndarray
    weights: np.ndarray | None = None

    def weighted(self, per_row: np.ndarray) -> np.ndarray:
        """``per_row (N,)`` times the row weights (unchanged without weights)."""
        return per_row if self.weights is None else per_row * self.weights

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.n

    @property
    def centred_gram(self) -> np.ndarray:
        """``Xc^T Xc`` with ``Xc`` column-centred."""
        return self.gram - np.outer(self.total, self.total) / self.n


def moments(x: np.ndarray, chunk: int = ROW_CHUNK, weights: np.ndarray | None = None) -> Moments:
    """One pass (two for the row dot products) over ``x (N, d)`` in float64; optional row ``weights (N,)``."""
    n, d = x.shape
    total = np.zeros(d)
    gram = np.zeros((d, d))
    row_sq = np.empty(n)
    for start in range(0, n, chunk):
        block = np.asarray(x[start : start + chunk], dtype=np.float64)
        if weights is None:
            total += block.sum(axis=0)
            gram += block.T @ block
        else:
            w = np.asarray(weights[start : start + chunk], dtype=np.float64)
            total += w @ block
            gram += block.T @ (block * w[:, None])
        row_sq[start : start + chunk] = np.einsum("ij,ij->i", block, block)
    row_dot_total = np.empty(n)
    for start in range(0, n, chunk):
        row_dot_total[start : start + chunk] = np.asarray(x[start : start + chunk], dtype=np.float64) @ total
    if weights is None:
        return Moments(n, total, gram, row_sq, row_dot_total)
    weights = np.asarray(weights, dtype=np.float64)
    return Moments(float(weights.sum()), total, gram, row_sq, row_dot_total, weights)


def cross_gram(x: np.ndarray, y: np.ndarray, chunk: int = ROW_CHUNK, weights: np.ndarray | None = None) -> np.ndarray:
    """Raw ``X^T Y`` (``X^T W Y`` with row ``weights``), shape ``(d_x, d_y)``, in float64 over row chunks."""
    if len(x) != len(y):
        raise ValueError(f"spaces have different numbers of atoms: {len(x)} vs {len(y)}")
    cross = np.zeros((x.shape[1], y.shape[1]))
    for start in range(0, len(x), chunk):
        block_y = np.asarray(y[start : start + chunk], dtype=np.float64)
        if weights is not None:
            block_y = block_y * np.asarray(weights[start : start + chunk], dtype=np.float64)[:, None]
        cross += np.asarray(x[start : start + chunk], dtype=np.float64).T @ block_y
    return cross


def centred_cross(cross: np.ndarray, mx: Moments, my: Moments) -> np.ndarray:
    """``Xc^T Yc`` from the raw cross Gram and both spaces' totals."""
    return cross - np.outer(mx.total, my.total) / mx.n


def cka_from_covariances(cross: np.ndarray, self_x: np.ndarray, self_y: np.ndarray) -> float:
    """CKA from centred (cross-)covariances, so per-model Grams are computed once."""
    denominator = np.linalg.norm(self_x) * np.linalg.norm(self_y)
    if denominator == 0:
        return float("nan")
    return float(np.linalg.norm(cross) ** 2 / denominator)


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


def _principal_directions(
    centred_gram: np.ndarray, variance_kept: float, max_directions: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvectors ``(d, r)`` and eigenvalues ``(r,)`` of a centred Gram covering ``variance_kept``, at most
    ``max_directions`` of them (None: no cap)."""
    values, vectors = np.linalg.eigh(centred_gram)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0, None), vectors[:, order]
    r = _kept_directions(values, variance_kept)
    if max_directions is not None:
        r = min(r, max(1, int(max_directions)))
    return vectors[:, :r], values[:r]


def _kept_directions(values: np.ndarray, variance_kept: float) -> int:
    """How many of the descending, non-negative eigenvalues ``values (d,)`` cover ``variance_kept`` of their sum
    (numerically zero ones never count)."""
    if values.sum() == 0:
        raise ValueError("a space has zero variance")
    r = int(np.searchsorted(np.cumsum(values) / values.sum(), variance_kept) + 1)
    return min(r, int(np.count_nonzero(values > values[0] * 1e-12)))


def principal_directions_count(centred_gram: np.ndarray, variance_kept: float = 0.99) -> int:
    """How many principal directions of a centred Gram ``(d, d)`` cover ``variance_kept`` of its variance: what
    SVCCA keeps of a space before its cap (``svcca_whitening``'s ``max_directions``); 0 for a space without
    variance."""
    values = np.clip(np.linalg.eigvalsh(centred_gram)[::-1], 0, None)
    return _kept_directions(values, variance_kept) if values.sum() > 0 else 0


def svcca_max_directions(n_atoms: int, max_fraction: float) -> int:
    """SVCCA's cap on the directions a space keeps: ``max_fraction`` of the compared atoms, at least one.

    For two independent spaces of r_x <= r_y kept directions on n atoms (Gaussian rows), the mean squared
    canonical correlation is r_y / (n - 1) (the expected trace of the product of two independent random
    projections of ranks r_x and r_y, over r_x), so the mean correlation, SVCCA, is at most sqrt(r_y / (n - 1)) by
    chance alone: capping r at a fraction f of the atoms bounds SVCCA's chance level by about sqrt(f) however wide
    the spaces are."""
    return max(1, int(np.floor(max_fraction * n_atoms)))


def svcca_from_covariances(
    cross_c: np.ndarray, cxx: np.ndarray, cyy: np.ndarray, variance_kept: float = 0.99,
    max_directions: int | None = None,
) -> float:  # fmt: skip
    """SVCCA (Raghu et al. 2017): keep the principal directions explaining ``variance_kept`` of each
    space's variance (at most ``max_directions``, ``svcca_max_directions``), then the mean canonical correlation
    between the reduced spaces. Inputs are centred ``Xc^T Yc``, ``Xc^T Xc``, ``Yc^T Yc``."""
    return svcca_from_whitening(
        cross_c,
        svcca_whitening(cxx, variance_kept, max_directions),
        svcca_whitening(cyy, variance_kept, max_directions),
    )


def svcca_whitening(
    centred_gram: np.ndarray, variance_kept: float = 0.99, max_directions: int | None = None
) -> np.ndarray:
    """One space's half of SVCCA: its principal directions covering ``variance_kept`` (at most ``max_directions``),
    scaled to unit variance, ``(d, r)``."""
    vectors, values = _principal_directions(centred_gram, variance_kept, max_directions)
    return vectors / np.sqrt(values)


def svcca_from_whitening(cross_c: np.ndarray, whitening_x: np.ndarray, whitening_y: np.ndarray) -> float:
    """SVCCA from the centred ``Xc^T Yc`` and both spaces' ``svcca_whitening``."""
    correlations = np.linalg.svd(whitening_x.T @ cross_c @ whitening_y, compute_uv=False)
    return float(np.mean(np.clip(correlations, 0.0, 1.0)))


def procrustes_from_covariances(cross_c: np.ndarray, cxx: np.ndarray, cyy: np.ndarray) -> float:
    """Angular orthogonal-Procrustes distance (Williams et al. 2021), in radians:
    ``arccos(||Xc^T Yc||_* / (||Xc||_F ||Yc||_F))``. Zero-padding the narrower space to the wider
    one leaves the nuclear norm unchanged, so spaces of different widths compare directly."""
    nuclear = np.linalg.svd(cross_c, compute_uv=False).sum()
    denominator = np.sqrt(np.trace(cxx) * np.trace(cyy))
    return float(np.arccos(np.clip(nuclear / denominator, -1.0, 1.0)))


@dataclass
class SplitMoments:
    """Moments of a space on the train and test rows of a split (for GFRE); with ``folds``, also on the training rows
    of each of the two cross-validation folds, and their ``RidgeFolds`` ``ridge``."""

    train: Moments
    test: Moments
    folds: list[Moments] | None = None
    ridge: RidgeFolds | None = None


@dataclass
class RidgeFolds:
    """A source space's half of GFRE's two-fold ridge cross-validation (``gfre_ridge_cv``), from its fold moments:
    each fold's Gram on the training side's scale (centred on the training mean, divided by the training mean squared
    norm, as in ``gfre_from_moments``) as eigenvalues ``values (2, d)`` and eigenvectors ``vectors (2, d, d)``, the
    other fold's Gram in that basis ``other (2, d, d)``, and ``scale``, the largest eigenvalue of the whole training
    side's Gram: a relative ridge r adds ``r * scale`` in the folds' fits as in the final fit."""

    values: np.ndarray
    vectors: np.ndarray
    other: np.ndarray
    scale: float


def split_moments(
    x: np.ndarray, train: np.ndarray, weights: np.ndarray | None = None, folds: np.ndarray | None = None
) -> SplitMoments:
    """Moments of ``x (N, d)`` on the ``train (N,)`` rows and the rest; with ``folds (N,)`` (0 or 1: each row's
    cross-validation fold), also on each fold's training rows, and their ``RidgeFolds``."""
    if weights is None:
        split = SplitMoments(moments(x[train]), moments(x[~train]))
    else:
        split = SplitMoments(moments(x[train], weights=weights[train]), moments(x[~train], weights=weights[~train]))
    if folds is not None:
        rows = [train & (folds == f) for f in (0, 1)]
        split.folds = [moments(x[r], weights=None if weights is None else weights[r]) for r in rows]
        split.ridge = ridge_folds(split)
    return split


def _centred_sum(gram, total_a, mean_a, total_b, mean_b, n) -> np.ndarray:
    """``sum_i (a_i - mean_a)(b_i - mean_b)^T`` from the raw sums ``gram = sum_i a_i b_i^T`` and the totals."""
    return gram - np.outer(total_a, mean_b) - np.outer(mean_a, total_b) + n * np.outer(mean_a, mean_b)


def _training_scale(split: SplitMoments) -> tuple[np.ndarray, float]:
    """The training mean ``(d,)`` and root mean squared centred norm of a space: GFRE's centring and scaling."""
    train = split.train
    return train.mean, float(np.sqrt(np.trace(train.centred_gram) / train.n))


def ridge_folds(split: SplitMoments) -> RidgeFolds:
    """``RidgeFolds`` of a space from its ``split_moments`` with folds (an eigendecomposition per fold)."""
    mean, scale = _training_scale(split)
    grams = [_centred_sum(f.gram, f.total, mean, f.total, mean, f.n) / scale**2 for f in split.folds]
    train = _centred_sum(split.train.gram, split.train.total, mean, split.train.total, mean, split.train.n)
    largest = max(float(np.linalg.eigvalsh(train / scale**2)[-1]), 1e-300)
    values, vectors, other = [], [], []
    for a in (0, 1):
        e, v = np.linalg.eigh(grams[a])
        values.append(e)
        vectors.append(v)
        other.append(v.T @ grams[1 - a] @ v)
    return RidgeFolds(np.array(values), np.array(vectors), np.array(other), largest)


def gfre_ridge_cv(cross_folds: list[np.ndarray], mx: SplitMoments, my: SplitMoments, grid) -> tuple[float, np.ndarray]:
    """GFRE's relative ridge for Y from X, chosen by two-fold cross-validation on the training rows alone: for each
    relative ridge r of ``grid``, a ridge map with penalty ``r * mx.ridge.scale`` fitted on one fold predicts the
    other (on the training side's centring and scale, as ``gfre_from_moments``), and the squared errors of both
    held-out folds are summed. ``cross_folds``: raw ``X^T Y`` on each fold's training rows; ``mx``/``my``:
    ``split_moments`` with folds. Returns the ridge of least error (the first of equals) and the errors ``(G,)``.

    Each fold is solved once, in the eigenbasis of its Gram C = V diag(e) V^T: with P = V^T D_a (D_a the fold's cross
    Gram) and Q = V^T D_b, the held-out error is ``tr(Y_b^T Y_b) - 2 sum_i g_i (P Q^T)_ii + g^T (V^T C_b V o P P^T) g``,
    g = 1 / (e + ridge), so every ridge of the grid costs O(d^2)."""
    basis = mx.ridge
    mean_x, scale_x = _training_scale(mx)
    mean_y, scale_y = _training_scale(my)
    ridges = np.asarray(grid, dtype=np.float64) * basis.scale
    errors = np.zeros(len(ridges))
    for a in (0, 1):
        b = 1 - a
        fx, fy = mx.folds, my.folds
        cross = [
            _centred_sum(cross_folds[f], fx[f].total, mean_x, fy[f].total, mean_y, fx[f].n) / (scale_x * scale_y)
            for f in (a, b)
        ]
        target = np.trace(_centred_sum(fy[b].gram, fy[b].total, mean_y, fy[b].total, mean_y, fy[b].n)) / scale_y**2
        p, q = basis.vectors[a].T @ cross[0], basis.vectors[a].T @ cross[1]
        linear = np.einsum("ij,ij->i", p, q)
        quadratic = basis.other[a] * (p @ p.T)
        g = 1.0 / (basis.values[a][None, :] + ridges[:, None])  # (G, d)
        errors += target - 2 * g @ linear + np.einsum("gi,ij,gj->g", g, quadratic, g)
    return float(np.asarray(grid)[int(np.argmin(errors))]), errors


def gfre_from_moments(
    cross_train: np.ndarray,
    cross_test: np.ndarray,
    mx: SplitMoments,
    my: SplitMoments,
    regularisation: float = 1e-8,
) -> float:
    """Global feature reconstruction error (Goscinski et al., Mach. Learn.: Sci. Technol. 2, 025028
    (2021)) of Y from X: ridge regression fitted on the train rows, root-mean-square residual on the
    test rows. Both spaces are centred with the train means and scaled to unit mean squared norm on
    the train rows. ``cross_*`` are raw ``X^T Y`` on each split; ``regularisation`` is relative to
    the largest eigenvalue of the train covariance. 0 = Y is a linear function of X; about 1 = X
    carries no linear information about Y."""
    mean_x, mean_y = mx.train.mean, my.train.mean
    scale_x = np.sqrt(np.trace(mx.train.centred_gram) / mx.train.n)
    scale_y = np.sqrt(np.trace(my.train.centred_gram) / my.train.n)

    def centred(gram, m_a, mean_a, m_b, mean_b, n):
        # sum over rows of (a - mean_a)(b - mean_b)^T from raw sums
        return gram - np.outer(m_a.total, mean_b) - np.outer(mean_a, m_b.total) + n * np.outer(mean_a, mean_b)

    cxx = centred(mx.train.gram, mx.train, mean_x, mx.train, mean_x, mx.train.n) / scale_x**2
    cxy = centred(cross_train, mx.train, mean_x, my.train, mean_y, mx.train.n) / (scale_x * scale_y)
    ridge = regularisation * max(float(np.linalg.eigvalsh(cxx)[-1]), 1e-300)
    weights = np.linalg.solve(cxx + ridge * np.eye(len(cxx)), cxy)
    n_test = mx.test.n
    txx = centred(mx.test.gram, mx.test, mean_x, mx.test, mean_x, n_test) / scale_x**2
    txy = centred(cross_test, mx.test, mean_x, my.test, mean_y, n_test) / (scale_x * scale_y)
    tyy = centred(my.test.gram, my.test, mean_y, my.test, mean_y, n_test) / scale_y**2
    residual = np.trace(tyy) - 2 * np.sum(weights * txy) + np.sum(weights * (txx @ weights))
    return float(np.sqrt(max(residual, 0.0) / n_test))


def split_crosses(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, weights: np.ndarray | None = None, folds: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
    """Raw ``X^T Y`` (``X^T W Y`` with row ``weights``) on the ``train (N,)`` rows and on the rest, ``(d_x, d_y)``
    each, and with ``folds (N,)`` (0 or 1) on each fold's training rows (GFRE's ridge cross-validation), whose sum is
    then the training one; without, None."""

    def cross(rows):
        return cross_gram(x[rows], y[rows], weights=None if weights is None else weights[rows])

    test = cross(~train)
    if folds is None:
        return cross(train), test, None
    crosses = [cross(train & (folds == f)) for f in (0, 1)]
    return crosses[0] + crosses[1], test, crosses


# ----------------------------------------------------------------------------------------------
# neighbour lists


def mutual_knn_alignment(neighbours_a: np.ndarray, neighbours_b: np.ndarray) -> float:
    """Mean fraction of shared k-nearest neighbours (Huh et al. 2024), from ``(N, k)`` index arrays."""
    shared = shared_neighbours(neighbours_a, neighbours_b)
    return int(shared.sum()) / (len(neighbours_a) * neighbours_a.shape[1])


def shared_neighbours(neighbours_a: np.ndarray, neighbours_b: np.ndarray) -> np.ndarray:
    """Per row, how many of its k nearest neighbours the two ``(N, k)`` lists share, ``(N,)`` int64 (mutual k-NN
    alignment is their mean over k)."""
    if neighbours_a.shape != neighbours_b.shape:
        raise ValueError(f"neighbour lists differ in shape: {neighbours_a.shape} vs {neighbours_b.shape}")
    shared = np.empty(len(neighbours_a), dtype=np.int64)
    for start in range(0, len(neighbours_a), CHUNK):
        a = neighbours_a[start : start + CHUNK]
        b = neighbours_b[start : start + CHUNK]
        shared[start : start + CHUNK] = (a[:, :, None] == b[:, None, :]).sum(axis=(1, 2))
    return shared


def neighbour_cosines(unit: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """``u_i . u_j`` for every row i of the unit rows ``unit`` and each of its listed neighbours j, ``(N, k)``:
    only the neighbours' rows are gathered, in blocks of bounded memory whatever N."""
    n, k = neighbours.shape
    values = np.empty((n, k))
    chunk = max(64, 2**24 // (k * unit.shape[1]))  # gathered rows: <= 128 MiB per block
    for start in range(0, n, chunk):
        block = slice(start, start + chunk)
        values[block] = np.einsum("id,ikd->ik", unit[block], unit[neighbours[block]])
    return values


def _pair_cosines(unit: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``u_rows[p] . u_cols[p]`` for each listed pair p, in blocks of bounded memory."""
    values = np.empty(len(rows))
    chunk = max(1024, 2**23 // unit.shape[1])
    for start in range(0, len(rows), chunk):
        block = slice(start, start + chunk)
        values[block] = np.einsum("ij,ij->i", unit[rows[block]], unit[cols[block]])
    return values


def _row_kernel(values: np.ndarray, neighbours: np.ndarray, keep: np.ndarray | None = None):
    """The sparse N x N kernel with ``values[i, j]`` at (i, ``neighbours[i, j]``) where ``keep`` (default every
    pair), as a CSR matrix in canonical form (columns sorted within each row), built without a COO round trip."""
    from scipy.sparse import coo_matrix, csr_matrix

    n = len(neighbours)
    order = np.argsort(neighbours, axis=1, kind="stable")
    cols = np.take_along_axis(neighbours, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    keep = np.ones(cols.shape, dtype=bool) if keep is None else np.take_along_axis(keep, order, axis=1)
    if (keep[:, 1:] & keep[:, :-1] & (cols[:, 1:] == cols[:, :-1])).any():  # a neighbour listed twice: summed
        rows = np.repeat(np.arange(n), cols.shape[1])[keep.ravel()]
        return coo_matrix((values[keep], (rows, cols[keep])), shape=(n, n)).tocsr()
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    return csr_matrix((values[keep], cols[keep], indptr), shape=(n, n))


def _sparse_unbiased_hsic(a, b) -> float:
    """Unbiased HSIC (Song et al. 2012, eq. 5) of two sparse N x N kernels with zero diagonals.

    The masked kernels are not symmetric (k-NN is directed), so the estimator's ``1^T A B 1``
    depends on the order of A and B; the mean of both orders makes the metric symmetric."""
    m = a.shape[0]
    trace_term = float(a.multiply(b.T).sum())
    ab = float(np.asarray(a.sum(axis=0)).ravel() @ np.asarray(b.sum(axis=1)).ravel())  # 1^T A B 1
    ba = float(np.asarray(b.sum(axis=0)).ravel() @ np.asarray(a.sum(axis=1)).ravel())  # 1^T B A 1
    return (trace_term + a.sum() * b.sum() / ((m - 1) * (m - 2)) - (ab + ba) / (m - 2)) / (m * (m - 3))


def cknna_kernels(x: np.ndarray, y: np.ndarray, neighbours_x: np.ndarray, neighbours_y: np.ndarray) -> tuple:
    """The four sparse masked kernels of CKNNA: both spaces' cosine kernels on the mutual k-NN pairs, and each on
    its own k-NN pairs."""
    unit_x, unit_y = features(x).unit, features(y).unit
    own_x, own_y = neighbour_cosines(unit_x, neighbours_x), neighbour_cosines(unit_y, neighbours_y)
    shared = cknna_shared_kernels(own_x, unit_y, neighbours_x, neighbours_y, own_y=own_y)
    return (*shared, _row_kernel(own_x, neighbours_x), _row_kernel(own_y, neighbours_y))


def cknna_shared_kernels(own_x, unit_y, neighbours_x, neighbours_y, own_y=None, rows=None) -> tuple:
    """CKNNA's two kernels on the mutual k-NN pairs (a pair (i, j) counts when j is among i's neighbours in both
    spaces): x's from its cosines on its own lists ``own_x`` (``neighbour_cosines``), y's from the unit rows
    ``unit_y`` (row i of y is ``unit_y[rows[i]]``: a permutation, default none) or, where given, from y's cosines on
    its own lists ``own_y``. What a permutation of y changes: y's own kernel only moves with its rows, which leaves
    its HSIC, all CKNNA needs of it, unchanged."""
    n, k = neighbours_x.shape
    in_y = np.empty((n, k), dtype=bool)
    position = np.empty((n, k), dtype=np.int64)  # where a shared neighbour sits in y's list
    for start in range(0, n, CHUNK):
        same = neighbours_x[start : start + CHUNK, :, None] == neighbours_y[start : start + CHUNK, None, :]
        in_y[start : start + CHUNK] = same.any(axis=2)
        position[start : start + CHUNK] = same.argmax(axis=2)
    if own_y is not None:
        shared_y = np.take_along_axis(own_y, position, axis=1)
    else:  # only the mutual pairs: few under a permutation
        rows = np.arange(n) if rows is None else np.asarray(rows)
        i, j = np.nonzero(in_y)
        shared_y = np.zeros((n, k))
        shared_y[i, j] = _pair_cosines(unit_y, rows[i], rows[neighbours_x[i, j]])
    return _row_kernel(own_x, neighbours_x, in_y), _row_kernel(shared_y, neighbours_x, in_y)


def cknna_from_kernels(kernels: tuple) -> float:
    """CKNNA from ``cknna_kernels``."""
    kx_shared, ky_shared, kx_own, ky_own = kernels
    denominator = np.sqrt(_sparse_unbiased_hsic(kx_own, kx_own) * _sparse_unbiased_hsic(ky_own, ky_own))
    if not denominator > 0:
        return float("nan")
    return float(_sparse_unbiased_hsic(kx_shared, ky_shared) / denominator)


def weighted_sparse_hsic(a, b, weights: np.ndarray) -> np.ndarray:
    """``_sparse_unbiased_hsic(a, b)`` on the rows repeated by their weights, for every column of ``weights (N, B)``
    (bootstrap counts) at once, ``(B,)``: kernel ``A`` becomes ``W A W``, a row's copies are not each other's
    neighbours, and ``1^T A' B' 1 = sum_j w_j (A^T w)_j (B w)_j``. Unit weights give ``_sparse_unbiased_hsic``."""
    w = np.asarray(weights, dtype=np.float64)
    m = w.sum(axis=0)
    product = a.multiply(b.T).tocoo()  # A_ij B_ji on the pairs both kernels hold
    trace_term = np.einsum("vb,vb,v->b", w[product.row], w[product.col], product.data)
    a_w, a_t_w, b_w, b_t_w = a @ w, a.T @ w, b @ w, b.T @ w  # (N, B) each
    total_a, total_b = np.einsum("ib,ib->b", w, a_w), np.einsum("ib,ib->b", w, b_w)
    ab = np.einsum("ib,ib,ib->b", w, a_t_w, b_w)  # 1^T A' B' 1 of the repeated rows
    ba = np.einsum("ib,ib,ib->b", w, b_t_w, a_w)
    return (trace_term + total_a * total_b / ((m - 1) * (m - 2)) - (ab + ba) / (m - 2)) / (m * (m - 3))


def weighted_cknna(kernels: tuple, weights: np.ndarray) -> np.ndarray:
    """CKNNA from ``cknna_kernels`` under each column of row ``weights (N, B)``, ``(B,)``."""
    kx_shared, ky_shared, kx_own, ky_own = kernels
    with np.errstate(invalid="ignore"):
        own = weighted_sparse_hsic(kx_own, kx_own, weights) * weighted_sparse_hsic(ky_own, ky_own, weights)
        denominator = np.sqrt(own)
        out = weighted_sparse_hsic(kx_shared, ky_shared, weights) / denominator
    return np.where(denominator > 0, out, np.nan)


def neighbour_distances(x: np.ndarray, neighbours: np.ndarray, unit: bool = True) -> np.ndarray:
    """Distances between the rows of ``x`` and their listed ``neighbours (N, k)``, ``(N, k)`` float64, computed from
    the rows' differences in blocks of bounded size: between unit-normalised rows (``unit``) or the rows as given."""
    fx = features(x)
    rows = fx.unit if unit else np.asarray(fx.x, dtype=np.float64)
    n, k = neighbours.shape
    chunk = max(64, 2**24 // (k * rows.shape[1]))
    out = np.empty((n, k))
    for start in range(0, n, chunk):
        block = slice(start, start + chunk)
        own = rows[block]
        other = rows[neighbours[block].ravel()].reshape(len(own), k, -1)
        out[block] = np.linalg.norm(own[:, None, :] - other, axis=2)
    return out


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


def lfre_errors(
    x: np.ndarray, y: np.ndarray, neighbours_x: np.ndarray, queries: np.ndarray, regularisation=1e-8
) -> np.ndarray:
    """Per query, the squared LFRE reconstruction error, ``(len(queries),)``: LFRE is the root of their mean."""
    fx, fy = features(x), features(y)
    (mean_x, scale_x), (mean_y, scale_y) = fx.centring, fy.centring

    def x_rows(rows):  # centred and scaled rows, gathered: only the queries' neighbourhoods are touched
        return (np.asarray(fx.x[rows], dtype=np.float64) - mean_x) / scale_x

    def y_rows(rows):
        return (np.asarray(fy.x[rows], dtype=np.float64) - mean_y) / scale_y

    errors = np.empty(len(queries))
    k = neighbours_x.shape[1]
    chunk = max(1, 2**22 // (k * (fx.shape[1] + fy.shape[1])))  # gathered neighbourhoods: <= 32 MiB per block
    for start in range(0, len(queries), chunk):
        batch = np.asarray(queries[start : start + chunk])
        local = neighbours_x[batch]  # (c, k)
        xl, yl = x_rows(local), y_rows(local)
        mx, my = xl.mean(axis=1, keepdims=True), yl.mean(axis=1, keepdims=True)
        xc, yc = xl - mx, yl - my
        # dual (kernel) ridge, all queries of the block at once: k neighbours are usually fewer than the features
        gram = xc @ xc.transpose(0, 2, 1)
        ridge = regularisation * np.maximum(np.trace(gram, axis1=1, axis2=2), 1e-300)
        alpha = np.linalg.solve(gram + ridge[:, None, None] * np.eye(k), yc)
        similarity = (x_rows(batch)[:, None, :] - mx) @ xc.transpose(0, 2, 1)  # (c, 1, k)
        prediction = my[:, 0] + (similarity @ alpha)[:, 0]
        errors[start : start + len(batch)] = np.sum((y_rows(batch) - prediction) ** 2, axis=1)
    return errors


def lfre_ridge_cv(
    x, y, neighbours_x: np.ndarray, queries: np.ndarray, folds: np.ndarray, grid
) -> tuple[float, np.ndarray]:
    """LFRE's relative ridge for Y from X, chosen by two-fold cross-validation on the neighbourhoods alone (the
    training side of each query; a query's own Y never enters): each query's neighbours are split by their
    ``folds (N,)`` (0 or 1, by structure), a local ridge map fitted on one fold's neighbours (centred on them, penalty
    ``r`` times the trace of the whole neighbourhood's centred Gram, as ``lfre_errors``) predicts the other fold's, and
    the squared errors over every query and both folds are summed for each relative ridge r of ``grid``. A fold of
    fewer than two neighbours fits nothing. Returns the ridge of least error (the first of equals) and the errors
    ``(G,)``.

    Everything is a ``(k, k)`` product of the neighbourhood's Grams H = X X^T and L = Y Y^T: with C the centring on
    the fitting fold (zero elsewhere) and E the held-out rows less the fitting fold's mean, the fold's Gram is
    C H C = V diag(e) V^T, A = E H C V, and the held-out error is ``tr(E L E^T) - 2 sum_i g_i (A^T E L C V)_ii +
    g^T (A^T A o V^T C L C V) g``, g = 1 / (e + ridge): the width enters once, in H and L."""
    fx, fy = features(x), features(y)
    (mean_x, scale_x), (mean_y, scale_y) = fx.centring, fy.centring
    grid = np.asarray(grid, dtype=np.float64)
    errors = np.zeros(len(grid))
    k = neighbours_x.shape[1]
    chunk = max(1, 2**22 // (k * (fx.shape[1] + fy.shape[1])))
    for start in range(0, len(queries), chunk):
        local = neighbours_x[np.asarray(queries[start : start + chunk])]  # (c, k)
        xl = (np.asarray(fx.x[local], dtype=np.float64) - mean_x) / scale_x
        yl = (np.asarray(fy.x[local], dtype=np.float64) - mean_y) / scale_y
        gram_x, gram_y = xl @ xl.transpose(0, 2, 1), yl @ yl.transpose(0, 2, 1)  # (c, k, k)
        # the trace of the whole neighbourhood's centred Gram
        trace_all = np.maximum(np.einsum("cii->c", gram_x) - gram_x.sum(axis=(1, 2)) / k, 1e-300)
        for a in (0, 1):
            own = (folds[local] == a).astype(np.float64)
            used = (own.sum(axis=1) >= 2) & (own.sum(axis=1) <= k - 1)
            if not used.any():
                continue
            own, h, ly, trace = own[used], gram_x[used], gram_y[used], trace_all[used]
            weights = own / own.sum(axis=1, keepdims=True)  # the fitting fold's mean
            centre = own[:, :, None] * (np.eye(k) - weights[:, None, :])  # C, symmetric
            held = (1 - own)[:, :, None] * (np.eye(k) - weights[:, None, :])  # E
            values, vectors = np.linalg.eigh(centre @ h @ centre)
            left = held @ h @ centre @ vectors  # A
            fitted = vectors.transpose(0, 2, 1) @ centre @ ly  # V^T C L
            linear = np.einsum("cji,cji->ci", left, held @ fitted.transpose(0, 2, 1))  # (A^T E L C V)_ii
            quadratic = (left.transpose(0, 2, 1) @ left) * (fitted @ centre @ vectors)
            base = np.einsum("cij,cjk,cik->", held, ly, held)
            for i, r in enumerate(grid):
                g = 1.0 / (values + r * trace[:, None])
                errors[i] += base - 2 * np.einsum("ci,ci->", g, linear) + np.einsum("ci,cij,cj->", g, quadratic, g)
    return float(grid[int(np.argmin(errors))]), errors


def lfre_errors_chosen(x, y, neighbours_x, queries, grid, folds=None) -> tuple[np.ndarray, float]:
    """``lfre_errors`` with the relative ridge ``lfre_ridge_cv`` chooses from ``grid`` (a grid of one value is that
    ridge, with no cross-validation and no ``folds``); returns the per-query squared errors and the ridge."""
    ridge = float(grid[0]) if len(grid) == 1 else lfre_ridge_cv(x, y, neighbours_x, queries, folds, grid)[0]
    return lfre_errors(x, y, neighbours_x, queries, ridge), ridge


# ----------------------------------------------------------------------------------------------
# subsample metrics


def distance_correlation_from_distances(distances_x: np.ndarray, distances_y: np.ndarray) -> float:
    """Distance correlation from both point clouds' ``distance_matrix`` (each computed once per model)."""

    def doubly_centred(d):
        return d - d.mean(axis=0) - d.mean(axis=1)[:, None] + d.mean()

    a, b = doubly_centred(distances_x), doubly_centred(distances_y)
    dcov_xy, dcov_xx, dcov_yy = (a * b).mean(), (a * a).mean(), (b * b).mean()
    if dcov_xx <= 0 or dcov_yy <= 0:
        return float("nan")
    return float(np.sqrt(max(dcov_xy, 0.0) / np.sqrt(dcov_xx * dcov_yy)))


def distance_matrix(x: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``x (m, d)``, ``(m, m)`` float64."""
    from scipy.spatial.distance import pdist, squareform

    return squareform(pdist(np.asarray(x, dtype=np.float64)))


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


def information_imbalance(
    x: np.ndarray,
    y: np.ndarray,
    neighbours_x: np.ndarray,
    queries: np.ndarray,
    chunk: int | None = None,
    groups: np.ndarray | None = None,
) -> float:
    """Information imbalance Delta(X -> Y) (Glielmo et al., PNAS Nexus 1, pgac039 (2022)):
    ``2/N`` times the mean rank, in Y, of each query's nearest neighbour in X. ~0: X's
    neighbourhoods predict Y's; ~1: no information. Like the neighbour lists, distances are between
    unit-normalised rows (cosine order). Ranks are exact over all N rows; queries are a (seeded)
    subsample. With ``groups (N,)`` (structure of each row), rows of a query's own group are not ranked (as
    for neighbour lists searched with ``groups``)."""
    ranks = neighbour_ranks(y, neighbours_x, queries, chunk, groups)
    return float(2.0 / len(y) * ranks.mean())


def neighbour_ranks(
    y: np.ndarray,
    neighbours_x: np.ndarray,
    queries: np.ndarray,
    chunk: int | None = None,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Per query, the rank in Y (1 = nearest) of its nearest neighbour in X, ``(len(queries),)`` float64: the
    terms whose mean ``information_imbalance`` scales by ``2/N``."""
    fy = features(y)
    y, square = fy.unit, fy.square
    n = len(y)
    chunk = chunk or max(1, 2**24 // n)  # a (chunk, N) float64 block of at most 128 MiB
    ranks = np.empty(len(queries))
    for start in range(0, len(queries), chunk):
        batch = queries[start : start + chunk]
        # |a|^2 + |b|^2 - 2 a.b, the products scaled by 2 (exact) and subtracted in place: no third (chunk, N) block
        distance = square[batch, None] + square[None, :]
        products = y[batch] @ y.T
        products *= 2.0
        distance -= products
        del products
        distance[np.arange(len(batch)), batch] = np.inf  # a point is not its own neighbour
        if groups is not None:
            distance[groups[batch][:, None] == groups[None, :]] = np.inf
        target = distance[np.arange(len(batch)), neighbours_x[batch, 0]]
        # neighbours come from a float32 search: closer by less than its round-off counts as a tie
        target -= RANK_TOLERANCE
        ranks[start : start + chunk] = np.count_nonzero(distance < target[:, None], axis=1) + 1
    return ranks
