"""Harmonic phonons from a potential's forces by finite displacements (phonopy), and how the models' phonons differ.

One structure's phonons take three steps: `displacements` builds phonopy's supercell and its displaced copies (the
perfect supercell first), a model computes the forces on each, and `phonon_modes` turns them into force constants
and frequencies on a q-mesh. The perfect supercell's forces are subtracted from every displaced one's (phonopy's
``--fz``): the structures are not relaxed with each model, and a residual force that the displacement did not cause
would otherwise enter the force constants. The force constants are then symmetrised (phonopy's translational
invariance and index-permutation symmetry); the acoustic sum-rule residual at Gamma is read before that.

Frequencies are in THz; phonopy returns an imaginary frequency as a negative number, and so does everything here.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import ase
import numpy as np

__all__ = [
    "COLUMNS",
    "PhononModes",
    "TEST_COLUMNS",
    "displacements",
    "frequency_spread",
    "imaginary_fraction",
    "phonon_modes",
    "supercell_repeats",
]


# the phonon table: one row per structure and model; the structure's own values (its cell, the models' spread, its
# latent signals in the study) repeat on each of its rows
COLUMNS = ["material_id", "formula", "spacegroup", "n_primitive_atoms", "supercell", "n_supercell_atoms",
           "n_displacements", "frequency_spread", "frequency_spread_thz", "imaginary_fraction_mean",
           "n_models_compared", "disagreement", "atypicality", "symmetry_spread", "model", "imaginary_fraction",
           "min_frequency", "max_frequency", "gamma_residual", "residual_force", "excluded"]  # fmt: skip
# the rank tests of a latent signal against a phonon target over the structures (platonic.analysis.rank_correlation)
TEST_COLUMNS = ["signal", "target", "value", "ci_low", "ci_high", "chance", "chance_low", "chance_high", "p_value",
                "n", "n_structures"]  # fmt: skip


def supercell_repeats(cell: np.ndarray, length: float) -> np.ndarray:
    """How often to repeat each axis of ``cell (3, 3)`` (rows are the lattice vectors, Angstrom) so that the
    supercell's width across that axis (the distance between the faces it pierces) is at least ``length``: ``(3,)``
    positive integers."""
    cell = np.asarray(cell, dtype=np.float64)
    volume = abs(np.linalg.det(cell))
    widths = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    return np.maximum(1, np.ceil(length / widths - 1e-9)).astype(int)


def _phonopy(atoms: ase.Atoms, repeats: np.ndarray, symprec: float):
    """phonopy's object for ``atoms`` (any cell: phonopy finds the primitive one) repeated ``repeats``."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        numbers=atoms.get_atomic_numbers(),
        cell=atoms.cell.array,
        scaled_positions=atoms.get_scaled_positions(),
        masses=atoms.get_masses(),
    )
    with warnings.catch_warnings():  # phonopy 4 says that "auto" is its default now, which is what is asked for
        warnings.filterwarnings("ignore", message="primitive_matrix defaulted to 'auto'")
        return Phonopy(unit, supercell_matrix=np.diag(repeats), primitive_matrix="auto", symprec=symprec)


def _to_ase(cell) -> ase.Atoms:
    return ase.Atoms(numbers=cell.numbers, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)


def displacements(atoms: ase.Atoms, repeats: np.ndarray, distance: float, symprec: float):
    """phonopy's displaced supercells of ``atoms`` (repeated ``repeats (3,)`` times, the symmetry found at ``symprec``
    Angstrom, each displacement ``distance`` Angstrom long): ``(phonon, supercells)``, the ``phonopy.Phonopy`` object
    that `phonon_modes` continues and the supercells as ``ase.Atoms``, the perfect one first, then one per
    displacement in phonopy's order."""
    phonon = _phonopy(atoms, repeats, symprec)
    phonon.generate_displacements(distance=distance)
    return phonon, [_to_ase(phonon.supercell)] + [_to_ase(cell) for cell in phonon.supercells_with_displacements]


