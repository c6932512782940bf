"""The anchor set as a file: what any model needs to enter a study's shared space, outside the study's run.

An anchor-set file is extxyz, one frame per structure that holds anchors. Each frame carries ``material_id`` (its
structure id in the study), the per-atom array ``anchor`` (the anchor's index ``k`` in the study's anchor order, -1
for the atoms that are not anchors), ``study_atom`` (the atom's global index in the study, -1 likewise) and
``sha256`` (of the frame's numbers, cell, positions and pbc as written). Every frame also holds the set's
provenance: ``reference_model``, ``method``, ``n``, ``seed``, ``threshold_init``, ``candidates``, ``atoms``,
``symprec``, the study's ``structure_set_hash``, its ``anchor_set_hash`` and ``anchor_structures_hash`` (the
structure-set hash of the frames themselves, which `platonic prepare` of the file reproduces). To enter the space a
model embeds the frames (``platonic prepare`` the file, ``platonic embed`` the store) and takes the anchor atoms'
rows (`anchor_rows`): ``platonic project EMBEDDING FILE OUT --anchor-embedding STORE``.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import ase
import ase.io
import numpy as np
import xarray as xr

__all__ = ["AnchorSet", "anchor_rows", "anchor_set_frames", "frame_sha256", "read_anchor_set", "write_anchor_set"]

SET_KEYS = ("reference_model", "method", "threshold_init", "seed", "candidates", "atoms", "symprec")
PREFIX = "sha256:"  # hashes are written with a prefix, so that no extxyz reader takes a hex string for a number


def frame_sha256(atoms: ase.Atoms) -> str:
    """sha256 of a frame's atomic numbers, cell, positions and pbc (``sha256:<hex>``)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(atoms.get_atomic_numbers(), dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(atoms.cell.array, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(atoms.get_positions(), dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(atoms.pbc, dtype=np.bool_).tobytes())
    return PREFIX + digest.hexdigest()


def anchor_set_frames(anchor_store: xr.Dataset, structure_store: xr.Dataset) -> list[ase.Atoms]:
    """The frames of an anchor-set file: each structure of ``structure_store`` that holds an anchor of
    ``anchor_store``, in the study's structure order, with the per-atom arrays and info described in the module."""
    from platonic.store import dataset_to_atoms

    if anchor_store.attrs["structure_set_hash"] != structure_store.attrs["structure_set_hash"]:
        raise ValueError("the anchor store was chosen on another structure set than the structure store given")
    anchor_atom = anchor_store["anchor_atom"].values.astype(np.int64)
    structure_index = structure_store["structure_index"].values[anchor_atom]
    first_atom = structure_store["first_atom"].values
    atoms, ids = dataset_to_atoms(structure_store)
    provenance = {key: anchor_store.attrs[key] for key in SET_KEYS if key in anchor_store.attrs}
    frames = []
    for s in np.unique(structure_index):
        frame = atoms[s].copy()
        frame.info.clear()
        anchor = np.full(len(frame), -1, dtype=np.int64)
        study_atom = np.full(len(frame), -1, dtype=np.int64)
        for k in np.flatnonzero(structure_index == s):
            anchor[anchor_atom[k] - first_atom[s]] = k
            study_atom[anchor_atom[k] - first_atom[s]] = anchor_atom[k]
        frame.arrays["anchor"] = anchor
        frame.arrays["study_atom"] = study_atom
        frame.info.update(
            material_id=str(ids[s]),
            n=len(anchor_atom),
            structure_set_hash=PREFIX + anchor_store.attrs["structure_set_hash"],
            anchor_set_hash=PREFIX + anchor_store.attrs["anchor_set_hash"],
            **provenance,
        )
        frames.append(frame)
    return frames


def write_anchor_set(frames: list[ase.Atoms], path: str | Path) -> Path:
    """Write ``frames`` (`anchor_set_frames`) to the extxyz file ``path`` with each frame's ``sha256`` and the set's
    ``anchor_structures_hash``, both of the frames as the file holds them (positions rounded as extxyz writes)."""
    from platonic.structures import structure_set_hash

    buffer = io.StringIO()
    ase.io.write(buffer, frames, format="extxyz")
    written = list(ase.io.iread(io.StringIO(buffer.getvalue()), index=":", format="extxyz"))
    ids = [str(frame.info["material_id"]) for frame in frames]
    structures_hash = PREFIX + structure_set_hash(written, ids)
    for frame, as_written in zip(frames, written, strict=True):
        frame.info.update(sha256=frame_sha256(as_written), anchor_structures_hash=structures_hash)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    ase.io.write(partial, frames, format="extxyz")
    partial.rename(path)
    return path


