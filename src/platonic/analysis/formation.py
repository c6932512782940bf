"""A model's formation-energy error against DFT, through per-element reference energies fitted on training structures.

A model predicts a total energy, not a formation energy: the two differ by the energies of the elemental
references, which depend on the model's own energy zero and the DFT functional it was trained on. So for
each model the references are fitted, not taken from elsewhere:

    formation_DFT(s) ~ e_model(s) - sum_el x_el(s) mu_el

with ``e_model`` the model's energy per atom, ``x_el`` the atomic fraction of each element and ``mu_el`` one
reference energy per element, fitted by ordinary least squares on the training structures of a seeded
structure split. The fitted references then turn the model's energies of the held-out structures into
formation energies, and their error is the model's formation-energy error. A held-out structure holding an
element no training structure holds has no fitted reference and is left out (counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ReferenceFit", "composition_fractions", "fit_references", "formation_errors"]


def composition_fractions(numbers: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Atomic fractions of every element in every structure: ``(elements (E,) atomic numbers ascending,
    fractions (S, E))`` from each structure's atomic numbers."""
    elements = np.unique(np.concatenate([np.asarray(z, dtype=np.int64) for z in numbers])) if numbers else np.zeros(0)
    fractions = np.zeros((len(numbers), len(elements)))
    for row, z in enumerate(numbers):
        found, counts = np.unique(np.asarray(z, dtype=np.int64), return_counts=True)
        fractions[row, np.searchsorted(elements, found)] = counts / counts.sum()
    return elements.astype(np.int64), fractions


@dataclass(frozen=True)
class ReferenceFit:
    """Fitted reference energies ``mu (E,)`` (eV/atom; NaN for an element absent from the training structures)
    of ``elements (E,)``, the training structures' count and the fit's root-mean-square residual (eV/atom)."""

    elements: np.ndarray
    mu: np.ndarray
    n_train: int
    train_rmse: float


def fit_references(energy: np.ndarray, formation: np.ndarray, elements: np.ndarray, fractions: np.ndarray,
                   train: np.ndarray) -> ReferenceFit:  # fmt: skip
    """Least-squares references from the training structures (``train (S,)`` bool): ``energy (S,)`` the model's
    energy per atom, ``formation (S,)`` DFT's formation energy per atom, ``fractions (S, E)``."""
    energy, formation = np.asarray(energy, dtype=np.float64), np.asarray(formation, dtype=np.float64)
    train = np.asarray(train, dtype=bool) & np.isfinite(energy) & np.isfinite(formation)
    if train.sum() == 0:
        raise ValueError("no training structure has both a predicted energy and a DFT formation energy")
    seen = fractions[train].sum(axis=0) > 0
    design = fractions[np.ix_(train, seen)]
    target = energy[train] - formation[train]
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    mu = np.full(len(elements), np.nan)
    mu[seen] = solution
    residual = design @ solution - target
    return ReferenceFit(np.asarray(elements), mu, int(train.sum()), float(np.sqrt(np.mean(residual**2))))


def formation_errors(energy: np.ndarray, formation: np.ndarray, fractions: np.ndarray, fit: ReferenceFit) -> np.ndarray:
    """Predicted minus DFT formation energy per atom ``(S,)``, NaN where a structure holds an element without a
    fitted reference or has no energy."""
    present = fractions > 0
    known = ~np.any(present & np.isnan(fit.mu)[None, :], axis=1)
    mu = np.nan_to_num(fit.mu)
    predicted = np.asarray(energy, dtype=np.float64) - fractions @ mu
    errors = predicted - np.asarray(formation, dtype=np.float64)
    return np.where(known, errors, np.nan)
