"""What several stages share: opening every model's store by model name, the anchor space, CSV tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import xarray as xr

from platonic.store import check_same_structures, open_store


def model_stores(paths: list[str], kind: str) -> dict[str, xr.Dataset]:
    """``{model: store}`` of the embedding or projection stores (``kind``) at ``paths``, in the order given (the
    configured model order), checked to come from one structure set."""
    stores = {}
    for path in paths:
        store = open_store(path, kind=kind)
        stores[store.attrs["model"]] = store
    check_same_structures(*stores.values())
    return stores


def same_models(stores: dict[str, xr.Dataset], expected: list[str], what: str) -> dict[str, xr.Dataset]:
    """``stores`` in the order of ``expected``, or a clear error where they name other models."""
    if sorted(stores) != sorted(expected):
        raise ValueError(f"{what} name the models {sorted(stores)}, expected {sorted(expected)}")
    return {model: stores[model] for model in expected}


def valid_mask(stores: dict[str, xr.Dataset]) -> np.ndarray:
    """The atoms every model of ``stores`` (embedding or projection stores) embedded: the AND of their ``valid``."""
    from platonic.anchors import common_valid

    return common_valid([s["valid"].values for s in stores.values()])


def compared_mask(anchors: xr.Dataset, stores: dict[str, xr.Dataset]) -> np.ndarray:
    """The atoms a stage compares its models ``stores`` on: the anchor store's ``compared`` atoms (which no model's
    exclusions enter) that every one of these models embedded."""
    compared = anchors["compared"].values.astype(bool)
    valid = valid_mask(stores)
    if valid.shape != compared.shape:
        raise ValueError(
            f"the model stores have {len(valid)} atoms, the anchor store {len(compared)}; re-run them on the same"
            " structure store"
        )
    return compared & valid


def shared_space(anchors_path: str, projection_paths: list[str]) -> tuple[np.ndarray, dict, xr.Dataset, xr.Dataset]:
    """The atoms compared (``compared_mask``: the anchor store's ``compared`` atoms every one of these models
    embedded), ``{model: coordinates (n, K)}``, the first projection store (for its per-atom coordinates) and the
    anchor store, checked to share one anchor set."""
    anchors = open_store(anchors_path, kind="anchors")
    stores = model_stores(projection_paths, "projection")
    check_same_structures(anchors, *stores.values())
    for model, store in stores.items():
        if store.attrs.get("anchor_set_hash") != anchors.attrs["anchor_set_hash"]:
            raise ValueError(
                f"the projection of {model} was made with other anchors than {anchors_path}; re-run project"
            )
    valid = compared_mask(anchors, stores)
    coordinates = {m: Rows(s["coordinate"], valid) for m, s in stores.items()}
    return valid, coordinates, next(iter(stores.values())), anchors


class Rows:
    """The rows ``mask`` of a store's ``(atom, ...)`` variable, read from the store only when indexed: a slice or
    index array reads just those rows (chunk by chunk), ``np.asarray`` all of them. An analysis that walks its
    models block by block (the audit's consensus, the analogies' element means) never holds a whole model."""

    def __init__(self, variable: xr.DataArray, mask: np.ndarray):
        self._data = variable.data  # dask-backed for a store opened with open_store
        self._rows = np.flatnonzero(mask)
        self.shape = (len(self._rows), *variable.shape[1:])
        self.dtype = variable.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        rows = self._rows[index]
        return np.asarray(self._data[rows] if np.ndim(rows) else self._data[int(rows)])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        values = np.asarray(self._data[self._rows])
        return values if dtype is None else values.astype(dtype)


def open_structures(path: str, store: xr.Dataset) -> xr.Dataset:
    """The structure store at ``path``, checked to be the structure set ``store`` (a model's store) was made from."""
    structures = open_store(path, kind="structures")
    check_same_structures(structures, store)
    return structures


def atom_counts(anchors: xr.Dataset, valid: np.ndarray) -> dict[str, int]:
    """How many atoms a comparison keeps and leaves out, for the attrs of its store: ``valid (N,)`` are the atoms
    every compared model embedded (``valid_mask``), of which it compares the anchor store's ``compared`` ones."""
    valid = np.asarray(valid, bool)
    unique = anchors["compared"].values.astype(bool)
    return {
        "n_excluded_atoms": int((~valid).sum()),  # a model could not embed them
        "n_valid_atoms": int(valid.sum()),
        "n_compared_atoms": int((valid & unique).sum()),
        "n_symmetry_copies_left_out": int((valid & ~unique).sum()),
    }


def write_rows(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """A CSV of ``rows``; with ``columns``, the header is written even when there are no rows."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        if rows or columns:
            writer = csv.DictWriter(handle, fieldnames=columns or list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
