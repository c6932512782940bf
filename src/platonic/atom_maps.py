"""Two-dimensional maps of atoms for the shared-space figure: principal components (always) and UMAP (where
``umap-learn`` is installed), fitted once on every model's anchor coordinates together so that positions are
comparable between models. Arrays in, a labelled array out."""

from __future__ import annotations

import importlib.util

import numpy as np
import xarray as xr

__all__ = ["REDUCTIONS", "available_reductions", "joint_maps", "principal_plane", "umap_plane"]

REDUCTIONS = ("pca", "umap")


def available_reductions() -> tuple[str, ...]:
    """The reductions this installation can fit, in ``REDUCTIONS`` order: PCA always, UMAP when ``umap-learn`` is
    installed."""
    return ("pca", "umap") if importlib.util.find_spec("umap") is not None else ("pca",)


def principal_plane(points: np.ndarray) -> np.ndarray:
    """The coordinates of ``points`` (n, d) on their first two principal axes (after centring), (n, 2) float64.

    Each axis's sign is fixed so that its largest coordinate in absolute value is positive (reruns and platforms
    agree); with d = 1 the second column is 0.
    """
    centred = np.asarray(points, dtype=np.float64)
    centred = centred - centred.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ vt[:2].T
    signs = np.sign(projected[np.argmax(np.abs(projected), axis=0), range(projected.shape[1])])
    return np.pad(projected * signs, ((0, 0), (0, 2 - projected.shape[1])))


def umap_plane(points: np.ndarray, seed: int) -> np.ndarray:
    """UMAP of ``points`` (n, d) with the cosine metric, 15 neighbours, minimum distance 0.3 and ``random_state``
    ``seed``: (n, 2). Needs ``umap-learn``."""
    import umap

    reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=15, min_dist=0.3, metric="cosine")
    return reducer.fit_transform(np.asarray(points, dtype=np.float64))


def joint_maps(coordinates: dict[str, np.ndarray], reductions=("pca",), seed: int = 0) -> xr.DataArray:
    """Each of ``reductions`` fitted once on every model's coordinates stacked (``{model: (n_atoms, n_anchors)}``, the
    same atoms in every model), split back per model: ``map (reduction, model, atom, axis)`` float64, with ``n_atoms``
    and ``n_anchors`` in its attrs."""
    unknown = [r for r in reductions if r not in REDUCTIONS]
    if unknown:
        raise ValueError(f"unknown 2-D map {unknown[0]!r}; choose from {', '.join(REDUCTIONS)}")
    models = list(coordinates)
    stacked = np.concatenate([np.asarray(coordinates[m], dtype=np.float64) for m in models])
    n_atoms = stacked.shape[0] // max(len(models), 1)
    fitted = [principal_plane(stacked) if r == "pca" else umap_plane(stacked, seed) for r in reductions]
    values = np.stack([np.asarray(f, dtype=np.float64).reshape(len(models), n_atoms, 2) for f in fitted])
    return xr.DataArray(
        values,
        dims=("reduction", "model", "atom", "axis"),
        coords={"reduction": list(reductions), "model": models},
        name="map",
        attrs={"n_atoms": n_atoms, "n_anchors": int(stacked.shape[1])},
    )