@dataclass(frozen=True)
class AnchorSet:
    """An anchor-set file read back: per anchor ``(K,)`` its structure id, site (atom index in its frame), atomic
    number and global atom index in the study; the set's provenance ``attrs`` (hashes without their prefix)."""

    structure_id: np.ndarray
    site: np.ndarray
    Z: np.ndarray
    study_atom: np.ndarray
    attrs: dict

    def __len__(self) -> int:
        return len(self.site)


def read_anchor_set(path: str | Path) -> AnchorSet:
    """Read and check an anchor-set file: every frame's checksum, one set of provenance, anchors 0 .. n-1 each once.
    Errors name the file, the frame and what to do."""
    from platonic.structures import structure_set_hash

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"anchor-set file {path} does not exist; write it with `platonic anchor-set`")
    try:
        frames = list(ase.io.iread(path, index=":", format="extxyz"))
    except Exception as err:
        raise ValueError(f"cannot read anchor-set file {path}: {type(err).__name__}: {err}") from err
    if not frames or any("anchor" not in frame.arrays for frame in frames):
        raise ValueError(f"{path} is not an anchor-set file: a frame lacks the per-atom `anchor` array")
    ids = [str(frame.info.get("material_id")) for frame in frames]
    for number, frame in enumerate(frames):
        if frame.info.get("sha256") != frame_sha256(frame):
            raise ValueError(
                f"frame {number} ({ids[number]}) of {path} does not match its sha256: the structure was changed"
                " after export; export the anchor set again from the study"
            )
    first = frames[0].info
    if first.get("anchor_structures_hash") != PREFIX + structure_set_hash(frames, ids):
        raise ValueError(f"the frames of {path} do not make up the exported set (frames added, removed or reordered)")
    structure_id, site, z, study_atom, anchor = [], [], [], [], []
    for frame, sid in zip(frames, ids, strict=True):
        local = np.flatnonzero(frame.arrays["anchor"] >= 0)
        anchor.extend(frame.arrays["anchor"][local].tolist())
        structure_id.extend([sid] * len(local))
        site.extend(local.tolist())
        z.extend(frame.numbers[local].tolist())
        study_atom.extend(frame.arrays["study_atom"][local].tolist())
    n = int(first["n"])
    if sorted(anchor) != list(range(n)):
        raise ValueError(f"{path} should hold the anchors 0 .. {n - 1} once each; it holds {len(anchor)} anchors")
    order = np.argsort(anchor)
    attrs = {key: first[key] for key in (*SET_KEYS, "n") if key in first}
    for key in ("structure_set_hash", "anchor_set_hash", "anchor_structures_hash"):
        attrs[key] = str(first[key]).removeprefix(PREFIX)
    return AnchorSet(
        structure_id=np.array(structure_id, dtype=object)[order],
        site=np.array(site, dtype=np.int64)[order],
        Z=np.array(z, dtype=np.int64)[order],
        study_atom=np.array(study_atom, dtype=np.int64)[order],
        attrs=attrs,
    )


def anchor_rows(anchor_set: AnchorSet, structure_id: np.ndarray, site: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Row of each anchor ``(K,)`` in a store whose atoms are labelled ``structure_id``, ``site`` and ``Z`` ``(N,)``
    (the study's own embedding store, or one of the anchor-set frames); an anchor the store lacks, or whose element
    differs, raises naming it."""
    where = {(str(s), int(i)): row for row, (s, i) in enumerate(zip(structure_id, site, strict=True))}
    rows, missing = [], []
    for k, (s, i, z) in enumerate(zip(anchor_set.structure_id, anchor_set.site, anchor_set.Z, strict=True)):
        row = where.get((str(s), int(i)))
        if row is None or int(Z[row]) != int(z):
            missing.append(f"anchor {k} (site {int(i)} of {s})")
        rows.append(-1 if row is None else row)
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ValueError(f"the store lacks {len(missing)} anchor atoms of the anchor set: {shown}")
    return np.array(rows, dtype=np.int64)
