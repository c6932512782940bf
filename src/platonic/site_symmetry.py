"""Which force components an atom's site symmetry forbids, and how large a model's forbidden forces are.

An operation of the crystal's space group that maps an atom onto itself (its *site symmetry group*)
must leave the force on that atom unchanged: ``R F = F`` for every such rotation ``R``. The
allowed forces are the vectors fixed by the whole group, and the group average
``P = mean(R)`` is the orthogonal projector onto them (for a group of orthogonal matrices). An atom
on an inversion centre, or on a site of cubic symmetry, may carry no force at all (``P = 0``); an
atom on a threefold axis may carry a force along the axis only; an atom in a general position
(only the identity) may carry any force. ``|F - P F|`` is the part of a predicted force that the
structure's own symmetry forbids, in the force's units: an exactly equivariant model gives zero up
to float noise on a structure whose atoms sit exactly on their symmetric sites.

The space group is spglib's at ``symprec`` (Angstrom), the same tolerance as the orbits
(:mod:`platonic.symmetry`): atoms that sit up to ``symprec`` off their symmetric sites are
treated as on them, so a model's force there is judged against the symmetric structure.
"""

from __future__ import annotations

import warnings

import ase
import numpy as np

from platonic.symmetry import DEFAULT_SYMPREC

__all__ = ["allowed_force_projectors", "forbidden_force", "orbit_maxima"]


def allowed_force_projectors(atoms: ase.Atoms, symprec: float = DEFAULT_SYMPREC) -> np.ndarray:
    """Per atom the Cartesian projector onto the forces its site symmetry allows, ``(n, 3, 3)`` float64.

    A structure spglib cannot analyse (not periodic, no dataset) gets identities: nothing is forbidden
    where no symmetry is known."""
    import spglib

    n = len(atoms)
    identity = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    if n == 0 or not all(atoms.pbc) or abs(atoms.cell.volume) < 1e-12:
        return identity
    lattice = np.asarray(atoms.cell.array, dtype=np.float64)  # rows are the lattice vectors
    fractional = atoms.get_scaled_positions(wrap=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = spglib.get_symmetry_dataset((lattice, fractional, atoms.get_atomic_numbers()), symprec=symprec)
    except Exception:  # spglib.SpglibError or its C layer: no symmetry known
        return identity
    if dataset is None:
        return identity
    rotations = np.asarray(dataset.rotations, dtype=np.float64)  # (G, 3, 3), acting on fractional columns
    translations = np.asarray(dataset.translations, dtype=np.float64)  # (G, 3)
    # Cartesian r = L^T x, so a fractional rotation R acts on Cartesian vectors as L^T R L^-T
    cartesian = lattice.T @ rotations @ np.linalg.inv(lattice.T)
    # image of every atom under every operation, compared with the atom itself modulo the lattice (in Angstrom)
    images = np.einsum("gij,nj->gni", rotations, fractional) + translations[:, None, :]
    offset = images - fractional[None, :, :]
    offset -= np.round(offset)
    distance = np.linalg.norm(offset @ lattice, axis=-1)  # (G, n)
    fixed = distance <= symprec * 1.5  # spglib's own tolerance, with room for rounding
    projectors = np.empty((n, 3, 3))
    for atom in range(n):
        group = cartesian[fixed[:, atom]]
        projectors[atom] = group.mean(axis=0) if len(group) else np.eye(3)
    return projectors


def forbidden_force(forces: np.ndarray, projectors: np.ndarray) -> np.ndarray:
    """Magnitude of the forbidden part ``|F - P F|`` of each force, ``forces (n, 3)``, ``projectors (n, 3, 3)``
    -> ``(n,)`` in the forces' units."""
    forces = np.asarray(forces, dtype=np.float64)
    if forces.shape != projectors.shape[:2] or forces.shape[-1:] != (3,):
        raise ValueError(
            f"forces {forces.shape} and projectors {projectors.shape} do not match: need (n, 3), (n, 3, 3)"
        )
    allowed = np.einsum("nij,nj->ni", projectors, forces)
    return np.linalg.norm(forces - allowed, axis=1)


def orbit_maxima(values: np.ndarray, representative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest of ``values (n,)`` over each orbit (``representative (n,)``: each atom's orbit's lowest atom,
    :class:`platonic.symmetry.Orbits`): ``(orbit representatives (m,), maxima (m,))``."""
    orbits, inverse = np.unique(representative, return_inverse=True)
    maxima = np.full(len(orbits), -np.inf)
    np.maximum.at(maxima, inverse, np.asarray(values, dtype=np.float64))
    return orbits, maxima