@dataclass(frozen=True)
class PhononModes:
    """One model's phonons of one structure: ``frequencies (q, band)`` in THz at the irreducible q-points ``qpoints
    (q, 3)`` of the mesh (reduced coordinates of the primitive cell's reciprocal lattice), their ``weights (q,)``
    (how many mesh points each stands for), ``gamma_residual``, the largest absolute frequency of the three acoustic
    modes at Gamma before the force constants are symmetrised (THz; zero when the forces obey the acoustic sum rule),
    and ``residual_force``, the largest force on an atom of the perfect supercell (eV/Angstrom), which the displaced
    supercells' forces have subtracted."""

    frequencies: np.ndarray
    qpoints: np.ndarray
    weights: np.ndarray
    gamma_residual: float
    residual_force: float


def phonon_modes(phonon, forces: np.ndarray, mesh) -> PhononModes:
    """Force constants and frequencies of ``phonon`` (from `displacements`, not changed) given ``forces (1 + d, n,
    3)`` on its perfect supercell and its ``d`` displaced ones (eV/Angstrom), on the Gamma-centred ``mesh (3,)``."""
    forces = np.asarray(forces, dtype=np.float64)
    n_displaced = len(phonon.supercells_with_displacements)
    if forces.shape != (1 + n_displaced, len(phonon.supercell), 3):
        raise ValueError(
            f"forces of shape {forces.shape}; expected {(1 + n_displaced, len(phonon.supercell), 3)} (the perfect"
            " supercell, then each displaced one)"
        )
    original, phonon = phonon, phonon.copy()
    phonon.dataset = copy.deepcopy(original.dataset)  # copy() leaves the displacements out
    phonon.forces = forces[1:] - forces[0]
    phonon.produce_force_constants(show_drift=False)
    gamma = np.sort(np.abs(phonon.get_frequencies([0.0, 0.0, 0.0])))
    phonon.symmetrize_force_constants(show_drift=False)
    phonon.run_mesh(list(mesh), is_gamma_center=True)
    result = phonon.get_mesh_dict()
    return PhononModes(
        frequencies=np.asarray(result["frequencies"], dtype=np.float64),
        qpoints=np.asarray(result["qpoints"], dtype=np.float64),
        weights=np.asarray(result["weights"], dtype=np.float64),
        gamma_residual=float(gamma[:3].max()),
        residual_force=float(np.linalg.norm(forces[0], axis=1).max()),
    )


def imaginary_fraction(frequencies: np.ndarray, weights: np.ndarray, tolerance: float) -> float:
    """The share of the mesh's modes whose frequency is below ``-tolerance``: ``frequencies (q, band)`` (THz),
    each q-point counted ``weights (q,)`` times."""
    frequencies, weights = np.asarray(frequencies, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    imaginary = (frequencies < -tolerance).sum(axis=1)
    return float(weights @ imaginary / (weights.sum() * frequencies.shape[1]))


def frequency_spread(frequencies: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """How far models' frequencies of one structure differ: ``frequencies (M, q, band)`` (each q-point's bands in
    ascending order, as phonopy gives them), each q-point counted ``weights (q,)`` times -> ``(relative, rms)``.
    ``rms`` is the root mean square over the mesh's modes of the models' standard deviation (ddof 0) at that mode
    (THz); ``relative`` divides it by the root mean square of the models' mean frequency over the same modes."""
    frequencies, weights = np.asarray(frequencies, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    mean = frequencies.mean(axis=0)
    variance = ((frequencies - mean) ** 2).mean(axis=0)
    total = weights.sum() * frequencies.shape[2]
    rms = np.sqrt(weights @ variance.sum(axis=1) / total)
    scale = np.sqrt(weights @ (mean**2).sum(axis=1) / total)
    return float(rms / scale) if scale > 0 else float("nan"), float(rms)
