"""Crystallographic orbits (symmetry-equivalent atoms) with spglib, and how far a model breaks them.

Atoms of one orbit are images of each other under a symmetry operation of their own crystal: an
invariant model gives them the same embedding, so they are one environment, not independent evidence.

``symprec`` is spglib's Cartesian distance tolerance in Angstrom. The default, 1e-3 A, was chosen on
the bundled MP-20 sample (847 structures, 9,047 atoms): 4,501 orbits at spglib's own default 1e-5 A,
4,355 at 1e-4, 4,242 at 1e-3, 4,151 at 3e-3, 4,102 at 1e-2 (pymatgen's default), 4,044 at 0.1.
Embeddings that agree to ~1e-6 in every model give ~4,251 distinct environments, closest to 1e-3.
With CHGNet 0.3.0 on the same atoms, ``symmetry_breaking`` (default threshold) flags no orbit at
1e-3 A or tighter (largest relative spread 0.0025), but 7 orbits at 1e-2 and 40 at 0.1: tighter
values split atoms that sit less than 1e-3 A off their symmetric sites, which the models cannot
tell apart; looser ones merge atoms the models see as different environments.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import ase
import numpy as np
from scipy import sparse

__all__ = [
    "DEFAULT_SYMPREC",
    "DEFAULT_BREAKING_THRESHOLD",
    "Orbits",
    "StructureSetOrbits",
    "SymmetryBreaking",
    "crystal_orbits",
    "structure_set_orbits",
    "symmetry_breaking",
]

DEFAULT_SYMPREC = 1e-3

# An orbit whose copies spread by more than this fraction of the typical distance between distinct
# neighbouring environments is flagged: far above float32 noise (~1e-6), far below a new environment.
DEFAULT_BREAKING_THRESHOLD = 0.01


@dataclass(frozen=True)
class Orbits:
    """Orbits of one structure: per atom (n,) the local index of its orbit's lowest-index atom and the
    orbit's size in this cell; the space-group number (0 when not analysed) and why not ("" when fine)."""

    representative: np.ndarray
    multiplicity: np.ndarray
    spacegroup: int
    reason: str = ""

    @property
    def n_orbits(self) -> int:
        return int(np.unique(self.representative).size)


def crystal_orbits(atoms: ase.Atoms, symprec: float = DEFAULT_SYMPREC) -> Orbits:
    """Crystallographic orbits of ``atoms`` from spglib's ``equivalent_atoms`` at ``symprec`` (Angstrom).

    A structure spglib cannot analyse (not periodic along all three axes, a degenerate cell, spglib
    failing or finding no symmetry dataset) gets one orbit per atom, space group 0 and a reason.
    Multiplicity counts the orbit's atoms in the given cell (a supercell multiplies it).
    """
    import spglib  # here, not at the top: the model envs import the store layer but never prepare

    if not symprec > 0:
        raise ValueError(f"symprec must be a positive distance in Angstrom, got {symprec!r}")
    n = len(atoms)
    reason = _unanalysable(atoms)
    dataset = None
    if not reason:
        cell = (atoms.cell.array, atoms.get_scaled_positions(wrap=True), atoms.get_atomic_numbers())
        try:
            with warnings.catch_warnings():  # spglib 2.x warns about its old error handling on failure
                warnings.simplefilter("ignore", DeprecationWarning)
                dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
        except Exception as err:  # spglib.SpglibError, or anything its C layer passes up
            reason = f"spglib failed at symprec={symprec:g} A: {type(err).__name__}: {err}".strip()
        else:
            if dataset is None:
                reason = f"spglib found no symmetry dataset at symprec={symprec:g} A (atoms closer than symprec?)"
    if reason:
        return Orbits(np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64), 0, reason)
    labels = np.asarray(dataset.equivalent_atoms, dtype=np.int64)
    # the lowest index of each orbit, whichever member spglib named
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    lowest = np.full(counts.size, n, dtype=np.int64)
    np.minimum.at(lowest, inverse, np.arange(n, dtype=np.int64))
    return Orbits(lowest[inverse], counts[inverse].astype(np.int64), int(dataset.number), "")


