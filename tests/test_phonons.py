"""Phonons by finite displacements (platonic.analysis.phonons) against closed forms: a simple cubic lattice of
nearest-neighbour springs, stable and unstable, and the cross-model spread of constructed frequencies."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import neighbor_list
from scipy import constants

from platonic.analysis import phonons

pytest.importorskip("phonopy")

A = 2.5  # Angstrom, the simple cubic lattice constant
MASS = 10.0  # amu
# THz per sqrt(eV / Angstrom^2 / amu) / (2 pi): an eigenvalue of the dynamical matrix in eV/Angstrom^2/amu -> THz
THZ = np.sqrt(constants.eV / constants.atomic_mass) / constants.angstrom / (2 * np.pi) / 1e12


class Springs(Calculator):
    """Central harmonic springs of stiffness ``k`` (eV/Angstrom^2) and rest length ``A`` between nearest
    neighbours of the simple cubic lattice (pairs closer than 1.2 A): E = sum over pairs of k / 2 (d - A)^2."""

    implemented_properties = ("energy", "forces")

    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        i, j, vector = neighbor_list("ijD", self.atoms, 1.2 * A)
        length = np.linalg.norm(vector, axis=1)
        stretch = length - A
        forces = np.zeros((len(self.atoms), 3))
        np.add.at(forces, i, (self.k * stretch / length)[:, None] * vector)
        self.results = {"energy": 0.25 * self.k * np.sum(stretch**2), "forces": forces}


def spring_modes(k: float, distance: float = 1e-4, mesh=(4, 4, 4)) -> phonons.PhononModes:
    """The springs' phonons. A displacement u across a spring stretches it by about u^2 / 2A, which gives the
    transverse branches (zero in the harmonic closed form) a frequency of order sqrt(k / m) u / A: 0.03 THz at
    phonopy's 0.01 Angstrom, under 1e-3 THz at the 1e-4 Angstrom used here. Along a spring the force is linear."""
    atoms = Atoms(numbers=[3], cell=np.eye(3) * A, pbc=True)
    atoms.set_masses([MASS])
    repeats = phonons.supercell_repeats(atoms.cell.array, 3 * A)
    phonon, supercells = phonons.displacements(atoms, repeats, distance, 1e-5)
    forces = []
    for cell in supercells:
        cell.calc = Springs(k)
        forces.append(cell.get_forces())
    return phonons.phonon_modes(phonon, np.array(forces), mesh)


def closed_form(k: float, qpoints: np.ndarray) -> np.ndarray:
    """Each axis's branch of the nearest-neighbour spring lattice: omega^2 = 2 k / m (1 - cos(2 pi q_i)), as THz
    (negative for an imaginary frequency), sorted per q-point."""
    squared = 2 * k / MASS * (1 - np.cos(2 * np.pi * qpoints))
    return np.sort(np.sign(squared) * np.sqrt(np.abs(squared)) * THZ, axis=1)


def test_supercell_repeats_reach_the_width_across_every_axis():
    assert phonons.supercell_repeats(np.eye(3) * 2.5, 7.5).tolist() == [3, 3, 3]
    assert phonons.supercell_repeats(np.diag([2.0, 4.0, 9.0]), 8.0).tolist() == [4, 2, 1]
    # fcc's primitive cell (a = 3.6): its faces are 3.6 / sqrt(3) = 2.078 A apart, so 9 A takes 5 repeats, not 4
    # (9 / |a_i| = 9 / 2.546 would give 4)
    assert phonons.supercell_repeats(bulk("Cu", "fcc", a=3.6).cell.array, 9.0).tolist() == [5, 5, 5]


def test_springs_give_the_closed_form_dispersion_and_no_imaginary_mode():
    modes = spring_modes(k=2.0)
    assert modes.weights.sum() == 64
    np.testing.assert_allclose(modes.frequencies, closed_form(2.0, modes.qpoints), atol=1e-3)
    # the largest frequency, at R = (1/2, 1/2, 1/2): sqrt(4 k / m) as THz
    assert modes.frequencies.max() == pytest.approx(np.sqrt(4 * 2.0 / MASS) * THZ, rel=1e-6)
    assert modes.gamma_residual < 1e-6
    assert modes.residual_force == 0.0
    assert phonons.imaginary_fraction(modes.frequencies, modes.weights, 0.1) == 0.0


def test_a_negative_spring_gives_imaginary_modes_in_the_closed_form_share():
    """With k < 0 the branch along axis i is imaginary wherever q_i != 0: on a 4 x 4 x 4 mesh 3 of every 4 points,
    so 3/4 of the modes."""
    modes = spring_modes(k=-1.0)
    np.testing.assert_allclose(modes.frequencies, closed_form(-1.0, modes.qpoints), atol=1e-3)
    assert phonons.imaginary_fraction(modes.frequencies, modes.weights, 0.1) == pytest.approx(0.75)
    # a tolerance above the largest imaginary frequency counts none
    assert phonons.imaginary_fraction(modes.frequencies, modes.weights, 10.0) == 0.0


def test_a_residual_force_is_subtracted():
    """A uniform force on every atom of every supercell (one that no displacement caused) changes nothing."""
    atoms = Atoms(numbers=[3], cell=np.eye(3) * A, pbc=True)
    atoms.set_masses([MASS])
    phonon, supercells = phonons.displacements(atoms, np.array([3, 3, 3]), 0.01, 1e-5)
    forces = []
    for cell in supercells:
        cell.calc = Springs(2.0)
        forces.append(cell.get_forces())
    forces = np.array(forces)
    plain = phonons.phonon_modes(phonon, forces, (4, 4, 4))
    shifted = phonons.phonon_modes(phonon, forces + [0.3, -0.2, 0.1], (4, 4, 4))
    np.testing.assert_allclose(shifted.frequencies, plain.frequencies, atol=1e-6)
    assert shifted.residual_force == pytest.approx(np.sqrt(0.14))
    with pytest.raises(ValueError, match="the perfect supercell, then each displaced one"):
        phonons.phonon_modes(phonon, forces[1:], (4, 4, 4))


def test_imaginary_fraction_weights_each_q_point():
    frequencies = np.array([[-0.5, 1.0, 2.0], [-0.05, 3.0, 4.0]])
    # q-point 0 stands for 3 mesh points, q-point 1 for 1: one mode of 3 * 3 + 1 * 3 = 12 is below -0.1 three times
    assert phonons.imaginary_fraction(frequencies, np.array([3, 1]), 0.1) == pytest.approx(3 / 12)
    assert phonons.imaginary_fraction(frequencies, np.array([3, 1]), 0.01) == pytest.approx(4 / 12)


def test_frequency_spread_of_scaled_models_is_the_scales_spread():
    """Models whose frequencies are (1 + e_m) g of one g: the relative spread is std(e) / (1 + mean(e)) whatever g,
    and the RMS spread std(e) times the weighted root mean square of g."""
    rng = np.random.default_rng(0)
    g = rng.uniform(0.5, 9.0, size=(7, 6))
    weights = rng.integers(1, 9, size=7).astype(float)
    e = np.array([0.03, -0.02, 0.10, 0.0])
    relative, rms = phonons.frequency_spread((1 + e)[:, None, None] * g, weights)
    assert relative == pytest.approx(e.std() / (1 + e.mean()), rel=1e-12)
    assert rms == pytest.approx(e.std() * np.sqrt(weights @ (g**2).sum(axis=1) / (weights.sum() * 6)), rel=1e-12)
    identical = phonons.frequency_spread(np.stack([g, g, g]), weights)
    assert identical == pytest.approx((0.0, 0.0), abs=1e-15)
