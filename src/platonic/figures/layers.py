"""The layer section: layer x layer heatmaps and agreement by depth (``platonic.compare.layers``)."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from platonic.compare.registry import SIMILARITIES
from platonic.compare.registry import label as metric_label
from platonic.figures.style import SPACE_LABELS, model_colours, short_name

__all__ = ["layer_heatmaps", "layer_depth_figure"]


def layer_heatmaps(ds: xr.Dataset, metric: str, pairs_per_row: int = 2) -> plt.Figure:
    """Layer x layer heatmaps of a layer store (``platonic.compare.layers``): for every pair of models (a model with
    itself included, in the store's order) a raw-space and a shared-space panel side by side, ``pairs_per_row``
    pairs to a row; rows of a panel are model A's layers from the first (bottom) to the last, columns model B's,
    each cell's value annotated up to 12 layers a side. Dark means different."""
    data = ds["similarity"].sel(metric=metric)
    models = list(dict.fromkeys(str(m) for m in ds["model_a"].values))
    pairs = list(itertools.combinations_with_replacement(models, 2))
    spaces = [str(s) for s in data.space.values]
    similar = metric in SIMILARITIES
    finite = data.values[np.isfinite(data.values)]
    vmax = 1.0 if similar or finite.size == 0 else max(float(finite.max()), 1e-12)
    cmap = "cividis" if similar else "cividis_r"
    largest = max(int((ds["model_a"].values == m).sum()) for m in models)
    size = max(2.8, 0.45 * largest + 1.8)
    per_row = max(1, min(pairs_per_row, len(pairs)))
    n_rows = -(-len(pairs) // per_row)
    fig, axes = plt.subplots(
        n_rows, per_row * len(spaces), figsize=(size * per_row * len(spaces) + 1.0, size * n_rows), squeeze=False,
        constrained_layout=True,
    )  # fmt: skip
    image = None
    for ax in axes.ravel()[len(pairs) * len(spaces) :]:
        ax.set_visible(False)
    for p, (a, b) in enumerate(pairs):
        rows = np.flatnonzero(ds["model_a"].values == a)
        columns = np.flatnonzero(ds["model_b"].values == b)
        rows = rows[np.argsort(ds["depth_a"].values[rows], kind="stable")]
        columns = columns[np.argsort(ds["depth_b"].values[columns], kind="stable")]
        for s, space in enumerate(spaces):
            ax = axes[p // per_row, (p % per_row) * len(spaces) + s]
            values = data.sel(space=space).values[np.ix_(rows, columns)]
            image = ax.imshow(values, vmin=0.0, vmax=vmax, cmap=cmap, origin="lower")
            ax.set_xticks(range(len(columns)), [str(k) for k in ds["layer_index_b"].values[columns]], fontsize=7)
            ax.set_yticks(range(len(rows)), [str(k) for k in ds["layer_index_a"].values[rows]], fontsize=7)
            ax.set_xlabel(f"{short_name(b, 28)} layer", fontsize=7)
            ax.set_ylabel(f"{short_name(a, 28)} layer", fontsize=7)
            ax.set_title(SPACE_LABELS.get(space, space), fontsize=8)
            if max(values.shape) <= 12:
                ink = np.where(values / vmax > 0.6 if similar else values / vmax < 0.4, "black", "white")
                for i, j in np.ndindex(values.shape):
                    if np.isfinite(values[i, j]):
                        ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6, color=ink[i, j])
    fig.colorbar(image, ax=list(axes.ravel()), shrink=0.6, label=metric_label(metric))
    names = "; ".join(
        f"{m}: " + ", ".join(f"{int(k)} {n}" for k, n in zip(ds["layer_index_a"].values[ds["model_a"].values == m],
                                                               ds["layer_name_a"].values[ds["model_a"].values == m],
                                                               strict=True))
        for m in models
    )  # fmt: skip
    fig.suptitle(
        f"{metric_label(metric)} between layers ({ds.attrs.get('n_atoms', '?')} atoms; first layer at the bottom"
        f" left)\n{short_name(names, 150)}",
        fontsize=9,
    )
    return fig


def layer_depth_figure(curves: xr.Dataset) -> plt.Figure:
    """Does agreement grow with depth? ``curves`` (``platonic.compare.layers.depth_curves``) per space: each model's
    layers (x: relative depth, 0 first, 1 last) against its own last layer (solid, with its 95 % interval where
    given) and the mean of their best matches in the other models (dashed)."""
    metric = curves.attrs["metric"]
    models = list(dict.fromkeys(str(m) for m in curves["model"].values))
    colours = model_colours(models)
    spaces = [str(s) for s in curves.space.values]
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.2 * len(spaces), 3.4), squeeze=False, constrained_layout=True)
    for ax, space in zip(axes[0], spaces, strict=True):
        at_space = curves.sel(space=space)
        for model in models:
            layers = curves["model"].values == model
            depth = curves["depth"].values[layers]
            ax.plot(depth, at_space["to_last"].values[layers], "-o", color=colours[model], markersize=3,
                    label=f"{model}: to its last")  # fmt: skip
            if "ci_low" in curves:
                low, high = at_space["ci_low"].values[layers], at_space["ci_high"].values[layers]
                ax.fill_between(depth, low, high, color=colours[model], alpha=0.15, linewidth=0)
            if "best_of_others" in curves:
                ax.plot(depth, at_space["best_of_others"].values[layers], "--", color=colours[model], linewidth=1,
                        label=f"{model}: best layer of the others")  # fmt: skip
        ax.set_xlabel("relative depth of the layer (0 first stored, 1 last)", fontsize=8)
        ax.set_ylabel(metric_label(metric), fontsize=8)
        ax.set_title(SPACE_LABELS.get(space, space), fontsize=9)
        if metric in SIMILARITIES:
            ax.set_ylim(0, 1.02)
    axes[0, -1].legend(fontsize=6, loc="best")
    fig.suptitle(f"{metric_label(metric)} by depth ({curves.attrs.get('n_atoms', '?')} atoms)", fontsize=10)
    return fig