def _unanalysable(atoms: ase.Atoms) -> str:
    if len(atoms) == 0:
        return "no atoms"
    if not atoms.pbc.all():
        return f"not periodic along all three axes (pbc={atoms.pbc.tolist()}); space groups need a 3D lattice"
    if abs(atoms.cell.volume) < 1e-6:
        return "degenerate (zero-volume) cell"
    return ""


@dataclass(frozen=True)
class StructureSetOrbits:
    """Orbits of a structure set in its global atom order: per atom (n_atoms,) the global index of the
    orbit's representative (its lowest-index atom) and the multiplicity; per structure (n_structures,)
    the space-group number (0 when not analysed) and the reason ("" when fine)."""

    orbit: np.ndarray
    multiplicity: np.ndarray
    spacegroup: np.ndarray
    reasons: list[str]

    @property
    def n_orbits(self) -> int:
        return int(np.unique(self.orbit).size)


def structure_set_orbits(structures: list[ase.Atoms], symprec: float = DEFAULT_SYMPREC) -> StructureSetOrbits:
    """``crystal_orbits`` for each structure, with representatives offset to global atom indices."""
    parts = [crystal_orbits(atoms, symprec) for atoms in structures]
    counts = np.array([len(atoms) for atoms in structures], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    empty = np.zeros(0, dtype=np.int64)
    return StructureSetOrbits(
        orbit=np.concatenate([empty, *(p.representative + s for p, s in zip(parts, starts, strict=True))]),
        multiplicity=np.concatenate([empty, *(p.multiplicity for p in parts)]),
        spacegroup=np.array([p.spacegroup for p in parts], dtype=np.int64),
        reasons=[p.reason for p in parts],
    )


@dataclass(frozen=True)
class SymmetryBreaking:
    """How far a model's embeddings of one orbit's copies spread, per orbit, structure and element.

    Per orbit (n_orbits,): ``orbit`` (its label), ``structure``, ``Z``, ``multiplicity``, ``spread``
    (largest distance of a copy to the orbit mean, embedding units), ``relative`` (spread / ``scale``)
    and ``flagged`` (relative > ``threshold``). Per structure (n_structures,): ``structures``,
    ``structure_max`` (largest relative spread) and ``structure_flagged`` (flagged orbits); the same
    per element (n_elements,): ``elements``, ``element_median`` and ``element_max`` over orbits with
    more than one copy (NaN when an element has none), ``element_flagged``.
    """

    orbit: np.ndarray
    structure: np.ndarray
    Z: np.ndarray
    multiplicity: np.ndarray
    spread: np.ndarray
    relative: np.ndarray
    flagged: np.ndarray
    scale: float
    threshold: float
    structures: np.ndarray
    structure_max: np.ndarray
    structure_flagged: np.ndarray
    elements: np.ndarray
    element_median: np.ndarray
    element_max: np.ndarray
    element_flagged: np.ndarray


def symmetry_breaking(
    X: np.ndarray,
    orbit: np.ndarray,
    structure: np.ndarray,
    Z: np.ndarray,
    threshold: float = DEFAULT_BREAKING_THRESHOLD,
    scale: float | None = None,
    n_queries: int = 2048,
    random_state: int = 0,
) -> SymmetryBreaking:
    """Spread of the embeddings ``X`` (n_atoms, d) within each orbit, relative to the model's scale.

    ``orbit``, ``structure`` and ``Z`` (n_atoms,) label each atom's orbit, structure and element; an
    orbit must lie in one structure and one element. ``scale`` (default: estimated) is the median,
    over up to ``n_queries`` orbits drawn with ``random_state``, of the distance from an orbit's mean
    embedding to the nearest other orbit's mean, skipping means that coincide with it (within 1e-6 of
    the typical embedding norm: duplicate environments across structures, or a model such as element
    identity that cannot tell them apart). The median ignores the rest of such ties and outliers.
    """
    X = np.asarray(X, dtype=np.float64)
    orbit, structure, Z = (np.asarray(a) for a in (orbit, structure, Z))
    if X.ndim != 2 or not (orbit.shape == structure.shape == Z.shape == (X.shape[0],)):
        raise ValueError(
            f"X must be (n_atoms, d) and orbit, structure, Z (n_atoms,); got {X.shape}, {orbit.shape}, "
            f"{structure.shape}, {Z.shape}"
        )
    if not np.isfinite(X).all():
        raise ValueError("X holds non-finite embeddings; exclude those atoms first")
    labels, first, inverse, multiplicity = np.unique(
        orbit, return_index=True, return_inverse=True, return_counts=True
    )  # first: each orbit's first atom
    n_orbits = labels.size
    for name, values in (("structure", structure), ("Z", Z)):
        if (values != values[first][inverse]).any():
            raise ValueError(f"an orbit spans more than one {name}: orbits are within one crystal and one element")
    members = sparse.csr_matrix((np.ones(X.shape[0]), (inverse, np.arange(X.shape[0]))), shape=(n_orbits, X.shape[0]))
    means = (members @ X) / multiplicity[:, None]
    distance = np.linalg.norm(X - means[inverse], axis=1)
    spread = np.zeros(n_orbits)
    np.maximum.at(spread, inverse, distance)
    if scale is None:
        scale = _neighbour_scale(means, n_queries, random_state)
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r} (all orbit means coincide?)")
    relative = spread / scale
    flagged = relative > threshold
    orbit_structure, orbit_z = structure[first], Z[first]
    structures, s_inverse = np.unique(orbit_structure, return_inverse=True)
    structure_max = np.zeros(structures.size)
    np.maximum.at(structure_max, s_inverse, relative)
    elements, z_inverse = np.unique(orbit_z, return_inverse=True)
    copied = multiplicity > 1
    element_median = np.full(elements.size, np.nan)
    element_max = np.full(elements.size, np.nan)
    for e in range(elements.size):
        values = relative[(z_inverse == e) & copied]
        if values.size:
            element_median[e], element_max[e] = np.median(values), values.max()
    return SymmetryBreaking(
        orbit=labels,
        structure=orbit_structure,
        Z=orbit_z,
        multiplicity=multiplicity.astype(np.int64),
        spread=spread,
        relative=relative,
        flagged=flagged,
        scale=float(scale),
        threshold=float(threshold),
        structures=structures,
        structure_max=structure_max,
        structure_flagged=np.bincount(s_inverse, weights=flagged, minlength=structures.size).astype(np.int64),
        elements=elements,
        element_median=element_median,
        element_max=element_max,
        element_flagged=np.bincount(z_inverse, weights=flagged, minlength=elements.size).astype(np.int64),
    )


def _neighbour_scale(means: np.ndarray, n_queries: int, random_state: int, chunk: int = 64) -> float:
    """Median distance from (a sample of) the orbit means (k, d) to their nearest distinct other mean."""
    k = means.shape[0]
    if k < 2:
        raise ValueError("the scale needs at least two orbits; pass `scale` explicitly")
    rng = np.random.default_rng(random_state)
    queries = np.sort(rng.choice(k, size=min(n_queries, k), replace=False))
    squared = np.einsum("ij,ij->i", means, means)
    tie = 1e-6 * np.sqrt(np.median(squared))
    nearest = np.full(queries.size, np.inf)
    for start in range(0, queries.size, chunk):
        rows = queries[start : start + chunk]
        d2 = squared[rows, None] + squared[None, :] - 2.0 * means[rows] @ means.T
        d = np.sqrt(np.clip(d2, 0.0, None))
        d[np.arange(rows.size), rows] = np.inf  # an orbit is not its own neighbour
        d[d <= tie] = np.inf
        nearest[start : start + chunk] = d.min(axis=1)
    nearest = nearest[np.isfinite(nearest)]
    if nearest.size == 0:
        raise ValueError("every orbit mean coincides with another; the model tells no environments apart")
    return float(np.median(nearest))
