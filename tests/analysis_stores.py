"""Synthetic stores (structures, embeddings, anchors, projections) in the layout the CLI reads, for
the shared-space analysis tests: spaces whose answers are known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from platonic.projection import anchor_projection
from platonic.store import write_store


def write_study(
    root: Path,
    raw: dict[str, np.ndarray],
    z: np.ndarray,
    structure_index: np.ndarray,
    labels: dict[str, np.ndarray],
    anchor_rows: np.ndarray,
    structure_set_hash: str = "synthetic-structures",
    anchor_attrs: dict | None = None,
) -> dict:
    """Write every store of a study on the atoms ``z (N,)`` grouped by ``structure_index (N,)``, its structure set
    named ``structure_set_hash``, its anchor store's attrs updated with ``anchor_attrs``; returns the paths by kind
    (``structures``, ``anchors``, ``embeddings`` and ``projections`` lists)."""
    n_structures = int(structure_index.max()) + 1
    ids = np.array([f"syn-{i}" for i in range(n_structures)], dtype=object)
    counts = np.bincount(structure_index, minlength=n_structures)
    coords = {
        "atom": np.arange(len(z)),
        "structure_id": ("atom", ids[structure_index]),
        "site": ("atom", np.concatenate([np.arange(c) for c in counts])),
        "Z": ("atom", np.asarray(z, dtype=np.int64)),
    }
    set_hash = structure_set_hash
    structures = xr.Dataset(
        {
            "structure_index": ("atom", structure_index),
            "n_atoms": ("structure", counts),
            "first_atom": ("structure", np.concatenate([[0], np.cumsum(counts)[:-1]])),
            **{name: ("structure", np.asarray(values, dtype=np.float64)) for name, values in labels.items()},
        },
        coords={**coords, "structure": np.arange(n_structures), "material_id": ("structure", ids)},
        attrs={"kind": "structures", "structure_set_hash": set_hash},
    )
    paths = {"structures": write_store(structures, root / "structures.zarr"), "embeddings": [], "projections": []}
    valid = np.ones(len(z), dtype=bool)
    anchors = xr.Dataset(
        {"anchor_atom": ("anchor", anchor_rows), "reference_valid": ("atom", valid), "compared": ("atom", valid)},
        coords={"anchor": np.arange(len(anchor_rows)), "atom": np.arange(len(z))},
        attrs={
            "kind": "anchors",
            "anchor_set_hash": "synthetic-anchors",
            "structure_set_hash": set_hash,
            **(anchor_attrs or {}),
        },
    )
    paths["anchors"] = write_store(anchors, root / "anchors.zarr")
    for model, features in raw.items():
        attrs = {"model": model, "structure_set_hash": set_hash}
        embedding = xr.Dataset(
            {"embedding": (("atom", "feature"), features.astype(np.float32)), "valid": ("atom", valid)},
            coords=coords,
            attrs={**attrs, "kind": "embedding"},
        )
        paths["embeddings"].append(write_store(embedding, root / f"embeddings/{model}.zarr"))
        projection = xr.Dataset(
            {
                "coordinate": (("atom", "anchor"), anchor_projection(features, features[anchor_rows])),
                "valid": ("atom", valid),
            },
            coords={**coords, "anchor": np.arange(len(anchor_rows)), "anchor_atom": ("anchor", anchor_rows)},
            attrs={**attrs, "kind": "projection", "anchor_set_hash": "synthetic-anchors"},
        )
        paths["projections"].append(write_store(projection, root / f"platonic/{model}.zarr"))
    return paths


def element_clusters(
    seed: int, n_structures: int, elements: list[int], width: int, noise: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atoms of random structures (2-7 atoms each) whose features are one centre per element plus
    noise: ``structure_index (N,)``, ``z (N,)``, ``features (N, width)``."""
    rng = np.random.default_rng(seed)
    structure_index = np.repeat(np.arange(n_structures), rng.integers(2, 8, n_structures))
    z = rng.choice(elements, size=len(structure_index))
    centres = {e: rng.normal(size=width) for e in elements}
    features = np.stack([centres[e] for e in z]) + noise * rng.normal(size=(len(z), width))
    return structure_index, z, features


def rotation(seed: int, width: int) -> np.ndarray:
    """A random orthogonal ``(width, width)`` matrix."""
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(width, width)))[0]
