"""Global feature reconstruction error (Goscinski et al., MLST 2021) from train/test moment matrices, with its
relative ridge chosen by two-fold cross-validation on the training structures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from platonic.compare.metrics.base import Facts, Metric
from platonic.compare.metrics.moments import Moments, cross_gram, moments


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


def _outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per replicate, the outer product of ``a (B, m)`` and ``b (B, n)``: ``(B, m, n)``."""
    return a[:, :, None] * b[:, None, :]


def _per(values: np.ndarray) -> np.ndarray:
    return values[:, None, None]


def gfre_replicates(cross_train: np.ndarray, cross_test: np.ndarray, sx, sy, regularisation: float = 1e-8):
    """GFRE of y from x in every replicate, ``(B,)``, from the replicates' raw ``X^T Y`` on the train and the test
    structures ``(B, d_x, d_y)`` and both spaces' ``bootstrap.ReplicateMoments``: ``gfre_from_moments`` on stacks,
    with the relative ridge ``regularisation`` (the value's, kept fixed: the replicates do not cross-validate
    again). One replicate's system at a time, so that no second ``(B, d_x, d_x)`` stack is held."""
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


class Gfre(Metric):
    """From the pair's split cross Grams and both spaces' split moments; the relative ridge of each direction is
    chosen by cross-validation (``similarity.ridge: cv``), recorded in ``pair.ridges`` and kept by the replicates."""

    facts = Facts(
        "gfre", "GFRE (row predicts column)",
        "global feature reconstruction error of the column model from the row model (ridge)",
        "Goscinski et al., MLST 2021", False, True, "test", False,
        "ridge from train/test moment matrices, atoms of a structure on one side of the split; relative ridge"
        " by two-fold cross-validation on the training structures (similarity.ridge)",
        "exact, from per-structure sums (fixed split, the value's ridge)",
    )  # fmt: skip
    needs = frozenset({"split", "replicates"})

    def value(self, pair) -> dict:
        cross_train, cross_test, folds = pair.split_crosses
        grid = pair.c.ridge_grid
        out = {}
        for key in self.keys(pair):
            forward = key[1]
            a, b = (pair.sx.split, pair.sy.split) if forward else (pair.sy.split, pair.sx.split)
            if len(grid) == 1:
                ridge = float(grid[0])
            else:
                ridge = gfre_ridge_cv(folds if forward else [c.T for c in folds], a, b, grid)[0]
            train, test = (cross_train, cross_test) if forward else (cross_train.T, cross_test.T)
            out[key], pair.ridges[key] = gfre_from_moments(train, test, a, b, ridge), ridge
        return out

    def replicates(self, pair) -> dict:
        cross_train, cross_test = pair.replicate_crosses
        mx, my = pair.sx.replicates, pair.sy.replicates
        ridges, flip = pair.ridges, (0, 2, 1)
        return {
            (self.name, True): gfre_replicates(cross_train, cross_test, mx, my, ridges.get((self.name, True), 1e-8)),
            (self.name, False): gfre_replicates(cross_train.transpose(flip), cross_test.transpose(flip), my, mx,
                                                ridges.get((self.name, False), 1e-8)),
        }  # fmt: skip
