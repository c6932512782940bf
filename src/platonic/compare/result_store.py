"""Model summaries and pair results on disk: a Zarr group of plain arrays and a JSON outline of how they nest.

The fan-in's jobs hand each other nested Python values (dataclasses of arrays, dicts keyed by ``(metric,
forward)``, lists of permutations). ``save`` writes every array as one Zarr array, bit for bit (float64 stays
float64), and the nesting as an outline in the group's attributes; ``load`` rebuilds the value. Only the classes in
``CLASSES`` are rebuilt; a ``bootstrap.Resampling`` is not stored (every job derives it from its atoms) and is
filled in at ``load``. Written under a temporary name and renamed when complete, its metadata consolidated, like
every store (`platonic.store`).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np

from platonic.compare.bootstrap import ReplicateMoments, Resampling
from platonic.compare.fan_in import ModelSummary, PairResult
from platonic.compare.metrics import Moments, OwnKernel, RidgeFolds, SplitMoments
from platonic.store import atomic_directory, consolidate

CLASSES = {
    cls.__name__: cls
    for cls in (Moments, SplitMoments, RidgeFolds, ReplicateMoments, OwnKernel, ModelSummary, PairResult)
}
FORMAT = 1


def save(value, path: str | Path, **attrs) -> Path:
    """Write ``value`` to the Zarr group ``path`` (replacing it), with ``attrs``."""
    import zarr

    arrays: dict[str, np.ndarray] = {}
    outline = _outline(value, arrays)
    with atomic_directory(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        for name, array in arrays.items():
            group.create_array(name, data=array, chunks=tuple(max(1, s) for s in array.shape), compressors=None)
        group.attrs.update({"outline": outline, "format": FORMAT, **attrs})
        consolidate(tmp)
    return Path(path)


def _open(path: str | Path):
    """The zarr group of the result store ``path`` and its attributes (the outline among them), checked to be a
    result store of this version."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    if attrs.get("format") != FORMAT:
        raise ValueError(f"{path} is not a result store of this version of platonic (format {attrs.get('format')})")
    return group, attrs


def load(path: str | Path, resampling: Resampling | None = None, keys=None):
    """The value ``save`` wrote to ``path``, and its attributes; ``resampling`` fills in what was left out. With
    ``keys``, of a stored dict only those items are read."""
    group, attrs = _open(path)
    outline = attrs.pop("outline")
    if keys is not None:
        stored = [_unkey(k) for k, _ in outline.get("items", [])]
        missing = sorted(set(keys) - set(stored))
        if missing:
            raise ValueError(f"{path} has no {missing}; re-run the job that wrote it")
        outline = {"items": [item for item in outline["items"] if _unkey(item[0]) in keys]}
    return _rebuild(outline, group, resampling), attrs


def load_item(path: str | Path, item: tuple, resampling: Resampling | None = None):
    """One nested item of the dict ``save`` wrote to ``path``, e.g. ``("summary", "raw")``: only its arrays are
    read (a pair job holds one space's summaries at a time)."""
    group, attrs = _open(path)
    outline = attrs["outline"]
    for key in item:
        found = [v for k, v in outline.get("items", []) if _unkey(k) == key]
        if not found:
            raise ValueError(f"{path} has no {item!r}; re-run the job that wrote it")
        outline = found[0]
    return _rebuild(outline, group, resampling)


def attributes(path: str | Path) -> dict:
    """The attributes of the result store ``path``, without reading its arrays."""
    import zarr

    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    attrs.pop("outline", None)
    return attrs


def _outline(value, arrays: dict, path: str = "v"):
    if value is None or isinstance(value, (bool, str)):
        return {"value": value}
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return {"int": int(value)}
    if isinstance(value, (float, np.floating, np.bool_, np.ndarray)):
        arrays[path] = np.asarray(value)
        return {"array": path, "scalar": not isinstance(value, np.ndarray)}
    if isinstance(value, Resampling):
        return {"resampling": True}
    if isinstance(value, (list, tuple)):
        if _stackable(value):  # e.g. one whitening per bootstrap replicate: one array, not B small ones
            arrays[path] = np.concatenate(value, axis=-1)
            return {"ragged": path, "widths": [v.shape[-1] for v in value]}
        return {"list": [_outline(v, arrays, f"{path}/{i}") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        return {"items": [[_key(k), _outline(v, arrays, f"{path}/{i}")] for i, (k, v) in enumerate(value.items())]}
    name = type(value).__name__
    if CLASSES.get(name) is not type(value):
        raise TypeError(f"cannot store a {name}")
    attributes = {f.name: getattr(value, f.name) for f in fields(value)} if is_dataclass(value) else vars(value)
    return {"class": name, "fields": {k: _outline(v, arrays, f"{path}/{k}") for k, v in attributes.items()}}


def _stackable(values) -> bool:
    """Arrays alike but for their last axis (e.g. whitenings of different ranks): stored side by side."""
    first = values[0] if len(values) else None
    return (
        isinstance(first, np.ndarray)
        and first.ndim > 0
        and all(
            isinstance(v, np.ndarray)
            and v.ndim == first.ndim
            and v.shape[:-1] == first.shape[:-1]
            and v.dtype == first.dtype
            for v in values
        )
    )


def _key(key):
    if isinstance(key, tuple):
        return {"tuple": [_key(k) for k in key]}
    if isinstance(key, (str, bool, int)) or key is None:
        return key
    raise TypeError(f"cannot store a dict key {key!r}")


def _unkey(key):
    return tuple(_unkey(k) for k in key["tuple"]) if isinstance(key, dict) else key


def _rebuild(outline: dict, group, resampling):
    if "value" in outline:
        return outline["value"]
    if "int" in outline:
        return outline["int"]
    if "array" in outline:
        array = group[outline["array"]][...]
        array = np.asarray(array)
        return array[()] if outline["scalar"] else array
    if "resampling" in outline:
        return resampling
    if "ragged" in outline:
        joined = np.asarray(group[outline["ragged"]][...])
        return np.split(joined, np.cumsum(outline["widths"])[:-1], axis=-1)
    if "list" in outline:
        return [_rebuild(v, group, resampling) for v in outline["list"]]
    if "items" in outline:
        return {_unkey(k): _rebuild(v, group, resampling) for k, v in outline["items"]}
    cls = CLASSES[outline["class"]]
    values = {k: _rebuild(v, group, resampling) for k, v in outline["fields"].items()}
    if is_dataclass(cls):
        return cls(**values)
    obj = cls.__new__(cls)
    vars(obj).update(values)
    return obj
