"""The embed stage: run one adapter over a structure store and pack an embedding store.

An embedding store holds ``embedding (atom, feature)``: the model's features (its ``layer``, or the family default).
A model entry with ``layers`` adds one variable per layer, ``embedding_layer_<k> (atom, feature_layer_<k>)`` for
layer index ``k`` (what ``layer: k`` takes), each with its own feature dimension because widths differ between
layers (SevenNet, MACE), and a ``layer`` coordinate (the indices, with ``layer_name``) listing them; ``embedding``
stays the family default, so every stage reads such a store as it reads a single-layer one. `layer_embedding`
returns any one of them as ``(atom, feature)``.

With ``embed.predictions`` a potential's store also holds what the model predicts from the same forward pass, in
ASE's units and conventions (`PREDICTIONS`): ``energy_per_atom (structure)``, ``forces (atom, cartesian)`` and
``stress (structure, voigt)``, float64, NaN for excluded structures, and the attr ``predictions`` names them.
Controls predict nothing.
"""

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
from platonic.store import StoreError, open_store, write_store

log = logging.getLogger("platonic")

EMBEDDING = "embedding"  # the model's features (its `layer` or the family default); every stage reads this
# what a potential predicts, from the features' forward pass (`Adapter.embed_predict`): store variable -> units
PREDICTIONS = {"energy_per_atom": "eV/atom", "forces": "eV/Angstrom", "stress": "eV/Angstrom^3"}
PER_STRUCTURE = ("energy_per_atom", "stress")  # one row per structure, not per atom
VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")  # ASE's order of a stress's six components


def layer_variable(index: int) -> str:
    """The store variable of layer ``index`` (what ``layer: index`` takes): ``embedding_layer_<index>``."""
    return f"{EMBEDDING}_layer_{int(index)}"


def feature_dim(variable: str) -> str:
    """The feature dimension of a store variable: ``feature`` for ``embedding``, ``feature_layer_<k>`` for
    ``embedding_layer_<k>`` (layers of one model can differ in width)."""
    return "feature" + variable.removeprefix(EMBEDDING)


def store_layers(ds: xr.Dataset) -> dict[int, str]:
    """``{index: name}`` of the layers an embedding store holds (``{}`` for a single-layer store)."""
    if "layer" not in ds.coords:
        return {}
    return {int(k): str(name) for k, name in zip(ds["layer"].values, ds["layer_name"].values, strict=True)}


def layer_embedding(ds: xr.Dataset, layer: int | str | None = None) -> xr.DataArray:
    """One layer of an embedding store as ``(atom, feature)``, with the store's per-atom coordinates: ``None`` is
    ``embedding`` (the model's own features), an int the layer of that index, a string the layer of that name
    (e.g. ``atom_conv_layers[1]``). Lazy where ``ds`` is."""
    if layer is None:
        return ds[EMBEDDING]
    layers = store_layers(ds)
    if isinstance(layer, str) and layer in layers.values():
        index = next(k for k, name in layers.items() if name == layer)
    else:
        try:
            index = int(layer)
        except (TypeError, ValueError):
            index = None
    if index not in layers:
        held = ", ".join(f"{k}: {name}" for k, name in layers.items()) or "none (a single-layer store)"
        raise StoreError(f"embedding store of {ds.attrs.get('model')!r} has no layer {layer!r}; its layers: {held}")
    variable = layer_variable(index)
    return ds[variable].rename({feature_dim(variable): "feature"})


