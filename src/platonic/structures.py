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

# Per-structure numeric labels carried through from MP-20 CSVs (CDVAE's format).
MP20_LABELS = ("formation_energy_per_atom", "band_gap", "e_above_hull", "spacegroup.number")

# Atoms closer than this (Angstrom) mean a broken structure, not chemistry.
MIN_DISTANCE = 0.5


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


def read_structures(path: str | Path, limit: int | None = None) -> StructureSet:
    """Read structures from an MP-20 style CSV (``cif`` column), an extxyz file or a folder of CIFs.

    Entries that cannot be parsed or fail validation are recorded in ``rejected``, not raised;
    a file that cannot be read at all raises ``StructureError``.
    """
    path = Path(path)
    if not path.exists():
        raise StructureError(f"structure file {path} does not exist; check `dataset.path` in the config")
    if path.is_dir():
        entries = [(p.stem, p.read_text(), {}) for p in sorted(path.glob("*.cif"))]
        if not entries:
            raise StructureError(f"folder {path} holds no *.cif files")
        parsed = _parse_cif_entries(entries, limit)
    elif path.suffix.lower() == ".csv":
        parsed = _parse_cif_entries(_read_mp20_csv(path), limit)
    elif path.suffix.lower() in {".xyz", ".extxyz"}:
        parsed = _read_extxyz(path, limit)
    else:
        raise StructureError(
            f"cannot read {path}: expected an MP-20 CSV (.csv), an extxyz file (.xyz/.extxyz) or a folder of CIFs"
        )
    if not parsed.atoms:
        reasons = "; ".join(f"{i}: {r}" for i, r in parsed.rejected[:5])
        raise StructureError(f"no usable structures in {path} ({reasons})")
    return parsed


def _read_mp20_csv(path: Path):
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


def _parse_cif_entries(entries, limit: int | None) -> StructureSet:
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
            atoms = ase.io.read(io.StringIO(cif_text), format="cif")
            validate_atoms(atoms)
        except Exception as err:  # any parser failure is recorded, with its message
            result.rejected.append((structure_id, f"{type(err).__name__}: {err}".strip()))
            continue
        result.atoms.append(atoms)
        result.ids.append(structure_id)
        for name in MP20_LABELS:
            result.labels[name].append(labels.get(name, float("nan")))
    result.labels = {k: np.asarray(v, dtype=float) for k, v in result.labels.items()}
    if all(np.isnan(v).all() for v in result.labels.values()):
        result.labels = {}
    return result


def _read_extxyz(path: Path, limit: int | None) -> StructureSet:
    try:
        frames = ase.io.read(path, index=":" if limit is None else f":{limit}")
    except Exception as err:
        raise StructureError(f"cannot read extxyz file {path}: {err}") from err
    result = StructureSet(atoms=[], ids=[])
    for number, atoms in enumerate(frames):
        structure_id = str(atoms.info.get("material_id", atoms.info.get("id", f"frame-{number}")))
        try:
            validate_atoms(atoms)
        except StructureError as err:
            result.rejected.append((structure_id, str(err)))
            continue
        result.atoms.append(atoms)
        result.ids.append(structure_id)
    return result


def validate_atoms(atoms: ase.Atoms) -> None:
    """Raise ``StructureError`` for structures no MLIP should be asked to embed."""
    if len(atoms) == 0:
        raise StructureError("structure has no atoms")
    numbers = atoms.get_atomic_numbers()
    if (numbers < 1).any() or (numbers > 118).any():
        raise StructureError(f"unknown atomic numbers {sorted(set(numbers[(numbers < 1) | (numbers > 118)]))}")
    if not np.isfinite(atoms.get_positions()).all():
        raise StructureError("non-finite atomic positions")
    if atoms.pbc.any() and abs(atoms.cell.volume) < 1e-6:
        raise StructureError("periodic structure with a degenerate (zero-volume) cell")
    if len(atoms) > 1:
        distances = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
        np.fill_diagonal(distances, np.inf)
        closest = distances.min()
        if closest < MIN_DISTANCE:
            raise StructureError(f"atoms overlap (closest distance {closest:.3f} A < {MIN_DISTANCE} A)")


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
