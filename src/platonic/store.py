"""Zarr stores as xarray Datasets: atomic writes, the structure store and provenance.

Every store is written under a temporary name and renamed when complete, and carries
``attrs["complete"] = True``; ``open_store`` refuses anything else. Its metadata is consolidated (one ``zarr.json``
at the top describes every array), so ``xr.open_zarr`` reads the store from that file alone and opens it silently:
it neither lists the folder nor meets the ``.snakemake_timestamp`` marker Snakemake leaves in a ``directory()``
output after the job (Snakemake offers no way to leave the marker out, and the job ends before it is written).

The embedding store's layout, with one ``embedding_layer_<k>`` variable per layer for a model entry with ``layers``,
is described in `platonic.embedding` (`embedding_dataset`, `layer_embedding`).
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from platonic import __version__

if TYPE_CHECKING:  # ase, the structure readers and spglib load only where structures are (a second per job)
    import ase

    from platonic.structures import StructureSet

# Rows per Zarr chunk along `atom`: 16k float32 x 128 features is 8 MiB, a comfortable dask task.
ATOM_CHUNK = 16384


class StoreError(RuntimeError):
    """A store that is missing, incomplete, of another kind than expected or inconsistent with the others.

    ``paths`` are the stores it is about, so that the command line can name the arguments that gave them."""

    def __init__(self, message: str, *paths: str | Path):
        super().__init__(message)
        self.paths = tuple(str(p) for p in paths)
        self.arguments = tuple(dict.fromkeys(p.argument for p in paths if getattr(p, "argument", None)))


class GivenPath(str):
    """A path as given on the command line, knowing the argument that gave it (``--anchors``): the errors about
    its store name that argument, even where one path was given to two arguments."""

    def __new__(cls, value: str, argument: str):
        path = super().__new__(cls, value)
        path.argument = argument
        return path

    def __reduce__(self):  # a copy (an attribute of a store written from it, a pickle) is the plain string
        return str, (str(self),)


# what each kind of store is, and the stage that writes it, for the errors of a store of another kind
KINDS = {
    "structures": ("a structure store", "prepare"),
    "embedding": ("an embedding store", "embed"),
    "anchors": ("an anchor store", "anchors"),
    "projection": ("a projection store", "project"),
    "similarity": ("a similarity store", "gather"),
    "model summary": ("a model summary", "summarise"),
    "pair result": ("a pair result", "compare-pair"),
}


@contextlib.contextmanager
def atomic_directory(path: str | Path):
    """A temporary sibling of the directory ``path`` to write into; renamed to ``path`` (replacing it) when the
    block completes, removed when it fails, so a killed write never leaves a store that looks finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_store(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to ``path`` atomically: temporary sibling first, rename when complete."""
    ds = ds.copy()
    for name, var in ds.variables.items():
        if var.dtype.kind == "U":  # fixed-width unicode has no Zarr v3 spec; variable-length strings do
            ds[name] = var.astype(object)
    ds.attrs["complete"] = True
    ds.attrs.setdefault("platonic_version", __version__)
    encoding = {}
    for name, var in ds.variables.items():
        if "atom" in var.dims and var.ndim >= 1:
            encoding[name] = {"chunks": tuple(min(ATOM_CHUNK, s) if d == "atom" else s for d, s in var.sizes.items())}
    with atomic_directory(path) as tmp, warnings.catch_warnings():
        # zarr notes that consolidated metadata is not (yet) in the Zarr v3 specification; zarr and xarray read it
        warnings.simplefilter("ignore", category=UserWarning)
        ds.to_zarr(tmp, mode="w", consolidated=True, encoding=encoding)
    return Path(path)


def consolidate(path: str | Path) -> None:
    """Write the consolidated metadata of the Zarr hierarchy at ``path`` (every group and array under it), so that
    readers open it from its top ``zarr.json`` alone (see the module docstring)."""
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # as in `write_store`
        zarr.consolidate_metadata(str(path))


def open_store(path: str | Path, dask: bool = True, kind: str | tuple[str, ...] | None = None) -> xr.Dataset:
    """Open a finished store lazily (dask-backed; ``dask=False``: xarray's own lazy arrays, which read only what is
    indexed and spare a small job dask's start-up); raise ``StoreError`` if it is missing, not a store, incomplete
    or (with ``kind``, one of ``KINDS`` or several) of another kind. A store without a ``kind`` attribute (written
    before stores carried one) is taken as it is."""
    given, path = path, Path(path)
    if not path.exists():
        raise StoreError(f"store {path} does not exist; {_writer(kind)}", given)
    try:
        with warnings.catch_warnings():
            # a store written before metadata was consolidated is read from its folder listing, where zarr meets
            # Snakemake's `.snakemake_timestamp` marker; both notes are about speed and that marker, not the data
            warnings.filterwarnings("ignore", message=".*snakemake_timestamp")
            warnings.filterwarnings("ignore", message="Failed to open Zarr store with consolidated metadata")
            ds = xr.open_zarr(path, **({} if dask else {"chunks": None}))
    except (OSError, ValueError, KeyError) as err:  # a file, an empty folder, a Zarr group of other arrays
        problem = f"{type(err).__name__}: {err}"
        raise StoreError(f"{path} is not a store of platonic ({problem}); {_writer(kind)}", given) from err
    if not ds.attrs.get("complete", False):
        raise StoreError(f"store {path} is incomplete (interrupted write?); delete it and re-run its stage", given)
    check_kind(ds.attrs, given, kind)
    ds.encoding["source"] = given  # with the argument that gave it, for `check_same_structures`
    return ds


def check_kind(attrs: dict, path: str | Path, kind: str | tuple[str, ...] | None) -> None:
    """Raise ``StoreError`` where the store ``path`` with ``attrs`` is not of ``kind`` (one or several of
    ``KINDS``; None: any). A store without a ``kind`` attribute passes."""
    expected = (kind,) if isinstance(kind, str) else tuple(kind or ())
    found = attrs.get("kind")
    if not expected or found is None or found in expected:
        return
    what = KINDS.get(found, (f"a store of kind {found!r}", None))[0]
    wanted = " or ".join(KINDS.get(k, (f"a store of kind {k!r}", None))[0] for k in expected)
    raise StoreError(f"{path} is {what} (kind {found!r}), expected {wanted}; {_writer(kind)}", path)


def _writer(kind: str | tuple[str, ...] | None) -> str:
    """Where a store of ``kind`` comes from, for an error's advice."""
    stages = [KINDS[k][1] for k in ((kind,) if isinstance(kind, str) else kind or ()) if k in KINDS]
    writers = " or ".join(f"`platonic {stage}`" for stage in stages)
    return f"give the store that {writers} writes" if stages else "run the stage that writes it"


def check_same_structures(*stores: xr.Dataset) -> None:
    """Raise ``StoreError`` where the ``stores`` (opened with ``open_store``) were not all computed on one
    structure set (their ``structure_set_hash``), naming each store and its hash; stores without one pass."""
    hashes = {}
    for ds in stores:
        if ds.attrs.get("structure_set_hash") is not None:
            hashes.setdefault(ds.encoding.get("source", "a store"), ds.attrs["structure_set_hash"])
    if len(set(hashes.values())) <= 1:
        return
    groups: dict[str, list[str]] = {}
    for path, value in hashes.items():
        groups.setdefault(value, []).append(path)
    shown = "; ".join(f"{', '.join(paths)} has structure_set_hash {value}" for value, paths in groups.items())
    raise StoreError(
        f"the stores come from different structure sets: {shown}; rebuild them from one structure store (re-run"
        " the stages after prepare on the same structures)",
        *hashes,
    )


def structures_to_dataset(structures: StructureSet, source: str = "", symprec: float | None = None) -> xr.Dataset:
    """Pack a structure set into the structure store layout (dims ``atom``, ``structure``).

    Symmetry is derived at ``symprec`` (Angstrom, see ``platonic.symmetry``): per atom ``orbit`` (global
    index of the orbit's lowest-index atom) and ``multiplicity``, per structure ``symmetry_spacegroup``
    (0 when not analysed) and ``symmetry_reason`` ("" when fine). The structure-set hash ignores it.
    """
    counts = np.array([len(a) for a in structures.atoms], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    structure_index = np.repeat(np.arange(len(counts)), counts)
    ids = np.array(structures.ids, dtype=object)
    data = {
        "positions": (("atom", "xyz"), np.concatenate([a.get_positions() for a in structures.atoms])),
        "cell": (("structure", "vector", "xyz"), np.stack([a.cell.array for a in structures.atoms])),
        "pbc": (("structure", "xyz"), np.stack([a.pbc for a in structures.atoms])),
        "n_atoms": (("structure",), counts),
        "first_atom": (("structure",), starts),
    }
    for name, values in structures.labels.items():
        data[name.replace(".", "_")] = (("structure",), values)
    ds = xr.Dataset(data, coords=atom_coords(structures.atoms, structures.ids))
    ds = ds.assign_coords(structure=np.arange(len(counts)), material_id=("structure", ids))
    ds["structure_index"] = ("atom", structure_index)
    from platonic.structures import structure_set_hash
    from platonic.symmetry import DEFAULT_SYMPREC, structure_set_orbits

    symprec = DEFAULT_SYMPREC if symprec is None else symprec
    orbits = structure_set_orbits(structures.atoms, symprec)
    ds["orbit"] = ("atom", orbits.orbit)
    ds["multiplicity"] = ("atom", orbits.multiplicity)
    ds["symmetry_spacegroup"] = ("structure", orbits.spacegroup)
    ds["symmetry_reason"] = ("structure", np.array(orbits.reasons, dtype=object))
    ds.attrs.update(
        kind="structures",
        source=str(source),
        structure_set_hash=structure_set_hash(structures.atoms, structures.ids),
        n_structures=len(structures),
        n_atoms=int(counts.sum()),
        n_orbits=orbits.n_orbits,
        symprec=float(symprec),
        n_symmetry_unanalysed=sum(1 for reason in orbits.reasons if reason),
        n_rejected=len(structures.rejected),
        rejected_ids=[i for i, _ in structures.rejected],
        rejected_reasons=[r for _, r in structures.rejected],
    )
    return ds


def atom_coords(atoms: list[ase.Atoms], ids: list[str]) -> dict:
    """The shared per-atom coordinates: global ``atom`` index, ``structure_id``, ``site`` and ``Z``."""
    counts = [len(a) for a in atoms]
    return {
        "atom": np.arange(sum(counts)),
        "structure_id": ("atom", np.repeat(np.array(ids, dtype=object), counts)),
        "site": ("atom", np.concatenate([np.arange(c) for c in counts])),
        "Z": ("atom", np.concatenate([a.get_atomic_numbers() for a in atoms]).astype(np.int64)),
    }


def dataset_to_atoms(ds: xr.Dataset) -> tuple[list[ase.Atoms], list[str]]:
    """Rebuild the ``ase.Atoms`` list (in store order) from a structure store."""
    import ase

    positions = ds["positions"].values
    numbers = ds["Z"].values
    cells = ds["cell"].values
    pbcs = ds["pbc"].values
    structures = []
    for s, (start, count) in enumerate(zip(ds["first_atom"].values, ds["n_atoms"].values, strict=True)):
        rows = slice(int(start), int(start + count))
        structures.append(ase.Atoms(numbers=numbers[rows], positions=positions[rows], cell=cells[s], pbc=pbcs[s]))
    return structures, [str(i) for i in ds["material_id"].values]
