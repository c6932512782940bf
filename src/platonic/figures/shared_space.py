"""The shared-space section: 2-D maps of the atoms in the anchor space, periodic trends of the element means,
intrinsic dimensions and embedding norms."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from platonic.figures.style import SPACE_HATCH, SPACE_LABELS, model_colours, panel_grid, short_name

__all__ = ["shared_space_maps", "periodic_trends", "model_statistics"]


def shared_space_maps(maps: xr.DataArray, atomic_numbers: np.ndarray) -> plt.Figure:
    """The 2-D maps ``maps (reduction, model, atom, axis)`` (``platonic.atom_maps.joint_maps``: fitted on every model
    jointly, so positions are comparable across panels), one row of panels per method and one panel per model,
    each atom coloured by the periodic-table group of ``atomic_numbers (atom,)``."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    from platonic.elements import F_BLOCK, GROUP_LABELS, periodic_group

    models = [str(m) for m in maps.model.values]
    methods = [str(m) for m in maps.reduction.values]
    groups = periodic_group(atomic_numbers)
    cmap = ListedColormap(plt.get_cmap("viridis")(np.linspace(0, 1, F_BLOCK)))
    norm = BoundaryNorm(np.arange(0.5, F_BLOCK + 1.5), cmap.N)
    columns = min(len(models), 4)
    rows_per_method = int(np.ceil(len(models) / columns))
    n_rows = rows_per_method * len(methods)
    fig, axes = plt.subplots(
        n_rows, columns, figsize=(2.9 * columns + 1.0, 2.9 * n_rows + 0.7), constrained_layout=True, squeeze=False
    )
    n = len(groups)
    image = None
    for row_block, method in enumerate(methods):
        mapped = maps.sel(reduction=method).values  # (model, atom, axis)
        low, high = mapped.min(axis=(0, 1)), mapped.max(axis=(0, 1))
        pad = 0.04 * np.maximum(high - low, 1e-9)
        for k, model in enumerate(models):
            ax = axes[row_block * rows_per_method + k // columns, k % columns]
            xy = mapped[k]
            image = ax.scatter(xy[:, 0], xy[:, 1], c=groups, cmap=cmap, norm=norm, s=3, linewidths=0, rasterized=True)
            ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
            ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
            ax.set_title(short_name(model, 30), fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{method.upper()} 1", fontsize=7)
            ax.set_ylabel(f"{method.upper()} 2", fontsize=7)
        for k in range(len(models), rows_per_method * columns):
            axes[row_block * rows_per_method + k // columns, k % columns].set_visible(False)
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, ticks=range(1, F_BLOCK + 1))
    bar.ax.set_yticklabels([GROUP_LABELS[g] for g in range(1, F_BLOCK + 1)], fontsize=7)
    bar.set_label("periodic-table group (f = La-Lu, Ac-Lr)", fontsize=8)
    methods_text = " and ".join(m.upper() for m in methods)
    note = "" if "umap" in methods else "; UMAP: install umap-learn"
    fig.suptitle(
        f"Shared anchor space ({maps.attrs['n_anchors']} anchors), {methods_text} fitted on all models jointly; "
        f"the same {n} atoms in every panel{note}",
        fontsize=9,
    )
    return fig


def periodic_trends(
    trends: xr.Dataset,
    counts: np.ndarray | None = None,
    intervals: dict[str, tuple[float, float]] | None = None,
) -> plt.Figure:
    """Element x element cosine similarity of each model's per-element mean embedding, ordered by group then Z:
    ``trends`` (``platonic.elements.trend_matrices``: ``cosine (model, element_a, element_b)``, ``r (model)``).

    Each panel after the first gives its r with the first model's, and ``intervals[model]`` (low, high) beside it
    where given and finite (the structure bootstrap's 95 % interval, ``platonic.elements.periodic_trend_bootstrap``);
    ``counts`` (n_elements,): the atoms behind each element's mean (their total in the title).
    """
    from ase.data import chemical_symbols

    from platonic.elements import GROUP_LABELS, periodic_group

    models = [str(m) for m in trends.model.values]
    ordered = trends.element_a.values
    matrices = {m: trends["cosine"].sel(model=m).values for m in models}
    n = len(ordered)
    off_diagonal = ~np.eye(n, dtype=bool)
    vmin = min(float(v[off_diagonal].min()) if n > 1 else 0.0 for v in matrices.values())
    panel = float(np.clip(0.04 * n + 2.4, 3.0, 4.4))
    fig, axes = panel_grid(len(models), 4, panel, extra_width=0.8)
    groups = periodic_group(ordered)
    if n <= 40:  # room for every element's symbol
        ticks, labels, font = list(range(n)), [chemical_symbols[z] for z in ordered], 7.0
    else:  # one label per group block
        starts = np.flatnonzero(np.r_[True, np.diff(groups) != 0])
        ends = np.r_[starts[1:], n]
        ticks = list((starts + ends - 1) / 2)
        labels, font = [GROUP_LABELS[g] for g in groups[starts]], 6.0
    boundaries = np.flatnonzero(np.diff(groups)) + 0.5
    intervals = {m: (low, high) for m, (low, high) in (intervals or {}).items() if np.isfinite([low, high]).all()}
    image = None
    for ax, model in zip(axes, models, strict=True):
        image = ax.imshow(matrices[model], cmap="cividis", vmin=min(vmin, 0.0), vmax=1.0, interpolation="nearest")
        for b in boundaries:
            ax.axhline(b, color="white", lw=0.4)
            ax.axvline(b, color="white", lw=0.4)
        ax.set_xticks(ticks, labels, rotation=90 if n <= 40 else 0, fontsize=font)
        ax.set_yticks(ticks, labels, fontsize=font)
        ax.tick_params(length=0 if n > 40 else 2)
        title = short_name(model, 30)
        if model != models[0] and n > 2:
            r = float(trends["r"].sel(model=model))
            interval = " [{:.2f}, {:.2f}]".format(*intervals[model]) if model in intervals else ""
            title += f"\nr = {r:.2f}{interval} vs {short_name(models[0], 30)}"
        ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=list(axes), shrink=0.5, aspect=30, label="cosine similarity of element means")
    atoms = f", {int(np.sum(counts))} atoms" if counts is not None else ""
    bracket = "; r [95 % interval over resampled structures]" if intervals else ""
    fig.suptitle(
        f"Periodic trends: cosine similarity of per-element mean embeddings ({n} elements{atoms});"
        f" ordered by periodic-table group{' (axis labels; f = La-Lu, Ac-Lr)' if n > 40 else ''}, then Z{bracket}",
        fontsize=10,
    )
    return fig


def model_statistics(intrinsic_dimension: xr.DataArray, norms: dict[str, np.ndarray]) -> plt.Figure:
    """Left: TwoNN intrinsic dimension (space, model) per model and space; right: per-atom norms.

    ``norms[model]`` (n_atoms,) the Euclidean norm of each atom's raw embedding.
    """
    models = [str(m) for m in intrinsic_dimension.model.values]
    colours = model_colours(models)
    spaces = [str(s) for s in intrinsic_dimension.space.values]
    width = max(7.0, 0.9 * len(models) + 3.0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(width, 4.2), constrained_layout=True)
    bar_width = 0.8 / max(len(spaces), 1)
    x = np.arange(len(models))
    for s, space in enumerate(spaces):
        values = intrinsic_dimension.sel(space=space).values
        left.bar(
            x + (s - (len(spaces) - 1) / 2) * bar_width, np.nan_to_num(values), bar_width,
            color=[colours[m] for m in models], hatch=SPACE_HATCH.get(space, ""), edgecolor="white",
            label=SPACE_LABELS.get(space, space),
        )  # fmt: skip
    left.set_xticks(x, [short_name(m) for m in models], rotation=45, ha="right", fontsize=7)
    left.set_ylabel("TwoNN intrinsic dimension", fontsize=8)
    left.set_title("intrinsic dimension", fontsize=9)
    legend = left.legend(fontsize=7, frameon=False)
    for handle in legend.legend_handles:
        handle.set_facecolor("0.6")
    data = [np.asarray(norms[m], dtype=np.float64) for m in models]
    parts = right.boxplot(data, positions=x, widths=0.6, showfliers=False, patch_artist=True)
    for box, model in zip(parts["boxes"], models, strict=True):
        box.set_facecolor(colours[model])
        box.set_alpha(0.8)
    for median in parts["medians"]:
        median.set_color("black")
    medians = [float(np.median(d)) for d in data if d.size]
    if medians and min(medians) > 0 and max(medians) / min(medians) > 20:
        right.set_yscale("log")
    right.set_xticks(x, [short_name(m) for m in models], rotation=45, ha="right", fontsize=7)
    right.set_ylabel("per-atom embedding norm (raw space)", fontsize=8)
    right.set_title("embedding norms (box: quartiles, whiskers: 1.5 IQR)", fontsize=9)
    n_atoms = data[0].size if data else 0
    fig.suptitle(f"Per-model intrinsic dimension and embedding norms ({n_atoms} atoms)", fontsize=10)
    return fig
