"""The embed stage: run one adapter over a structure store and pack an embedding store."""

from __future__ import annotations

import sys

import ase
import ase.data
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from platonic.models.base import Adapter


def embed_structures(
    adapter: Adapter, structures: list[ase.Atoms], progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embed every structure; returns ``features (n_atoms, d)``, ``valid (n_atoms,)`` and one
    exclusion reason per structure (empty string when embedded).

    Structures with elements the model does not know, or whose features are not finite, get NaN
    rows and ``valid = False`` instead of stopping the run.
    """
    reasons = [""] * len(structures)
    for index, atoms in enumerate(structures):
        missing = adapter.unsupported(atoms)
        if missing:
            symbols = ", ".join(ase.data.chemical_symbols[z] for z in missing)
            reasons[index] = f"elements not supported by the model: {symbols}"
    todo = [i for i, reason in enumerate(reasons) if not reason]
    per_structure: dict[int, np.ndarray] = {}
    bar = tqdm(
        total=sum(len(structures[i]) for i in todo),
        unit="atom",
        desc=f"embed {adapter.family}:{adapter.checkpoint}",
        disable=not progress,
        file=sys.stderr,
        mininterval=2.0,
    )
    with bar:
        for start in range(0, len(todo), adapter.batch_size):
            batch = todo[start : start + adapter.batch_size]
            for index, outcome in zip(
                batch, _embed_batch_or_each(adapter, [structures[i] for i in batch]), strict=True
            ):
                if isinstance(outcome, str):
                    reasons[index] = outcome
                else:
                    per_structure[index] = outcome
                bar.update(len(structures[index]))
    if not per_structure:
        raise ValueError(f"model {adapter.family}:{adapter.checkpoint} could not embed any structure")
    first = next(iter(per_structure.values()))
    n_features, dtype = first.shape[1], first.dtype
    rows = []
    for index, atoms in enumerate(structures):
        features = per_structure.get(index)
        if features is not None and not np.isfinite(features).all():
            reasons[index] = "model output is not finite (NaN/inf)"
            features = None
        rows.append(features if features is not None else np.full((len(atoms), n_features), np.nan, dtype))
    counts = [len(atoms) for atoms in structures]
    valid = np.repeat([not reason for reason in reasons], counts)
    return np.concatenate(rows), valid, reasons


def _embed_batch_or_each(adapter: Adapter, batch: list[ase.Atoms]) -> list:
    """Embed a batch; if the model rejects it, retry one by one so that only the offending
    structures are excluded (their reason replaces their features). Out-of-memory is not a
    property of a structure, so it is raised."""
    try:
        return adapter.embed(batch)
    except MemoryError:
        raise
    except Exception as batch_error:
        if _is_out_of_memory(batch_error):
            raise
    outcomes: list = []
    for atoms in batch:
        try:
            outcomes.append(adapter.embed([atoms])[0])
        except Exception as err:
            if isinstance(err, MemoryError) or _is_out_of_memory(err):
                raise
            outcomes.append(f"model failed: {type(err).__name__}: {err}")
    return outcomes


def _is_out_of_memory(err: Exception) -> bool:
    return "out of memory" in str(err).lower()


def embedding_dataset(
    structure_store: xr.Dataset,
    features: np.ndarray,
    valid: np.ndarray,
    reasons: list[str],
    model_name: str,
    provenance: dict,
) -> xr.Dataset:
    """An embedding store: ``embedding (atom, feature)`` on the structure store's atom index."""
    coords = {name: structure_store[name].values for name in ("atom", "structure_id", "site", "Z")}
    ds = xr.Dataset(
        {
            "embedding": (("atom", "feature"), features),
            "valid": (("atom",), valid),
            "exclusion_reason": (("structure",), np.array(reasons, dtype=object)),
        },
        coords={
            "atom": coords["atom"],
            "structure_id": ("atom", coords["structure_id"].astype(object)),
            "site": ("atom", coords["site"]),
            "Z": ("atom", coords["Z"]),
            "feature": np.arange(features.shape[1]),
            "structure": structure_store["structure"].values,
        },
    )
    ds.attrs.update(
        kind="embedding",
        model=model_name,
        dtype=str(features.dtype),
        structure_set_hash=structure_store.attrs["structure_set_hash"],
        n_excluded_structures=sum(bool(r) for r in reasons),
        **{f"model_{key}": value for key, value in provenance.items()},
    )
    return ds
