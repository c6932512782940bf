"""Stage ``layers``: layer x layer similarity of the models whose embedding stores hold several layers.

Every stored layer of every given model (``platonic.embedding.layer_embedding``) is read on the anchor store's
compared atoms that all of these models embedded, projected on the anchor atoms in that same layer, and compared
with every other layer (``platonic.compare.layers``), within a model and across models.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from platonic.settings import LayerSettings, SimilaritySettings
from platonic.stages.common import atom_counts, compared_mask, valid_mask, write_rows

log = logging.getLogger("platonic")


def run(
    embeddings: list[str], anchors: str, output: str, table: str, settings: SimilaritySettings,
    layers: LayerSettings, heatmaps: str | None = None, depth: str | None = None, also: tuple[str, ...] = (),
) -> None:  # fmt: skip
    """Layer store ``output``, its CSV ``table`` and the figures ``heatmaps`` (layer x layer, per model pair) and
    ``depth`` (each layer against its own last layer and the other models' best match), from the multi-layer
    embedding stores ``embeddings``; the atoms, draws and resampling are ``settings``' (similarity's), the metrics
    ``layers.metrics``."""
    from platonic.compare.layers import Layer, layer_similarity, layer_table
    from platonic.embedding import layer_embedding, store_layers
    from platonic.projection import anchor_projection
    from platonic.spaces import model_spaces
    from platonic.stages.fan_in import open_anchors, row_weights, structure_numbers
    from platonic.store import open_store, write_store

    anchor_store = open_anchors(anchors, settings)
    stores = {}
    for path in embeddings:
        store = open_store(path, dask=False)
        model = store.attrs["model"]
        if store.attrs["structure_set_hash"] != anchor_store.attrs["structure_set_hash"]:
            raise ValueError(f"{path} was embedded from another structure set than the anchors; re-run embed")
        if not store_layers(store):
            raise ValueError(
                f"{path} ({model}) holds one layer; give models.{model}.layers (all or a list) to compare its layers"
            )
        stores[model] = store
    mask = compared_mask(anchor_store, stores)
    rows, anchor_rows = np.flatnonzero(mask), anchor_store["anchor_atom"].values
    features = {}
    for model, store in stores.items():
        for index, name in sorted(store_layers(store).items()):
            variable = layer_embedding(store, index)
            x, at_anchors = variable.isel(atom=rows).values, variable.isel(atom=anchor_rows).values
            if not np.isfinite(at_anchors).all():
                raise ValueError(f"{model} did not embed every anchor atom in layer {name}; re-run project/anchors")
            features[Layer(model, index, name)] = model_spaces(x, anchor_projection(x, at_anchors))
        log.info("%s: %d layers on %d atoms", model, len(store_layers(store)), len(rows))
    first = next(iter(stores.values()))
    wanted = dataclasses.replace(settings, metrics=tuple(layers.metrics), threads=layers.threads)
    ds = layer_similarity(
        features, structure_numbers(first, mask), wanted, weights=row_weights(anchor_store, mask, settings)
    )
    ds.attrs.update(
        kind="layer similarity",
        anchor_set_hash=anchor_store.attrs["anchor_set_hash"],
        structure_set_hash=anchor_store.attrs["structure_set_hash"],
        n_anchors=int(anchor_store.sizes["anchor"]),
        **atom_counts(anchor_store, valid_mask(stores)),
    )
    write_store(ds, output)
    write_rows(table, layer_table(ds))
    log.info("%d layers of %d models -> %s", len(features), len(stores), output)
    if heatmaps or depth:
        from platonic.compare.layers import depth_curves
        from platonic.figures import layer_depth_figure, layer_heatmaps, save_figure

        suffixes = tuple(f".{s}" for s in also)
        if heatmaps:
            save_figure(layer_heatmaps(ds, wanted.metrics[0]), heatmaps, also=suffixes)
        if depth:
            save_figure(layer_depth_figure(depth_curves(ds, wanted.metrics[0])), depth, also=suffixes)
