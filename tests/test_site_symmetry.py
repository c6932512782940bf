"""Forces a site symmetry forbids: projectors of known sites (cubic, threefold axis, general position)
against their closed forms, and the forbidden part of constructed forces."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from platonic.site_symmetry import allowed_force_projectors, forbidden_force, orbit_maxima
from platonic.symmetry import crystal_orbits


def test_rock_salt_sites_allow_no_force():
    """Na and Cl in rock salt sit on m-3m sites (inversion centres): the allowed projector is zero, so any
    force is wholly forbidden."""
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    projectors = allowed_force_projectors(atoms)
    np.testing.assert_allclose(projectors, 0.0, atol=1e-12)
    forces = np.array([[0.3, -0.4, 0.0], [0.0, 0.0, 2.0]])
    np.testing.assert_allclose(forbidden_force(forces, projectors), [0.5, 2.0], rtol=1e-12)


def test_wurtzite_allows_forces_along_the_polar_axis_only():
    """Zn and O in wurtzite sit on threefold axes along c (site symmetry 3m): the allowed projector is z z^T."""
    atoms = bulk("ZnO", "wurtzite", a=3.25, c=5.2, u=0.382)
    projectors = allowed_force_projectors(atoms)
    expected = np.diag([0.0, 0.0, 1.0])
    for projector in projectors:
        np.testing.assert_allclose(projector, expected, atol=1e-12)
    along_c = np.tile([0.0, 0.0, 1.7], (len(atoms), 1))
    np.testing.assert_allclose(forbidden_force(along_c, projectors), 0.0, atol=1e-12)
    in_plane = np.tile([0.6, 0.8, 0.5], (len(atoms), 1))
    np.testing.assert_allclose(forbidden_force(in_plane, projectors), 1.0, rtol=1e-12)


def test_general_positions_allow_any_force():
    """A cell with no symmetry but the identity (P1) forbids nothing."""
    rng = np.random.default_rng(3)
    atoms = Atoms("HeNeAr", scaled_positions=rng.random((3, 3)), cell=np.diag([4.1, 5.3, 6.7]) + 0.3, pbc=True)
    projectors = allowed_force_projectors(atoms)
    np.testing.assert_allclose(projectors, np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(forbidden_force(rng.normal(size=(3, 3)), projectors), 0.0, atol=1e-12)


def test_projectors_are_invariant_to_the_cell_setting():
    """The same rock-salt crystal in its conventional cubic cell (8 atoms) still forbids every force, and a
    rotated wurtzite cell allows forces along its rotated c axis."""
    cubic = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    np.testing.assert_allclose(allowed_force_projectors(cubic), 0.0, atol=1e-12)
    wurtzite = bulk("ZnO", "wurtzite", a=3.25, c=5.2, u=0.382)
    wurtzite.rotate(30, "x", rotate_cell=True)
    axis = wurtzite.cell.array[2] / np.linalg.norm(wurtzite.cell.array[2])
    for projector in allowed_force_projectors(wurtzite):
        np.testing.assert_allclose(projector, np.outer(axis, axis), atol=1e-10)


def test_unanalysable_structures_forbid_nothing():
    molecule = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    np.testing.assert_array_equal(allowed_force_projectors(molecule), np.broadcast_to(np.eye(3), (2, 3, 3)))


def test_orbit_maxima_and_shape_errors():
    atoms = bulk("ZnO", "wurtzite", a=3.25, c=5.2, u=0.382) * (1, 1, 2)
    orbits = crystal_orbits(atoms)
    values = np.arange(len(atoms), dtype=float)
    representatives, maxima = orbit_maxima(values, orbits.representative)
    # two orbits (Zn and O); each one's largest atom index is its largest value
    for representative, maximum in zip(representatives, maxima, strict=True):
        members = np.flatnonzero(orbits.representative == representative)
        assert maximum == values[members].max()
    assert len(representatives) == 2
    with pytest.raises(ValueError, match="do not match"):
        forbidden_force(np.zeros((2, 3)), np.zeros((3, 3, 3)))