def embed_structures(
    adapter: Adapter, structures: list[ase.Atoms], progress: bool = True, predict: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embed every structure; returns ``features (n_atoms, d)``, ``valid (n_atoms,)`` and one
    exclusion reason per structure (empty string when embedded). For an adapter with ``layers``, ``features`` is
    a dict of store variable -> ``(n_atoms, d_variable)``: ``embedding`` and each ``embedding_layer_<k>``. With
    ``predict`` (an adapter that `predicts`), ``features`` is such a dict also holding the predictions of the same
    pass: ``energy_per_atom (n_structures,)``, ``forces (n_atoms, 3)`` and ``stress (n_structures, 6)``, float64.

    Structures with elements the model does not know, or whose features (in any layer) are not finite, get NaN
    rows and ``valid = False`` instead of stopping the run (a prediction that is not finite is kept as it is).
    """
    with _progress_bar(adapter, structures, progress) as bar:
        rows, reasons = _embed_part(adapter, structures, bar, predict)
    return _assemble([(rows, reasons, [len(atoms) for atoms in structures])], adapter)


def embed_sharded(
    adapter: Adapter,
    structures: list[ase.Atoms],
    shard_dir: str | Path,
    shard_size: int,
    fingerprint: str,
    progress: bool = True,
    predict: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``embed_structures`` in resumable shards of ``shard_size`` structures.

    Each finished shard is written atomically to ``shard_dir`` and carries ``fingerprint`` (what
    its numbers depend on: structure set, checkpoint, layer, dtype, device, batch size, shard
    size, whether it predicts; a shard holds the predictions too). A rerun after the process was killed
    reuses every finished shard with the same fingerprint and embeds only the others; since batches never
    cross a shard boundary, the result is bit-identical to an uninterrupted run. Shards with another
    fingerprint are recomputed. Returns what `embed_structures` returns.
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
            rows, reasons = _embed_part(adapter, structures[start:stop], bar, predict)
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


def _embed_part(adapter: Adapter, structures: list[ase.Atoms], bar, predict: bool = False) -> tuple[list, list[str]]:
    """Features (with ``predict`` also predictions; or None) and exclusion reason of each structure, batches within
    this part only."""
    reasons = [""] * len(structures)
    for index, atoms in enumerate(structures):
        missing = adapter.unsupported(atoms)
        if missing:
            symbols = ", ".join(ase.data.chemical_symbols[z] for z in missing)
            reasons[index] = f"elements not supported by the model: {symbols}"
            bar.update(len(atoms))
    todo = [i for i, reason in enumerate(reasons) if not reason]
    rows: list[dict[str, np.ndarray] | None] = [None] * len(structures)
    for start in range(0, len(todo), adapter.batch_size):
        batch = todo[start : start + adapter.batch_size]
        outcomes = _embed_batch_or_each(adapter, [structures[i] for i in batch], predict)
        for index, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, str):
                reasons[index] = outcome
            elif not all(np.isfinite(x).all() for name, x in outcome.items() if name not in PREDICTIONS):
                reasons[index] = "model output is not finite (NaN/inf)"
            else:
                rows[index] = outcome
            bar.update(len(structures[index]))
    return rows, reasons


def _assemble(
    parts: list[tuple[list, list[str], list[int]]], adapter: Adapter
) -> tuple[np.ndarray | dict[str, np.ndarray], np.ndarray, list[str]]:
    """Concatenate parts (rows, reasons, atom counts) in order, each store variable apart; excluded structures
    become NaN rows of the variable's width. A single-layer adapter's features come back as one array."""
    embedded = [row for rows, _, _ in parts for row in rows if row is not None]
    if not embedded:
        raise ValueError(f"model {adapter.family}:{adapter.checkpoint} could not embed any structure")
    blocks: dict[str, list[np.ndarray]] = {variable: [] for variable in embedded[0]}
    reasons, counts = [], []
    for rows, part_reasons, part_counts in parts:
        for row, reason, n_atoms in zip(rows, part_reasons, part_counts, strict=True):
            for variable, first in embedded[0].items():
                blocks[variable].append(row[variable] if row is not None else _missing(variable, first, n_atoms))
            reasons.append(reason)
            counts.append(n_atoms)
    valid = np.repeat([not reason for reason in reasons], counts)
    features = {variable: np.concatenate(values) for variable, values in blocks.items()}
    single = adapter.layers is None and not any(variable in PREDICTIONS for variable in features)
    return (features[EMBEDDING] if single else features), valid, reasons


def _dims(variable: str) -> tuple[str, ...]:
    """The dimensions of a store variable: ``(atom, feature...)`` for features, those of `PREDICTIONS` for them."""
    if variable.startswith(EMBEDDING):
        return ("atom", feature_dim(variable))
    return {"energy_per_atom": ("structure",), "forces": ("atom", "cartesian"), "stress": ("structure", "voigt")}[
        variable
    ]


def _missing(variable: str, example: np.ndarray, n_atoms: int) -> np.ndarray:
    """The NaN rows of an excluded structure in ``variable``, shaped like ``example`` (one row per atom, or one
    for a per-structure prediction)."""
    rows = 1 if variable in PER_STRUCTURE else n_atoms
    return np.full((rows, *example.shape[1:]), np.nan, example.dtype)


def _shard_path(shard_dir: Path, start: int, stop: int) -> Path:
    return shard_dir / f"structures-{start:08d}-{stop:08d}.zarr"


def _write_shard(path: Path, rows: list, reasons: list[str], fingerprint: str, structures: list[ase.Atoms]) -> None:
    counts = [len(atoms) for atoms in structures]
    first = next((row for row in rows if row is not None), {EMBEDDING: np.zeros((0, 0), np.float32)})
    variables = {}
    for variable, example in first.items():
        values = np.concatenate(
            [
                row[variable] if row is not None else _missing(variable, example, n)
                for row, n in zip(rows, counts, strict=True)
            ]
        )
        variables[variable] = (_dims(variable)[: values.ndim], values)
    ds = xr.Dataset(
        {
            **variables,
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
    features = {name: ds[name].values for name in ds.data_vars if str(name).startswith(EMBEDDING)}
    predicted = {name: ds[name].values for name in PREDICTIONS if name in ds.data_vars}
    starts = np.concatenate([[0], np.cumsum(counts)])
    rows = [
        {
            **{name: values[starts[i] : starts[i + 1]] for name, values in features.items()},
            **{
                name: values[i : i + 1] if name in PER_STRUCTURE else values[starts[i] : starts[i + 1]]
                for name, values in predicted.items()
            },
        }
        if embedded
        else None
        for i, embedded in enumerate(ds["embedded"].values)
    ]
    return rows, [str(r) for r in ds["exclusion_reason"].values], counts


def _embed_batch_or_each(adapter: Adapter, batch: list[ase.Atoms], predict: bool = False) -> list:
    """Embed a batch; if the model rejects it, retry one by one so that only the offending
    structures are excluded (their reason replaces their features). Out-of-memory is not a
    property of a structure, so it is raised."""
    try:
        return _outputs(adapter, batch, predict)
    except MemoryError:
        raise
    except Exception as batch_error:
        if _is_out_of_memory(batch_error):
            raise
    outcomes: list = []
    for atoms in batch:
        try:
            outcomes.append(_outputs(adapter, [atoms], predict)[0])
        except Exception as err:
            if isinstance(err, MemoryError) or _is_out_of_memory(err):
                raise
            outcomes.append(f"model failed: {type(err).__name__}: {err}")
    return outcomes


def _outputs(adapter: Adapter, batch: list[ase.Atoms], predict: bool = False) -> list[dict[str, np.ndarray]]:
    """Per structure, store variable -> features: ``embedding`` alone, or with ``layers`` also every
    ``embedding_layer_<k>``, all from one forward pass (`Adapter.embed_layers`); with ``predict`` also the
    predictions of that pass (`Adapter.embed_predict`): ``energy_per_atom (1,)``, ``forces (n, 3)`` and
    ``stress (1, 6)``."""
    if predict:
        return [
            {
                EMBEDDING: features[adapter.layer_name],
                **{layer_variable(k): features[name] for k, name in adapter.selected_layers},
                "energy_per_atom": np.array([prediction.energy_per_atom]),
                "forces": prediction.forces,
                "stress": prediction.stress[None, :],
            }
            for features, prediction in adapter.embed_predict(batch)
        ]
    if adapter.layers is None:
        return [{EMBEDDING: features} for features in adapter.embed(batch)]
    default = adapter.layer_name
    return [
        {EMBEDDING: item[default], **{layer_variable(k): item[name] for k, name in adapter.selected_layers}}
        for item in adapter.embed_layers(batch)
    ]


def _is_out_of_memory(err: Exception) -> bool:
    return "out of memory" in str(err).lower()


def embedding_dataset(
    structure_store: xr.Dataset,
    features: np.ndarray | dict[str, np.ndarray],
    valid: np.ndarray,
    reasons: list[str],
    model_name: str,
    provenance: dict,
    layers: tuple[tuple[int, str], ...] = (),
) -> xr.Dataset:
    """An embedding store: ``embedding (atom, feature)`` on the structure store's atom index; with ``layers``
    (``(index, name)`` of each, `Adapter.selected_layers`) and ``features`` a dict of store variables (what
    `embed_structures` returns for them), also ``embedding_layer_<k> (atom, feature_layer_<k>)`` and the ``layer``
    coordinate (with ``layer_name``). Predictions among ``features`` (`PREDICTIONS`) become ``energy_per_atom
    (structure)``, ``forces (atom, cartesian)`` and ``stress (structure, voigt)`` with their ``units``, and the attr
    ``predictions`` lists them."""
    if not isinstance(features, dict):
        features = {EMBEDDING: features}
    predicted = [name for name in PREDICTIONS if name in features]
    expected = {EMBEDDING, *(layer_variable(k) for k, _ in layers)}
    if set(features) - set(predicted) != expected:
        raise ValueError(f"features hold {sorted(features)} but the layers ask for {sorted(expected)}")
    predictions = {
        name: xr.Variable(_dims(name), np.asarray(features[name], np.float64), attrs={"units": PREDICTIONS[name]})
        for name in predicted
    }
    coords = {name: structure_store[name].values for name in ("atom", "structure_id", "site", "Z")}
    per_layer, layer_coords = {}, {}
    for index, name in layers:
        variable = layer_variable(index)
        dim = feature_dim(variable)
        per_layer[variable] = xr.Variable(("atom", dim), features[variable], attrs={"layer_name": name})
        layer_coords[dim] = np.arange(features[variable].shape[1])
    if layers:
        layer_coords["layer"] = np.array([k for k, _ in layers], dtype=np.int64)
        layer_coords["layer_name"] = ("layer", np.array([name for _, name in layers], dtype=object))
    embedding = features[EMBEDDING]
    ds = xr.Dataset(
        {
            "embedding": (("atom", "feature"), embedding),
            "valid": (("atom",), valid),
            "exclusion_reason": (("structure",), np.array(reasons, dtype=object)),
            **per_layer,
            **predictions,
        },
        coords={
            "atom": coords["atom"],
            "structure_id": ("atom", coords["structure_id"].astype(object)),
            "site": ("atom", coords["site"]),
            "Z": ("atom", coords["Z"]),
            "feature": np.arange(embedding.shape[1]),
            "structure": structure_store["structure"].values,
            **layer_coords,
            **({"cartesian": ["x", "y", "z"]} if "forces" in predictions else {}),
            **({"voigt": list(VOIGT)} if "stress" in predictions else {}),
        },
    )
    ds.attrs.update(
        kind="embedding",
        model=model_name,
        dtype=str(embedding.dtype),
        structure_set_hash=structure_store.attrs["structure_set_hash"],
        n_excluded_structures=sum(bool(r) for r in reasons),
        **({"predictions": " ".join(predicted)} if predicted else {}),
        **{f"model_{key}": value for key, value in provenance.items()},
    )
    return ds
