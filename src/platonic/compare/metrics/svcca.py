"""SVCCA (Raghu et al., NeurIPS 2017): principal directions of each space, then canonical correlations."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.base import Facts, MomentMetric


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


class Svcca(MomentMetric):
    facts = Facts(
        "svcca", "SVCCA",
        "mean canonical correlation after keeping 99 % of each space's variance, at most"
        " similarity.svcca_max_fraction of the atoms as directions",
        "Raghu et al., NeurIPS 2017", True, False, "all", False, "from streamed covariances",
        "exact, from per-structure sums",
    )  # fmt: skip
    needs = frozenset({"moments", "replicates", "whitening"})

    def from_covariances(self, cross, cxx, cyy, pair) -> float:
        return svcca_from_covariances(cross, cxx, cyy, max_directions=pair.c.svcca_directions)

    def from_replicates(self, centred, mx, my, pair) -> np.ndarray:
        return np.array(
            [
                np.nan if wx is None or wy is None else svcca_from_whitening(c, wx, wy)
                for c, wx, wy in zip(centred, mx.whitening, my.whitening, strict=True)
            ]
        )
