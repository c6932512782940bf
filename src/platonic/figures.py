"""Comparison figures: model x model heatmaps, raw and anchor space side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

METRIC_LABELS = {"linear_cka": "linear CKA", "mutual_knn": "mutual k-NN alignment"}
SPACE_LABELS = {"raw": "raw latent spaces", "anchor": "shared anchor space"}


def similarity_heatmaps(ds: xr.Dataset, metric: str) -> plt.Figure:
    """One panel per space of ``ds.similarity.sel(metric=metric)`` (model x model), values annotated."""
    data = ds["similarity"].sel(metric=metric)
    models = [str(m) for m in data.model_a.values]
    spaces = [str(s) for s in data.space.values]
    size = max(3.2, 0.55 * len(models) + 1.6)
    fig, axes = plt.subplots(1, len(spaces), figsize=(size * len(spaces) + 0.8, size), constrained_layout=True)
    axes = np.atleast_1d(axes)
    image = None
    for ax, space in zip(axes, spaces, strict=True):
        values = data.sel(space=space).values
        image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="cividis")
        ax.set_xticks(range(len(models)), models, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.set_title(SPACE_LABELS.get(space, space), fontsize=10)
        if len(models) <= 12:
            for i in range(len(models)):
                for j in range(len(models)):
                    if np.isfinite(values[i, j]):
                        colour = "black" if values[i, j] > 0.6 else "white"
                        ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label=METRIC_LABELS.get(metric, metric))
    suffix = f", k = {ds.attrs['k']}" if metric == "mutual_knn" and "k" in ds.attrs else ""
    fig.suptitle(f"{METRIC_LABELS.get(metric, metric)} ({ds.attrs.get('n_atoms', '?')} atoms{suffix})", fontsize=11)
    return fig


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=200)
    plt.close(fig)
    return path
