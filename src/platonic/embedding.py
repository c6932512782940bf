"""The embed stage: run one adapter over a structure store and pack an embedding store."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

import ase
import ase.data
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from platonic.models.base import Adapter
from platonic.store import open_store, write_store

log = logging.getLogger("platonic")


def embed_structures(
    adapter: Adapter, structures: list[ase.Atoms], progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embed every structure; returns ``features (n_atoms, d)``, ``valid (n_atoms,)`` and one
    exclusion reason per structure (empty string when embedded).

    Structures with elements the model does not know, or whose features are not finite, get NaN
    rows and ``valid = False`` instead of stopping the run.
    """
    with _progress_bar(adapter, structures, progress) as bar:
        rows, reasons = _embed_part(adapter, structures, bar)
    return _assemble([(rows, reasons, [len(atoms) for atoms in structures])], adapter)


def embed_sharded(
    adapter: Adapter,
    structures: list[ase.Atoms],
    shard_dir: str | Path,
    shard_size: int,
    fingerprint: str,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``embed_structures`` in resumable shards of ``shard_size`` structures.

    Each finished shard is written atomically to ``shard_dir`` and carries ``fingerprint`` (what
    its numbers depend on: structure set, checkpoint, layer, dtype, device, batch size, shard
    size). A rerun after the process was killed reuses every finished shard with the same
    fingerprint and embeds only the others; since batches never cross a shard boundary, the result
    is bit-identical to an uninterrupted run. Shards with another fingerprint are recomputed.
    """
    if shard_size < 1:
        raise ValueError(f"embed.shard_size must be at least 1, not {shard_size}")
    shard_dir = Path(shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    bounds = [(start, min(start + shard_size, len(structures))) for start in range(0, len(structures), shard_size)]
    parts: dict[int, tuple[list, list[str], list[int]]] = {}
    for index, (start, stop) in enumerate(bounds):
        found = _read_shard(_shard_path(shard_dir, start, stop), fingerprint)
        if found is not None:
            parts[index] = found
    if parts:
        log.info("resuming: %d of %d shards already embedded in %s", len(parts), len(bounds), shard_dir)
    with _progress_bar(adapter, structures, progress) as bar:
        bar.update(sum(len(structures[i]) for k in parts for i in range(*bounds[k])))
        for index, (start, stop) in enumerate(bounds):
            if index in parts:
                continue
            rows, reasons = _embed_part(adapter, structures[start:stop], bar)
            _write_shard(_shard_path(shard_dir, start, stop), rows, reasons, fingerprint, structures[start:stop])
            parts[index] = rows, reasons, [len(atoms) for atoms in structures[start:stop]]
    return _assemble([parts[index] for index in range(len(bounds))], adapter)


def shard_fingerprint(**values) -> str:
    """A short hash of everything a shard's numbers depend on."""
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _progress_bar(adapter: Adapter, structures: list[ase.Atoms], progress: bool):
    return tqdm(
        total=sum(len(atoms) for atoms in structures),
        unit="atom",
        desc=f"embed {adapter.family}:{adapter.checkpoint}",
        disable=not progress,
        file=sys.stderr,
        mininterval=2.0,
    )


def _embed_part(adapter: Adapter, structures: list[ase.Atoms], bar) -> tuple[list, list[str]]:
    """Features (or None) and exclusion reason of each structure, batches within this part only."""
    reasons = [""] * len(structures)
    for index, atoms in enumerate(structures):
        missing = adapter.unsupported(atoms)
        if missing:
            symbols = ", ".join(ase.data.chemical_symbols[z] for z in missing)
            reasons[index] = f"elements not supported by the model: {symbols}"
            bar.update(len(atoms))
    todo = [i for i, reason in enumerate(reasons) if not reason]
    rows: list[np.ndarray | None] = [None] * len(structures)
    for start in range(0, len(todo), adapter.batch_size):
        batch = todo[start : start + adapter.batch_size]
        for index, outcome in zip(batch, _embed_batch_or_each(adapter, [structures[i] for i in batch]), strict=True):
            if isinstance(outcome, str):
                reasons[index] = outcome
            elif not np.isfinite(outcome).all():
                reasons[index] = "model output is not finite (NaN/inf)"
            else:
                rows[index] = outcome
            bar.update(len(structures[index]))
    return rows, reasons


def _assemble(
    parts: list[tuple[list, list[str], list[int]]], adapter: Adapter
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Concatenate parts (rows, reasons, atom counts) in order; excluded structures become NaN rows of the common
    width."""
    embedded = [row for rows, _, _ in parts for row in rows if row is not None]
    if not embedded:
        raise ValueError(f"model {adapter.family}:{adapter.checkpoint} could not embed any structure")
    n_features, dtype = embedded[0].shape[1], embedded[0].dtype
    blocks, reasons = [], []
    for rows, part_reasons, counts in parts:
        for row, reason, n_atoms in zip(rows, part_reasons, counts, strict=True):
            blocks.append(row if row is not None else np.full((n_atoms, n_features), np.nan, dtype))
            reasons.append(reason)
    valid = np.repeat([not reason for reason in reasons], [len(block) for block in blocks])
    return np.concatenate(blocks), valid, reasons


def _shard_path(shard_dir: Path, start: int, stop: int) -> Path:
    return shard_dir / f"structures-{start:08d}-{stop:08d}.zarr"


def _write_shard(path: Path, rows: list, reasons: list[str], fingerprint: str, structures: list[ase.Atoms]) -> None:
    counts = [len(atoms) for atoms in structures]
    widths = {row.shape[1] for row in rows if row is not None}
    width = widths.pop() if widths else 0
    dtype = next((row.dtype for row in rows if row is not None), np.float32)
    features = np.concatenate(
        [row if row is not None else np.full((n, width), np.nan, dtype) for row, n in zip(rows, counts, strict=True)]
    )
    ds = xr.Dataset(
        {
            "embedding": (("atom", "feature"), features),
            "embedded": (("structure",), np.array([row is not None for row in rows])),
            "n_atoms": (("structure",), np.array(counts, dtype=np.int64)),
            "exclusion_reason": (("structure",), np.array(reasons, dtype=object)),
        },
        attrs={"kind": "embedding-shard", "fingerprint": fingerprint},
    )
    write_store(ds, path)


def _read_shard(path: Path, fingerprint: str) -> tuple[list, list[str], list[int]] | None:
    """A finished shard with this fingerprint, or None (missing, interrupted, or from other settings)."""
    if not path.exists():
        return None
    try:
        ds = open_store(path).load()
    except Exception as err:  # noqa: BLE001 -- an unreadable shard is recomputed, whatever broke it
        log.warning("recomputing shard %s: %s", path.name, err)
        return None
    if ds.attrs.get("fingerprint") != fingerprint:
        log.warning("recomputing shard %s: it was embedded with other settings", path.name)
        return None
    counts = [int(n) for n in ds["n_atoms"].values]
    features = ds["embedding"].values
    starts = np.concatenate([[0], np.cumsum(counts)])
    rows = [
        features[starts[i] : starts[i + 1]] if embedded else None for i, embedded in enumerate(ds["embedded"].values)
    ]
    return rows, [str(r) for r in ds["exclusion_reason"].values], counts


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
