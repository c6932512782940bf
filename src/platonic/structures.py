"""Read structure sets (MP-20 CSV, extxyz, CIF folders) into ``ase.Atoms`` and validate them.

The structure set defines the global atom order used by every store downstream.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import ase
import ase.io
import numpy as np
from ase.neighborlist import neighbor_list

# Per-structure numeric labels carried through from MP-20 CSVs (CDVAE's format).
MP20_LABELS = ("formation_energy_per_atom", "band_gap", "e_above_hull", "spacegroup.number")

# Atoms closer than this (Angstrom) mean a broken structure, not chemistry.
MIN_DISTANCE = 0.5

# Cell volume per atom (Angstrom^3) above which a periodic structure is refused: far above any
# bulk crystal (MP-20 stays below 100), it means vacuum, a unit error or a molecule in a big box;
# cell-list neighbour searches allocate memory in proportion to the cell volume.
MAX_VOLUME_PER_ATOM = 500.0


class StructureError(ValueError):
    """A structure file or entry that cannot be used, with the reason."""


@dataclass
class StructureSet:
    """Structures plus their ids, per-structure labels and any rejected entries."""

    atoms: list[ase.Atoms]
    ids: list[str]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)

    def __len__(self) -> int:
        return len(self.atoms)

    @property
    def n_atoms(self) -> int:
        return sum(len(a) for a in self.atoms)


def read_structures(
    path: str | Path, limit: int | None = None, max_volume_per_atom: float | None = MAX_VOLUME_PER_ATOM
) -> StructureSet:
    """Read structures from an MP-20 style CSV (``cif`` column), an extxyz file, a CIF or a folder of CIFs.

    Entries that cannot be parsed or fail validation (``validate_atoms``) are recorded in
    ``rejected`` with their reason, not raised; a file that is missing, empty or unreadable as a
    whole, or that leaves no usable structure, raises ``StructureError`` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise StructureError(f"structure file {path} does not exist; check `dataset.path` in the config")
    if path.is_file() and path.stat().st_size == 0:
        raise StructureError(f"structure file {path} is empty; check `dataset.path` in the config")
    check = {"max_volume_per_atom": max_volume_per_atom}
    if path.is_dir():
        entries = [(p.stem, p.read_text(errors="replace"), {}) for p in sorted(path.glob("*.cif"))]
        if not entries:
            raise StructureError(f"folder {path} holds no *.cif files")
        parsed = _parse_cif_entries(entries, limit, check)
    elif path.suffix.lower() == ".cif":
        parsed = _parse_cif_entries([(path.stem, path.read_text(errors="replace"), {})], limit, check)
    elif path.suffix.lower() == ".csv":
        parsed = _parse_cif_entries(mp20_rows(path), limit, check)
    elif path.suffix.lower() in {".xyz", ".extxyz"}:
        parsed = _read_extxyz(path, limit, check)
    else:
        raise StructureError(
            f"cannot read {path}: expected an MP-20 CSV (.csv), an extxyz file (.xyz/.extxyz), "
            "a CIF or a folder of CIFs"
        )
    if not parsed.atoms:
        reasons = "; ".join(f"{i}: {r}" for i, r in parsed.rejected[:5])
        raise StructureError(f"no usable structures in {path}: every entry was rejected ({reasons})")
    return parsed


def mp20_rows(path: str | Path):
    """``(structure_id, cif text, labels)`` of each row of an MP-20 style CSV, in file order; the id is the row's
    ``material_id``, or ``row-<n>`` (from 0) where the CSV has no such column."""
    path = Path(path)
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "cif" not in reader.fieldnames:
                raise StructureError(
                    f"{path} has no `cif` column; expected MP-20/CDVAE CSV columns "
                    "(material_id, cif, formation_energy_per_atom, ...)"
                )
            id_column = "material_id" if "material_id" in reader.fieldnames else None
            rows = list(reader)
    except UnicodeDecodeError as err:
        raise StructureError(f"{path} is not a text CSV file: {err}") from err
    for row_number, row in enumerate(rows):
        structure_id = row[id_column] if id_column else f"row-{row_number}"
        labels = {name: _to_float(row.get(name)) for name in MP20_LABELS}
        yield structure_id, row["cif"], labels


def _to_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _parse_cif_entries(entries, limit: int | None, check: dict) -> StructureSet:
    result = StructureSet(atoms=[], ids=[], labels={name: [] for name in MP20_LABELS})
    seen: set[str] = set()
    for structure_id, cif_text, labels in entries:
        if limit is not None and len(result.atoms) >= limit:
            break
        if structure_id in seen:
            result.rejected.append((structure_id, "duplicate structure id"))
            continue
        seen.add(structure_id)
        try:
            atoms = parse_cif(cif_text)
            validate_atoms(atoms, **check)
        except StructureError as err:
            result.rejected.append((structure_id, str(err)))
            continue
        result.atoms.append(atoms)
        result.ids.append(structure_id)
        for name in MP20_LABELS:
            result.labels[name].append(labels.get(name, float("nan")))
    result.labels = {k: np.asarray(v, dtype=float) for k, v in result.labels.items()}
    if all(np.isnan(v).all() for v in result.labels.values()):
        result.labels = {}
    return result


