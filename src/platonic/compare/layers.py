"""Layer x layer similarity: every stored layer of every multi-layer model against every other, in every space.

Each (model, layer) is compared as the fan-in compares a model (``platonic.compare.similarity``): the same atoms,
the same draws (subsample, queries, bootstrap structures, permutations, all from ``similarity.seed``), each metric
with its structure-bootstrap interval and chance level. In the shared space every layer is projected on the same
anchor atoms (its cosine to the anchors' features in that layer), so a layer of one model and a layer of another
have the same columns. The store is the similarity store with ``layer_a``/``layer_b`` for ``model_a``/``model_b``
(labels ``<model>/<layer name>``), each layer's model, index, name and relative depth as coordinates, and for
every layer of A and every model B the layer of B that matches it best (``best_layer``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from platonic.settings import SimilaritySettings


@dataclass(frozen=True)
class Layer:
    """One stored layer: its ``model``, its ``index`` (what ``layer: index`` takes) and its ``name``."""

    model: str
    index: int
    name: str

    @property
    def label(self) -> str:
        return f"{self.model}/{self.name}"


def layer_similarity(
    layers: dict[Layer, dict[str, np.ndarray]],
    structure_index: np.ndarray | None = None,
    settings: SimilaritySettings | None = None,
    weights: np.ndarray | None = None,
) -> xr.Dataset:
    """Every wanted metric for every pair of ``layers`` (``{Layer: {space: features (N, d)}}``, the same N atoms
    in every array; a model's layers in depth order), a layer with itself included. Returns the similarity
    store's variables (``platonic.compare.similarity.assemble``) over ``(metric, space, layer_a, layer_b)``, with
    coordinates ``model_a``, ``layer_index_a``, ``layer_name_a``, ``depth_a`` (and ``_b``; depth 0 is a model's
    first stored layer, 1 its last), and ``best_layer``/``best_similarity``/``best_depth`` ``(metric, space,
    layer_a, other)``: the layer of model ``other`` most similar to ``layer_a``."""
    from platonic.compare.similarity import pairwise_similarity

    items = list(layers)
    if len({item.label for item in items}) != len(items):
        raise ValueError(f"layer labels repeat: {[item.label for item in items]}")
    spaces = list(next(iter(layers.values())))
    features = {space: {item.label: layers[item][space] for item in items} for space in spaces}
    ds = pairwise_similarity(features, structure_index, settings, weights=weights)
    ds = ds.rename({"model_a": "layer_a", "model_b": "layer_b", "model": "layer"})
    depth = _depths(items)
    by_label = {item.label: item for item in items}
    for suffix, dim in (("_a", "layer_a"), ("_b", "layer_b"), ("", "layer")):
        order = [by_label[str(label)] for label in ds[dim].values]
        ds = ds.assign_coords(
            {
                f"model{suffix}": (dim, [item.model for item in order]),
                f"layer_index{suffix}": (dim, np.array([item.index for item in order], dtype=np.int64)),
                f"layer_name{suffix}": (dim, [item.name for item in order]),
                f"depth{suffix}": (dim, np.array([depth[item] for item in order])),
            }
        )
    ds["similarity"].attrs["description"] = "metric(layer_a, layer_b): each (model, layer) compared as a model"
    return best_matches(ds)


def _depths(items: list[Layer]) -> dict[Layer, float]:
    """Each layer's position among its model's stored layers (by index), 0 for the first and 1 for the last."""
    out = {}
    for model in dict.fromkeys(item.model for item in items):
        own = sorted((item for item in items if item.model == model), key=lambda item: item.index)
        for position, item in enumerate(own):
            out[item] = position / (len(own) - 1) if len(own) > 1 else 1.0
    return out


def best_matches(ds: xr.Dataset) -> xr.Dataset:
    """Add, for every layer of A and every model ``other``, the layer of ``other`` with the highest similarity
    (``best_layer``: its name; ``best_similarity``, ``best_depth``; NaN/"" where every value is NaN)."""
    models = list(dict.fromkeys(str(m) for m in ds["model_b"].values))
    values = ds["similarity"].values  # (metric, space, layer_a, layer_b)
    shape = (*values.shape[:3], len(models))
    best_value, best_depth = np.full(shape, np.nan), np.full(shape, np.nan)
    best_name = np.full(shape, "", dtype=object)
    names, depths = ds["layer_name_b"].values, ds["depth_b"].values
    for j, model in enumerate(models):
        columns = np.flatnonzero(ds["model_b"].values == model)
        block = values[..., columns]
        finite = np.isfinite(block).any(axis=-1)
        choice = np.argmax(np.where(np.isfinite(block), block, -np.inf), axis=-1)
        best_value[..., j] = np.where(finite, np.take_along_axis(block, choice[..., None], axis=-1)[..., 0], np.nan)
        best_depth[..., j] = np.where(finite, depths[columns][choice], np.nan)
        best_name[..., j] = np.where(finite, names[columns][choice], "")
    dims = ("metric", "space", "layer_a", "other")
    ds = ds.assign_coords(other=models)
    ds["best_layer"] = (dims, best_name)
    ds["best_layer"].attrs["description"] = "the layer of model `other` most similar to layer_a (by the metric)"
    ds["best_similarity"] = (dims, best_value)
    ds["best_similarity"].attrs["description"] = "the metric between layer_a and best_layer"
    ds["best_depth"] = (dims, best_depth)
    ds["best_depth"].attrs["description"] = "best_layer's relative depth in `other` (0 first stored layer, 1 last)"
    return ds


def layer_table(ds: xr.Dataset) -> list[dict]:
    """Tidy rows (one per metric, space and ordered pair of layers) for the CSV next to the store."""
    extra = [name for name in ("standard_error", "ci_low", "ci_high", "chance") if name in ds]
    rows = []
    for i, metric in enumerate(ds["metric"].values):
        for j, space in enumerate(ds["space"].values):
            for a in range(ds.sizes["layer_a"]):
                for b in range(ds.sizes["layer_b"]):
                    rows.append(
                        {
                            "metric": str(metric),
                            "space": str(space),
                            "model_a": str(ds["model_a"].values[a]),
                            "layer_a": str(ds["layer_name_a"].values[a]),
                            "depth_a": float(ds["depth_a"].values[a]),
                            "model_b": str(ds["model_b"].values[b]),
                            "layer_b": str(ds["layer_name_b"].values[b]),
                            "depth_b": float(ds["depth_b"].values[b]),
                            "value": float(ds["similarity"].values[i, j, a, b]),
                            **{name: float(ds[name].values[i, j, a, b]) for name in extra},
                        }
                    )
    return rows


def depth_curves(ds: xr.Dataset, metric: str) -> xr.Dataset:
    """Does agreement grow with depth? Per space, every layer of every model (``layer``: each model's layers in the
    store's model order, from the shallowest ``depth`` to the deepest) against its own model's last layer:
    ``to_last (space, layer)``, with ``ci_low``/``ci_high`` where the store has intervals; with more than one model,
    ``best_of_others (space, layer)``: the mean over the other models of its ``best_similarity`` (NaN ignored).
    Carries ``ds.attrs`` with ``metric`` added."""
    models = list(dict.fromkeys(str(m) for m in ds["model_a"].values))
    layers, last, best = [], [], []
    for model in models:
        rows = np.flatnonzero(ds["model_a"].values == model)
        rows = rows[np.argsort(ds["depth_a"].values[rows], kind="stable")]
        layers.append(rows)
        last.append(np.full(len(rows), rows[-1]))
        others = [m for m in models if m != model]
        if others:
            matches = ds["best_similarity"].sel(metric=metric, other=others).values[:, rows]  # (space, rows, other)
            best.append(np.nanmean(matches, axis=2))
    layers, last = np.concatenate(layers), np.concatenate(last)
    spaces = [str(s) for s in ds["similarity"].space.values]
    curves = xr.Dataset(
        {"to_last": (("space", "layer"), ds["similarity"].sel(metric=metric).values[:, layers, last])},
        coords={"space": spaces, "model": ("layer", [str(m) for m in ds["model_a"].values[layers]]),
                "depth": ("layer", ds["depth_a"].values[layers])},
        attrs={**ds.attrs, "metric": metric},
    )  # fmt: skip
    for name in ("ci_low", "ci_high"):
        if name in ds:
            curves[name] = (("space", "layer"), ds[name].sel(metric=metric).values[:, layers, last])
    if best:
        curves["best_of_others"] = (("space", "layer"), np.concatenate(best, axis=1))
    return curves
