"""Local feature reconstruction error (Goscinski et al., MLST 2021): a local ridge on each query's neighbourhood,
its relative ridge chosen by two-fold cross-validation on the neighbourhoods."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.base import Facts, TermMetric
from platonic.compare.metrics.features import features


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


class Lfre(TermMetric):
    """Per query, the squared error of its local ridge reconstruction; the relative ridge is recorded in
    ``pair.ridges`` and kept by the replicates."""

    facts = Facts(
        "lfre", "LFRE (row predicts column)",
        "local feature reconstruction error of the column model from the row model (similarity.lfre_k"
        " neighbours)",
        "Goscinski et al., MLST 2021", False, True, "queries", True,
        "local ridge on each query's neighbourhood; relative ridge by two-fold cross-validation on the"
        " neighbourhoods (similarity.ridge)",
        "each query's error kept fixed",
    )  # fmt: skip

    def terms(self, pair, forward: bool) -> np.ndarray:
        c = pair.c
        source, target, neighbours = pair.oriented(forward)
        errors, pair.ridges[self.name, forward] = lfre_errors_chosen(
            source, target, neighbours[:, : c.lfre_k], pair.queries, c.ridge_grid, c.folds
        )
        return errors

    def rows(self, pair):
        return pair.queries

    def aggregate(self, terms, pair) -> float:
        return float(np.sqrt(terms.mean()))

    def weighted(self, terms, pair) -> np.ndarray:
        return np.sqrt(pair.resampling.mean(terms, self.rows(pair)))