def parse_cif(cif_text: str) -> ase.Atoms:
    """One CIF entry as ``ase.Atoms``; ASE's parser errors (often bare) become a ``StructureError``."""
    if not cif_text.strip():
        raise StructureError("empty CIF")
    try:
        return ase.io.read(io.StringIO(cif_text), format="cif")
    except Exception as err:  # ASE raises anything from StopIteration to ValueError on bad CIFs
        detail = f"{type(err).__name__}: {err}".strip().rstrip(":")
        raise StructureError(f"unreadable CIF ({detail}); check that it has a cell and an atom-site loop") from err


def _read_extxyz(path: Path, limit: int | None, check: dict) -> StructureSet:
    try:
        frames = list(ase.io.iread(path, index=":", format="extxyz"))
    except Exception as err:
        raise StructureError(f"cannot read extxyz file {path}: {type(err).__name__}: {err}") from err
    result = StructureSet(atoms=[], ids=[])
    seen: set[str] = set()
    for number, atoms in enumerate(frames):
        if limit is not None and len(result.atoms) >= limit:
            break
        structure_id = str(atoms.info.get("material_id", atoms.info.get("id", f"frame-{number}")))
        if structure_id in seen:
            result.rejected.append((structure_id, "duplicate structure id"))
            continue
        seen.add(structure_id)
        try:
            validate_atoms(atoms, **check)
        except StructureError as err:
            result.rejected.append((structure_id, str(err)))
            continue
        result.atoms.append(atoms)
        result.ids.append(structure_id)
    return result


def validate_atoms(atoms: ase.Atoms, max_volume_per_atom: float | None = MAX_VOLUME_PER_ATOM) -> None:
    """Raise ``StructureError`` for structures no MLIP should be asked to embed.

    Refused: no atoms, unknown or non-finite entries, partial occupancy (ASE keeps one species per
    disordered site), a degenerate or huge periodic cell (``max_volume_per_atom``, Angstrom^3;
    ``None`` turns the check off) and atoms closer than ``MIN_DISTANCE``, periodic images included.
    """
    if len(atoms) == 0:
        raise StructureError("structure has no atoms")
    numbers = atoms.get_atomic_numbers()
    if (numbers < 1).any() or (numbers > 118).any():
        raise StructureError(f"unknown atomic numbers {sorted(set(numbers[(numbers < 1) | (numbers > 118)]))}")
    partial = _partially_occupied_sites(atoms)
    if partial:
        raise StructureError(
            f"partial occupancy / disorder at site(s) {', '.join(partial[:5])}: an MLIP needs one species "
            "per site; order the structure first (e.g. pymatgen's OrderDisorderedStructureTransformation)"
        )
    if not np.isfinite(atoms.get_positions()).all() or not np.isfinite(atoms.cell.array).all():
        raise StructureError("non-finite atomic positions or cell")
    if atoms.pbc.any():
        volume = abs(atoms.cell.volume)
        if volume < 1e-6:
            raise StructureError("periodic structure with a degenerate (zero-volume) cell")
        if max_volume_per_atom is not None and volume / len(atoms) > max_volume_per_atom:
            raise StructureError(
                f"cell too large: {volume / len(atoms):.0f} A^3 per atom > {max_volume_per_atom:g} "
                "(dataset.max_volume_per_atom); a vacuum-padded or mis-scaled cell"
            )
    # a neighbour list (not all pairs) also sees an atom next to its own periodic image
    closest = neighbor_list("d", atoms, MIN_DISTANCE)
    if len(closest):
        raise StructureError(
            f"atoms overlap (closest distance {closest.min():.3f} A < {MIN_DISTANCE} A, periodic images included)"
        )


def _partially_occupied_sites(atoms: ase.Atoms) -> list[str]:
    """Sites whose CIF occupancies (ASE's ``info["occupancy"]``: site kind -> {symbol: occupancy})
    mix species or do not sum to one, as ``"kind (Fe 0.5 + Co 0.5)"``."""
    occupancy = atoms.info.get("occupancy") or {}
    return [
        f"{site} ({' + '.join(f'{symbol} {value:g}' for symbol, value in species.items())})"
        for site, species in occupancy.items()
        if len(species) > 1 or abs(sum(species.values()) - 1.0) > 1e-3
    ]


def structure_set_hash(atoms: list[ase.Atoms], ids: list[str]) -> str:
    """sha256 over ids, species, cells and positions: equal hashes mean identical inputs to every model."""
    digest = hashlib.sha256()
    for structure_id, structure in zip(ids, atoms, strict=True):
        digest.update(structure_id.encode())
        digest.update(np.ascontiguousarray(structure.get_atomic_numbers(), dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(structure.cell.array, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(structure.get_positions(), dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(structure.pbc, dtype=np.bool_).tobytes())
    return digest.hexdigest()
