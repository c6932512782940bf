"""Anchors given, not chosen: global atom indices into the flattened atom order of an MP-20 style CSV (the way Li &
Walsh publish theirs), mapped onto a structure store's atoms through each index's structure and site.

The flattened order of a CSV: its rows in file order, each row's CIF read by ASE (`platonic.structures.parse_cif`, as
``prepare`` reads it), each structure's atoms in ASE's order, concatenated. Global index g is then site
``g - first[row]`` of the row whose atoms hold it. A structure store keeps the same atoms in the same order but only of
the structures it accepted, so an index is mapped by ``(material_id, site)``, never by position: a rejected structure
shifts every later position. Only the standard library is imported at module level (config validation reads index
files from a bare Snakemake install).
"""

from __future__ import annotations

import hashlib
import logging
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["AtomOrder", "file_sha256", "flatten_order", "indices_sha256", "map_indices", "read_indices"]

log = logging.getLogger("platonic")

# problems listed in one error before the rest are counted
SHOWN = 10


def read_indices(source: str | Path | Sequence[int]) -> list[int]:
    """The global atom indices of ``source``, in its order: a sequence of integers, or the path of a text file with
    one integer per line (blank lines and ``#`` comments skipped); checked non-empty, non-negative and unique."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"the index file {path} does not exist")
        indices, places = [], []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                indices.append(int(text))
            except ValueError:
                raise ValueError(
                    f"{path}, line {number}: {text!r} is not an integer (one index per line; # starts a comment)"
                ) from None
            places.append(f"{path}, line {number}")
        name = str(path)
    else:
        try:
            indices = [operator.index(i) for i in source]
        except TypeError:
            raise ValueError(f"anchor indices must be integers, got {list(source)!r}") from None
        places = [f"item {i}" for i in range(len(indices))]
        name = "the list"
    if not indices:
        raise ValueError(f"{name} holds no indices")
    negative = [f"{places[i]}: {value}" for i, value in enumerate(indices) if value < 0]
    if negative:
        raise ValueError(f"anchor indices count atoms from 0; negative: {'; '.join(negative[:SHOWN])}")
    first: dict[int, int] = {}
    repeated = []
    for i, value in enumerate(indices):
        if value in first:
            repeated.append(f"{value} ({places[first[value]]} and {places[i]})")
        first.setdefault(value, i)
    if repeated:
        raise ValueError(f"each anchor atom is given once; repeated: {'; '.join(repeated[:SHOWN])}")
    return indices


def indices_sha256(indices: Sequence[int]) -> str:
    """sha256 of the index list written one integer per line (each line ending in a newline): the file's own sha256
    where it holds nothing else."""
    return hashlib.sha256("".join(f"{int(i)}\n" for i in indices).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class AtomOrder:
    """The flattened atom order of an MP-20 style CSV (``path``), read row by row as far as needed: each row's
    structure id (``ids``, its ``material_id``), atom ``counts (rows,)`` and the atomic numbers ``z (atoms,)`` of every
    atom read. ``n_rows`` rows in the file; ``unreadable``: ``(row, id, reason)`` of a row ASE cannot read, where the
    order stops being defined (reading stopped there)."""

    path: str
    ids: list[str]
    counts: np.ndarray
    z: np.ndarray
    n_rows: int
    unreadable: tuple[int, str, str] | None = None

    @property
    def n_atoms(self) -> int:
        """Atoms read (every atom of the file where every row was read)."""
        return int(self.counts.sum())

    @property
    def complete(self) -> bool:
        return len(self.ids) == self.n_rows and self.unreadable is None

    def locate(self, index: int) -> tuple[int, str, int]:
        """``(row, id, site)`` of global atom ``index`` (< ``n_atoms``)."""
        import numpy as np

        ends = np.cumsum(self.counts)
        row = int(np.searchsorted(ends, index, side="right"))
        return row, self.ids[row], int(index - (ends[row] - self.counts[row]))


def flatten_order(path: str | Path, until: int | None = None, progress: bool = True) -> AtomOrder:
    """The `AtomOrder` of the MP-20 style CSV ``path``: every row, or (``until``) the rows up to the one holding
    global atom ``until``. Reading stops at a row ASE cannot read. Progress is logged every 2,000 rows."""
    import numpy as np

    from platonic.structures import StructureError, mp20_rows, parse_cif

    if not Path(path).is_file():
        raise ValueError(f"the atom order CSV {path} does not exist")
    rows = list(mp20_rows(path))
    ids, counts, numbers = [], [], []
    unreadable = None
    n_read = 0
    for row, (structure_id, cif_text, _) in enumerate(rows):
        if until is not None and n_read > until:
            break
        try:
            atoms = parse_cif(cif_text)
        except StructureError as err:
            unreadable = (row, structure_id, str(err))
            break
        ids.append(structure_id)
        counts.append(len(atoms))
        numbers.append(atoms.get_atomic_numbers())
        n_read += len(atoms)
        if progress and (row + 1) % 2000 == 0:
            log.info("atom order of %s: %d of %d rows read (%d atoms)", path, row + 1, len(rows), n_read)
    z = np.concatenate(numbers).astype(np.int64) if numbers else np.zeros(0, np.int64)
    order = AtomOrder(str(path), ids, np.asarray(counts, np.int64), z, len(rows), unreadable)
    if progress:
        log.info("atom order of %s: %d of %d rows read, %d atoms", path, len(ids), len(rows), order.n_atoms)
    return order


def map_indices(
    indices: Sequence[int],
    order: AtomOrder,
    material_ids: np.ndarray,
    first_atom: np.ndarray,
    n_atoms: np.ndarray,
    atom_z: np.ndarray,
    rejected: dict[str, str] | None = None,
) -> np.ndarray:
    """The global atom indices ``(n,)`` of a structure store (per structure ``material_ids``, ``first_atom``,
    ``n_atoms (structures,)``; per atom ``atom_z (atoms,)``) of the atoms that ``indices (n,)`` name in ``order``, in
    their order. Raises ``ValueError`` listing each index that names no atom of the store, with its structure, site
    and why (``rejected``: ``{id: reason}`` of the structures the store left out)."""
    import numpy as np

    rejected = rejected or {}
    position = {str(m): s for s, m in enumerate(material_ids)}
    first_row: dict[str, int] = {}
    for row, structure_id in enumerate(order.ids):
        first_row.setdefault(structure_id, row)
    found, problems = [], []
    for index in indices:
        index = int(index)
        if index >= order.n_atoms:
            if order.unreadable is not None:
                row, structure_id, reason = order.unreadable
                problems.append(
                    f"index {index} lies at or past row {row} ({structure_id}) of {order.path}, which ASE cannot read"
                    f" ({reason}): the atom order is not defined from there on; repair that row's CIF"
                )
            else:
                problems.append(
                    f"index {index} is out of range: {order.path} holds {order.n_atoms} atoms (indices 0 to"
                    f" {order.n_atoms - 1}); the indices were made on another atom order"
                )
            continue
        row, structure_id, site = order.locate(index)
        where = f"index {index} is site {site} of {structure_id} (row {row} of {order.path})"
        structure = position.get(structure_id)
        if first_row[structure_id] != row:
            problems.append(
                f"{where}, a second row with the id of row {first_row[structure_id]}: the structure store keeps only"
                " the first row of an id; give an order whose ids are unique"
            )
        elif structure_id in rejected:
            problems.append(
                f"{where}, a structure the structure store rejected ({rejected[structure_id]}): it has no atoms in this"
                " study; leave the index out, or repair the structure"
            )
        elif structure is None:
            problems.append(
                f"{where}, which is not in the structure store (not among the structures read, or past their limit):"
                " compare the structures the indices were made for"
            )
        elif int(n_atoms[structure]) != int(order.counts[row]):
            problems.append(
                f"{where}, which has {int(order.counts[row])} atoms there but {int(n_atoms[structure])} in the"
                " structure store: two different structures share the id"
            )
        else:
            atom = int(first_atom[structure]) + site
            if int(atom_z[atom]) != int(order.z[index]):
                problems.append(
                    f"{where}: Z {int(order.z[index])} there, Z {int(atom_z[atom])} at that site in the structure"
                    " store: two different structures share the id"
                )
            found.append(atom)
    if problems:
        shown = "; ".join(problems[:SHOWN]) + (f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else "")
        raise ValueError(f"{len(problems)} of the {len(indices)} anchor indices name no atom of this study: {shown}")
    return np.asarray(found, dtype=np.int64)
