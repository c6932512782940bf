"""CKNNA (Huh et al., ICML 2024): CKA restricted to mutual k-NN pairs, from sparse masked kernels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from platonic.compare.metrics.base import Facts, Metric
from platonic.compare.metrics.features import CHUNK, features
from platonic.compare.metrics.neighbour_lists import neighbour_cosines


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


@dataclass
class OwnKernel:
    """What CKNNA needs of one model alone in one space: its cosines to its own first k neighbours ``cosines (n,
    k)``, the unbiased HSIC of its masked kernel with itself ``hsic``, and the same in every bootstrap replicate
    ``replicates (B,)`` (None without a bootstrap). A model's summary computes it once (``own_kernel``), not each
    of the pairs the model is in; a permutation of the rows leaves it unchanged."""

    cosines: np.ndarray
    hsic: float
    replicates: np.ndarray | None = None


def own_kernel(x, neighbours: np.ndarray, resampling=None) -> OwnKernel:
    """``OwnKernel`` of features ``x (n, d)`` (an array or ``Features``) on its first k neighbours ``neighbours (n,
    k)``, with every bootstrap replicate's HSIC where ``resampling`` (``bootstrap.Resampling``) draws replicates."""
    cosines = neighbour_cosines(features(x).unit, neighbours)
    kernel = _row_kernel(cosines, neighbours)
    replicates = None
    if resampling is not None and resampling.n_replicates:
        replicates = weighted_sparse_hsic(kernel, kernel, resampling.count_matrix)
    return OwnKernel(cosines, _sparse_unbiased_hsic(kernel, kernel), replicates)


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
    return cknna_from_parts((kx_shared, ky_shared), _sparse_unbiased_hsic(kx_own, kx_own),
                            _sparse_unbiased_hsic(ky_own, ky_own))  # fmt: skip


def cknna_from_parts(shared: tuple, hsic_x: float, hsic_y: float) -> float:
    """CKNNA from the two mutual-pair kernels ``shared`` (``cknna_shared_kernels``) and each model's own HSIC
    (``OwnKernel.hsic``)."""
    denominator = np.sqrt(hsic_x * hsic_y)
    if not denominator > 0:
        return float("nan")
    return float(_sparse_unbiased_hsic(*shared) / denominator)


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
    own_x, own_y = weighted_sparse_hsic(kx_own, kx_own, weights), weighted_sparse_hsic(ky_own, ky_own, weights)
    return weighted_cknna_from_parts((kx_shared, ky_shared), own_x, own_y, weights)


def weighted_cknna_from_parts(shared: tuple, own_x: np.ndarray, own_y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``weighted_cknna`` from the mutual-pair kernels ``shared`` and each model's own HSIC in every replicate
    (``OwnKernel.replicates``), ``(B,)``."""
    with np.errstate(invalid="ignore"):
        denominator = np.sqrt(own_x * own_y)
        out = weighted_sparse_hsic(*shared, weights) / denominator
    return np.where(denominator > 0, out, np.nan)


class Cknna(Metric):
    """From the pair's mutual-pair kernels (``Pair.shared_kernels``) and each model's ``OwnKernel``, which its
    summary holds; a permutation of y only renews the two mutual-pair kernels."""

    facts = Facts(
        "cknna", "CKNNA",
        "CKA restricted to mutual k-NN pairs, symmetrised over the two kernels",
        "Huh et al., ICML 2024", True, False, "all", True, "sparse masked kernels on the k-NN lists",
        "neighbour lists kept fixed",
        k_setting="k",
    )  # fmt: skip
    needs = frozenset({"own_kernel"})
    through_unit_rows = True

    def value(self, pair) -> dict:
        own_x, own_y = pair.own_kernels
        return {(self.name, True): cknna_from_parts(pair.shared_kernels, own_x.hsic, own_y.hsic)}

    def replicates(self, pair) -> dict:
        own_x, own_y = pair.own_kernels
        return {(self.name, True): weighted_cknna_from_parts(pair.shared_kernels, own_x.replicates, own_y.replicates,
                                                             pair.resampling.count_matrix)}  # fmt: skip

    def permuted(self, pair) -> dict:
        # the own kernels' HSICs do not change under the permutation: only the mutual-pair kernels are new
        parent, k = pair.parent, pair.k
        own_x, own_y = parent.own_kernels
        shared = cknna_shared_kernels(own_x.cosines, parent.fy.unit, pair.sx.neighbours[:, :k],
                                      pair.sy.neighbours[:, :k], rows=pair.permutation)  # fmt: skip
        return {(self.name, True): cknna_from_parts(shared, own_x.hsic, own_y.hsic)}
