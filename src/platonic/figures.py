"""Comparison figures: model x model heatmaps, raw and anchor space side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

METRIC_LABELS = {
    "linear_cka": "linear CKA",
    "debiased_cka": "debiased linear CKA",
    "mutual_knn": "mutual k-NN alignment",
    "cknna": "CKNNA",
    "svcca": "SVCCA",
    "procrustes": "Procrustes angular distance (rad)",
    "distance_correlation": "distance correlation",
    "optimal_transport": "2-Wasserstein distance",
    "information_imbalance": "information imbalance (row -> column)",
    "gfre": "GFRE (row predicts column)",
    "lfre": "LFRE (row predicts column)",
}
# metrics where larger means more alike; the others are distances or errors (0 = identical)
SIMILARITY_METRICS = {"linear_cka", "debiased_cka", "mutual_knn", "cknna", "svcca", "distance_correlation"}
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
    similar = metric in SIMILARITY_METRICS
    # one colour scale for both panels; dark always means "different"
    finite = data.values[np.isfinite(data.values)]
    vmax = 1.0 if similar or finite.size == 0 else max(float(finite.max()), 1e-12)
    cmap = "cividis" if similar else "cividis_r"
    for ax, space in zip(axes, spaces, strict=True):
        values = data.sel(space=space).values
        image = ax.imshow(values, vmin=0.0, vmax=vmax, cmap=cmap)
        ax.set_xticks(range(len(models)), models, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.set_title(SPACE_LABELS.get(space, space), fontsize=10)
        if len(models) <= 12:
            for i in range(len(models)):
                for j in range(len(models)):
                    if np.isfinite(values[i, j]):
                        light = values[i, j] / vmax > 0.6 if similar else values[i, j] / vmax < 0.4
                        colour = "black" if light else "white"
                        ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label=METRIC_LABELS.get(metric, metric))
    suffix = f", k = {ds.attrs['k']}" if metric in ("mutual_knn", "cknna") and "k" in ds.attrs else ""
    n_atoms = ds.attrs.get("n_atoms", "?")
    used = int(ds["n_samples"].sel(metric=metric)) if "n_samples" in ds else n_atoms
    atoms = f"{n_atoms} atoms" if used == n_atoms else f"{used} of {n_atoms} atoms"
    fig.suptitle(f"{METRIC_LABELS.get(metric, metric)} ({atoms}{suffix})", fontsize=11)
    return fig


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=200)
    plt.close(fig)
    return path
