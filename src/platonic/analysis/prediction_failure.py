"""Does disagreement in the shared space flag prediction failures? Targets from the models' predictions, the
element-and-size controls and the table of rank tests that answers it.

*Targets* (physics, from the predictions): the spread of the models' forces on an atom (the root mean square over
models of each model's force minus the mean force, eV/Angstrom), the spread of their energies per atom on a
structure (the standard deviation over models, eV/atom), a model's absolute formation-energy error on a held-out
structure (:mod:`platonic.analysis.formation`) and the force a model puts on an atom where the atom's site
symmetry forbids one (:mod:`platonic.site_symmetry`, largest over the atom's orbit). *Signals* (latent, from the
shared space) are tested against each with :func:`platonic.analysis.rank_correlation.rank_test`, bare and with
two controls: the partial correlation given element identity and structure size, and the baseline, how well
element identity and size alone rank the target.
"""

from __future__ import annotations

import numpy as np

from platonic.analysis.rank_correlation import MIN_RESIDUAL_DOF, _projector, _ranked, rank_test

__all__ = [
    "COLUMNS",
    "CONTROLS",
    "SUMMARY_COLUMNS",
    "element_size_controls",
    "energy_spread",
    "force_spread",
    "structure_means",
    "structure_split",
    "signal_tests",
]

COLUMNS = ["signal", "target", "model", "level", "control", "value", "ci_low", "ci_high", "chance", "chance_low",
           "chance_high", "p_value", "n", "n_structures"]  # fmt: skip
SUMMARY_COLUMNS = ["kind", "model", "n", "n_train", "train_rmse", "mae", "rmse", "median", "max", "n_above",
                   "tolerance"]  # fmt: skip
# control -> what it is: the bare correlation, the partial one given element identity and structure size, and the
# baseline (element identity and size alone ranking the target)
CONTROLS = ("none", "element+size", "baseline")


def force_spread(forces: np.ndarray) -> np.ndarray:
    """Root mean square over models of each model's force minus the mean force, ``forces (M, n, 3)`` -> ``(n,)``."""
    forces = np.asarray(forces, dtype=np.float64)
    deviation = forces - forces.mean(axis=0, keepdims=True)
    return np.sqrt(np.mean(np.sum(deviation**2, axis=-1), axis=0))


def energy_spread(energy: np.ndarray) -> np.ndarray:
    """Standard deviation over models (population, ddof 0) of the energy per atom, ``energy (M, S)`` -> ``(S,)``."""
    return np.asarray(energy, dtype=np.float64).std(axis=0)


def structure_means(values: np.ndarray, structure: np.ndarray, n_structures: int) -> np.ndarray:
    """Mean of the finite ``values (n,)`` of each structure (``structure (n,)`` in 0..S-1) -> ``(S,)``, NaN where a
    structure has none."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    sums = np.bincount(structure[finite], weights=values[finite], minlength=n_structures)
    counts = np.bincount(structure[finite], minlength=n_structures)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def structure_split(n_structures: int, train_fraction: float, seed: int) -> np.ndarray:
    """Seeded split of ``n_structures``: ``(S,)`` bool, True for the ``round(train_fraction * S)`` training ones."""
    train = np.zeros(n_structures, dtype=bool)
    order = np.random.default_rng(seed).permutation(n_structures)
    train[order[: int(round(train_fraction * n_structures))]] = True
    return train


def element_size_controls(z: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Covariates of atoms: one indicator column per element of ``z (n,)`` and the size of the atom's structure
    ``size (n,)`` -> ``(n, E + 1)``. For structures pass composition fractions instead of indicators."""
    elements, index = np.unique(np.asarray(z), return_inverse=True)
    onehot = np.zeros((len(index), len(elements)))
    onehot[np.arange(len(index)), index] = 1.0
    return np.column_stack([onehot, np.asarray(size, dtype=np.float64)])


def _baseline_predictor(y: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """The least-squares prediction of ``y``'s ranks from the ranks of ``controls`` (finite rows), NaN elsewhere and
    everywhere when the controls leave fewer than ``MIN_RESIDUAL_DOF`` residual degrees of freedom (an in-sample fit
    with as many covariates as items ranks anything perfectly)."""
    from scipy.stats import rankdata

    out = np.full(len(y), np.nan)
    keep = np.isfinite(y) & np.all(np.isfinite(controls), axis=1)
    if keep.sum() < 3:
        return out
    design, solve, rank = _projector(_ranked(controls[keep], int(keep.sum())))
    if keep.sum() - rank < MIN_RESIDUAL_DOF:
        return out
    ranks = rankdata(y[keep])
    out[keep] = design @ (solve @ ranks)
    return out


def signal_tests(
    signals: dict[str, np.ndarray],
    target: np.ndarray,
    groups: np.ndarray,
    controls: np.ndarray,
    labels: dict,
    replicates: int,
    permutations: int,
    seed: int,
) -> list[dict]:
    """Rank tests of every signal ``{name: (n,)}`` against ``target (n,)`` over items grouped by structure ``groups
    (n,)``: bare, partial given ``controls (n, c)`` and the baseline (the controls' own prediction of the target, on
    the same items as the signal; its interval is over structures with the prediction held fixed). ``labels``
    (target, model, level) go into every row (:data:`COLUMNS`)."""
    rows = []
    target = np.asarray(target, dtype=np.float64)
    for name, signal in signals.items():
        signal = np.asarray(signal, dtype=np.float64)
        items = np.isfinite(signal)
        baseline = _baseline_predictor(np.where(items, target, np.nan), controls)
        for control, x, covariates in (("none", signal, None), ("element+size", signal, controls),
                                       ("baseline", baseline, None)):  # fmt: skip
            test = rank_test(x, target, groups, replicates, permutations, seed, controls=covariates)
            rows.append({"signal": name, **labels, "control": control, **test.row()})
    return rows
