"""Figures of the shared-space analyses: the source x target transfer matrices (raw vs anchor space)
and the per-element departure of each model from the others. Functions return matplotlib Figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

SPACE_TITLES = {"raw": "raw latent spaces", "anchor": "shared anchor space"}


def transfer_heatmaps(ds: xr.Dataset, head: str = "ridge") -> plt.Figure:
    """One row per target, one column per space: the head fitted on the row model, scored (R^2 or
    accuracy) on the column model's test structures. Grey cells: the head cannot read that model."""
    targets = [str(t) for t in ds["target"].values]
    spaces = [str(s) for s in ds["space"].values]
    models = [str(m) for m in ds["source_model"].values]
    size = 0.42 * len(models) + 2.2
    fig, axes = plt.subplots(
        len(targets), len(spaces), figsize=(size * len(spaces), size * len(targets)), squeeze=False
    )
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    for i, target in enumerate(targets):
        classify = str(ds["target_kind"].values[i]) == "atom classification"
        metric = "accuracy" if classify else "r2"
        for j, space in enumerate(spaces):
            ax = axes[i, j]
            values = ds["score"].sel(head=head, space=space, target=target, metric=metric).values
            shown = np.clip(values, 0.0, 1.0)  # R^2 far below 0 (a head reading foreign columns) saturates
            image = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=0.0, vmax=1.0)
            for (a, b), value in np.ndenumerate(values):
                if np.isfinite(value):
                    text = f"{value:.2f}" if value > -10 else "<-10"
                    ax.text(b, a, text, ha="center", va="center", fontsize=6, color="w" if shown[a, b] < 0.6 else "k")
            ax.set_xticks(range(len(models)), models if i == len(targets) - 1 else [], rotation=90, fontsize=7)
            ax.set_yticks(range(len(models)), models if j == 0 else [], fontsize=7)
            ax.set_title(f"{target} ({'accuracy' if classify else 'R²'}), {SPACE_TITLES.get(space, space)}", fontsize=8)
            if j == 0:
                ax.set_ylabel("head fitted on", fontsize=8)
            if i == len(targets) - 1:
                ax.set_xlabel("applied to", fontsize=8)
        fig.colorbar(image, ax=axes[i, :].tolist(), shrink=0.8)
    return fig


def departure_heatmap(ds: xr.Dataset) -> plt.Figure:
    """Model x element z-score of each model's distance to the consensus against the other models'
    (elements with at least ``min_atoms`` atoms, in order of Z); flagged cells are outlined."""
    keep = ds["element_count"].values >= ds.attrs["min_atoms"]
    departure = ds["departure"].values[:, keep]
    flagged = ds["flagged"].values[:, keep]
    symbols = [str(s) for s in ds["symbol"].values[keep]]
    models = [str(m) for m in ds["model"].values]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.17 * len(symbols) + 2.5), 0.35 * len(models) + 1.6))
    limit = max(float(ds.attrs["departure_threshold"]) * 1.5, 1.0)
    image = ax.imshow(np.ma.masked_invalid(departure), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for a, b in zip(*np.nonzero(flagged), strict=True):
        ax.add_patch(plt.Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False, edgecolor="k", linewidth=1.5))
    ax.set_xticks(range(len(symbols)), symbols, rotation=90, fontsize=6)
    ax.set_yticks(range(len(models)), models, fontsize=7)
    ax.set_title(
        "departure from the other models per element"
        f" (z-score; outlined: flagged, z > {ds.attrs['departure_threshold']:g})",
        fontsize=8,
    )
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path
