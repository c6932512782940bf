"""Comparison figures: model x model heatmaps, agreement between spaces, the shared space, periodic trends, model trees,
and the shared-space analyses (transfer matrices, per-element departures).

Plotting functions take xarray Datasets or numpy arrays and return matplotlib Figures; ``save_figure`` writes them.
Every figure draws models in the order given and in the colour ``model_colours`` assigns to that order; the
heatmaps, the agreement figure and the model tree set control representations (``ds.control``) apart (the
heatmaps move them after the MLIPs).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from platonic.compare.registry import METRICS, SCALE_FREE, SIMILARITIES  # noqa: E402
from platonic.compare.registry import label as metric_label  # noqa: E402
from platonic.spaces import LABELS, SPACES  # noqa: E402

SPACE_LABELS = LABELS


def similarity_heatmaps(ds: xr.Dataset, metric: str) -> plt.Figure:
    """One panel per space of ``ds.similarity.sel(metric=metric)`` (model x model), values annotated.

    Models in the order given, control representations (``ds.control``) moved after the MLIPs behind a separator
    line on both axes, their tick labels grey italic with "(control)" and every cell involving one hatched. Where
    the store has bootstrap intervals (``ci_low``, ``ci_high``) each off-diagonal cell gives its 95 % interval on a
    second, smaller line. Cells are annotated up to 12 models; a value whose estimator's width ratio passes the
    store's threshold (``platonic.compare.similarity.wide``) carries a dagger.
    """
    from platonic.compare.similarity import wide

    data = ds["similarity"].sel(metric=metric)
    control = _controls(ds, data.model_a.values)
    order = np.argsort(control, kind="stable")  # MLIPs, then controls, each in the order given
    control = control[order]
    models = _model_labels(data.model_a.values[order], control)
    data = data.isel(model_a=order, model_b=order)
    marked = wide(ds).sel(metric=metric).isel(model_a=order, model_b=order)
    interval = _interval(ds, metric)
    if interval is not None:
        interval = [bound.isel(model_a=order, model_b=order) for bound in interval]
    spaces = [str(s) for s in data.space.values]
    size = max(3.2, 0.55 * len(models) + 1.6)
    fig, axes = plt.subplots(1, len(spaces), figsize=(size * len(spaces) + 0.8, size), constrained_layout=True)
    axes = np.atleast_1d(axes)
    image = None
    similar = metric in SIMILARITIES
    # one colour scale for both panels; dark always means "different"
    finite = data.values[np.isfinite(data.values)]
    vmax = 1.0 if similar or finite.size == 0 else max(float(finite.max()), 1e-12)
    cmap = "cividis" if similar else "cividis_r"
    annotate = len(models) <= 12
    for ax, space in zip(axes, spaces, strict=True):
        values = data.sel(space=space).values
        image = ax.imshow(values, vmin=0.0, vmax=vmax, cmap=cmap)
        ax.set_xticks(range(len(models)), models, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        _mark_control_ticks([*ax.get_xticklabels(), *ax.get_yticklabels()], CONTROL_COLOUR)
        ax.set_title(SPACE_LABELS.get(space, space), fontsize=10)
        # black ink on light cells, white on dark ones
        ink = np.where(values / vmax > 0.6 if similar else values / vmax < 0.4, "black", "white")
        _set_apart_controls(ax, control, ink)
        if not annotate:
            continue
        low, high = (None, None) if interval is None else (bound.sel(space=space).values for bound in interval)
        dagger = marked.sel(space=space).values
        for i, j in np.ndindex(values.shape):
            if np.isfinite(values[i, j]):
                cell = None if low is None or i == j else (low[i, j], high[i, j])
                _annotate_cell(ax, i, j, values[i, j], cell, ink[i, j], WIDE_MARK if dagger[i, j] else "")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label=metric_label(metric, ds.attrs))
    suffix = f", k = {ds.attrs['k']}" if metric in ("mutual_knn", "cknna") and "k" in ds.attrs else ""
    n_atoms = ds.attrs.get("n_atoms", "?")
    used = int(ds["n_samples"].sel(metric=metric)) if "n_samples" in ds else n_atoms
    atoms = f"{n_atoms} atoms" if used == n_atoms else f"{used} of {n_atoms} atoms"
    anchors = f"; {ds.attrs['n_anchors']} anchors" if "n_anchors" in ds.attrs else ""
    notes = []
    if annotate and interval is not None:
        notes.append(f"second line: 95 % interval, {ds.attrs.get('bootstrap', '?')} structure-bootstrap resamples")
    if control.any():
        notes.append("after the line, hatched: control representations")
    if annotate and marked.values.any():
        notes.append(f"{WIDE_MARK}: {wide_note(metric, ds.attrs['width_ratio_threshold'])}")
    note = "\n" + "; ".join(notes) if notes else ""
    fig.suptitle(f"{metric_label(metric, ds.attrs)} ({atoms}{suffix}{anchors}){note}", fontsize=11)
    return fig


WIDE_MARK = "\u2020"  # a dagger: the value's estimator leans on its width ratio (``platonic.compare.similarity.wide``)


def wide_note(metric: str, threshold: float) -> str:
    """Why a cell of ``metric`` carries ``WIDE_MARK``: its ratio and what guards the estimator there."""
    ratio = {
        "gfre": "source width / training atoms",
        "lfre": "source width / neighbours",
        "svcca": "directions for 99 % of the variance / atoms",
    }.get(metric, "width ratio")
    guard = "its directions capped" if metric == "svcca" else "its ridge chosen by cross-validation"
    return f"{ratio} above {threshold:g}: the value leans on its estimator ({guard})"


def _annotate_cell(ax, i: int, j: int, value: float, interval: tuple[float, float] | None, colour: str,
                   mark: str = "") -> None:  # fmt: skip
    """Heatmap cell (i, j): its value (followed by ``mark``), and below it in smaller type its interval [low, high]
    where that is finite."""
    if interval is None or not np.isfinite(interval).all():
        ax.text(j, i, f"{value:.2f}{mark}", ha="center", va="center", fontsize=7, color=colour)
        return
    ax.text(j, i - 0.13, f"{value:.2f}{mark}", ha="center", va="center", fontsize=7, color=colour)
    low, high = interval
    ax.text(j, i + 0.22, f"[{low:.2f}, {high:.2f}]", ha="center", va="center", fontsize=4.5, color=colour)


def save_figure(fig: plt.Figure, path: str | Path, also: tuple[str, ...] = ()) -> Path:
    """Write ``fig`` to ``path`` (format from its suffix) and to the same name with each suffix in ``also``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target in [path, *(path.with_suffix(suffix) for suffix in also)]:
        # a fixed date keeps SVG/PDF output identical between runs
        metadata = {"Date": None} if target.suffix in (".svg", ".pdf") else None
        fig.savefig(target, dpi=200, metadata=metadata, bbox_inches="tight")
    plt.close(fig)
    return path


# Okabe & Ito (2008) colour-blind-safe palette (yellow last: weak on white), then Paul Tol's "muted" scheme
MODEL_PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442",
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499",
)  # fmt: skip
SPACE_HATCH = {"raw": "", "unit": "..", "anchor": "//"}


def model_colours(models) -> dict[str, str]:
    """One fixed colour per model, by position in ``models`` (the configured order); cycles past 17 models."""
    return {str(m): MODEL_PALETTE[i % len(MODEL_PALETTE)] for i, m in enumerate(models)}


# control representations (``ds.control``): "(control)" labels, grey italic in heatmaps; hatched the other way
# from SPACE_HATCH's anchor space
CONTROL_SUFFIX = " (control)"
CONTROL_COLOUR = "0.45"
CONTROL_HATCH = "\\"


def _controls(ds: xr.Dataset, models) -> np.ndarray:
    """``ds.control`` of each of ``models`` (True: a control representation); all False in a store without it."""
    if "control" not in ds:
        return np.zeros(len(models), dtype=bool)
    return ds["control"].sel(model=[str(m) for m in models]).values.astype(bool)


def _model_labels(models, control: np.ndarray) -> list[str]:
    """Each model's name, with ``CONTROL_SUFFIX`` on the controls."""
    return [f"{m}{CONTROL_SUFFIX}" if c else str(m) for m, c in zip(models, control, strict=True)]


def _mark_control_ticks(ticks, colour: str | None = None) -> None:
    """Italic, and in ``colour`` if given, the tick labels that name a control (end in ``CONTROL_SUFFIX``)."""
    for tick in ticks:
        if tick.get_text().endswith(CONTROL_SUFFIX):
            tick.set_fontstyle("italic")
            if colour is not None:
                tick.set_color(colour)


def _set_apart_controls(ax, control: np.ndarray, ink: np.ndarray) -> None:
    """On a model x model image whose controls come last: every cell involving a control hatched in its faded
    ``ink`` colour (n, n), and a separator line between the last MLIP and the first control on both axes."""
    n = len(control)
    for i, j in np.ndindex(n, n):
        if control[i] or control[j]:
            # the hatch takes the edge colour (matplotlib < 3.10 has no hatchcolor); the edge itself is not drawn
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch=CONTROL_HATCH,
                                       edgecolor=matplotlib.colors.to_rgba(ink[i, j], 0.35), linewidth=0,
                                       gid="control"))  # fmt: skip
    n_mlips = int(np.sum(~control))
    if 0 < n_mlips < n:
        ax.axhline(n_mlips - 0.5, color="black", linewidth=1.5, gid="control separator")
        ax.axvline(n_mlips - 0.5, color="black", linewidth=1.5, gid="control separator")


def _interval(ds: xr.Dataset, metric: str) -> tuple[xr.DataArray, xr.DataArray] | None:
    """``ci_low`` and ``ci_high`` of ``metric`` (space, model_a, model_b); None where the store has no finite one."""
    if "ci_low" not in ds or "ci_high" not in ds:
        return None
    low, high = ds["ci_low"].sel(metric=metric), ds["ci_high"].sel(metric=metric)
    return (low, high) if (np.isfinite(low.values) & np.isfinite(high.values)).any() else None


def _short(name: str, width: int = 24) -> str:
    """A model name wrapped onto lines of at most ``width`` characters (long names stay readable in titles)."""
    import textwrap

    return "\n".join(textwrap.wrap(str(name), width, break_on_hyphens=True)) or str(name)


def _grid(n_panels: int, max_columns: int, panel: float, extra_width: float = 0.0):
    columns = max(1, min(n_panels, max_columns))
    rows = int(np.ceil(n_panels / columns))
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(panel * columns + extra_width, panel * rows + 0.6),
        constrained_layout=True,
        squeeze=False,
    )
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, axes.flat[:n_panels]


def _pairs(ds: xr.Dataset, metric: str) -> list[tuple[int, int]]:
    n = ds.sizes["model_a"]
    directed = metric in set(ds.attrs.get("directed_metrics", ()))
    return [(i, j) for i in range(n) for j in range(n) if (i != j if directed else i < j)]


def agreement_steps(ds: xr.Dataset) -> list[tuple[str, str]]:
    """The (earlier, later) spaces of ``ds`` that the agreement figure sets against each other: each space against
    the one before it in ``spaces.SPACES`` (anchor vs unit: what the anchors add; unit vs raw: what normalising does),
    the last step first."""
    present = [s for s in SPACES if s in ds.space.values]
    return list(zip(present, present[1:], strict=False))[::-1]


def agreement_scatter(ds: xr.Dataset) -> plt.Figure:
    """Each space's value against the previous space's (``agreement_steps``) for every model pair: one row of panels
    per step, one panel per scale-free metric in ``ds.similarity``.

    Metrics whose values carry the units of their space (not in ``registry.SCALE_FREE``) are left out, and the title
    says so. Directed metrics (``ds.attrs['directed_metrics']``) show both directions of each pair. Pairs of two MLIPs,
    of an MLIP and a control, and of two controls (``ds.control``) differ in marker and colour; the mean shift in a
    panel's title is over the pairs of two MLIPs. Where the store has them: 95 % bootstrap intervals
    (``ci_low``, ``ci_high``) as bars on both axes, and the chance level as grey bands (vertical: the earlier space,
    horizontal: the later), each from the lowest ``chance - 2 chance_sd`` to the highest ``chance + 2 chance_sd`` of
    the plotted pairs in that space.
    """
    metrics = [str(m) for m in ds.metric.values]
    left_out = [m for m in metrics if m in METRICS and m not in SCALE_FREE]
    shown = [m for m in metrics if m not in left_out]
    steps = agreement_steps(ds)
    control = _controls(ds, ds.model_a.values)
    columns = min(max(len(shown), 1), 5)
    rows_per_step = -(-max(len(shown), 1) // columns)
    fig, axes = _grid(max(rows_per_step * columns * len(steps), 1), columns, 3.0)
    entries = {}
    for s, (earlier, later) in enumerate(steps):
        for k, metric in enumerate(shown):
            ax = axes[s * rows_per_step * columns + k]
            entries.update(_agreement_panel(ax, ds, metric, control, earlier, later))
        for ax in axes[s * rows_per_step * columns + len(shown) : (s + 1) * rows_per_step * columns]:
            ax.set_visible(False)
    if not shown:
        axes[0].text(0.5, 0.5, "no scale-free metric", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    if len(entries) > 1:
        labels = [name for name in (*PAIR_KINDS, INTERVAL_LABEL, CHANCE_LABEL) if name in entries]
        fig.legend([entries[name] for name in labels], labels, loc="outside lower center", ncols=len(labels),
                   fontsize=7, frameon=False)  # fmt: skip
    n_controls = int(control.sum())
    models = f"{len(control) - n_controls} models" + (f" and {n_controls} controls" if n_controls else "")
    uncertainty = []
    if INTERVAL_LABEL in entries:
        uncertainty.append(f"bars: 95 % intervals, {ds.attrs.get('bootstrap', '?')} structure-bootstrap resamples")
    if CHANCE_LABEL in entries:
        uncertainty.append(f"grey bands: chance level, {ds.attrs.get('permutations', '?')} structure permutations")
    notes = ["; ".join(uncertainty)] if uncertainty else []
    if left_out:
        names = ", ".join(metric_label(m, ds.attrs) for m in left_out)
        notes.append(f"left out: {names} (not scale-free: their values are in each space's own units)")
    versus = ", then ".join(f"{later} vs {earlier}" for earlier, later in steps)
    fig.suptitle(
        f"Agreement of every model pair, one row per step: {versus} space ({models},"
        f" {ds.attrs.get('n_atoms', '?')} atoms, {ds.attrs.get('n_anchors', '?')} anchors)"
        + "".join(f"\n{note}" for note in notes),
        fontsize=10,
    )
    return fig


# pairs of two MLIPs, of an MLIP and a control, of two controls: marker and colour in the agreement figure
PAIR_KINDS = ("MLIP - MLIP", "MLIP - control", "control - control")
PAIR_COLOURS = (MODEL_PALETTE[0], MODEL_PALETTE[1], CONTROL_COLOUR)
PAIR_STYLES = (
    {"marker": "o", "facecolor": PAIR_COLOURS[0], "edgecolor": "white", "linewidth": 0.4},
    {"marker": "^", "facecolor": PAIR_COLOURS[1], "edgecolor": "white", "linewidth": 0.4},
    {"marker": "s", "facecolor": "none", "edgecolor": PAIR_COLOURS[2], "linewidth": 0.9},
)
INTERVAL_LABEL = "95 % bootstrap interval"
CHANCE_LABEL = "chance (structures permuted), MLIP pairs, mean ± 2 sd"


def _agreement_panel(ax, ds: xr.Dataset, metric: str, control: np.ndarray, earlier: str = "raw",
                     later: str = "anchor") -> dict:  # fmt: skip
    """One panel of ``agreement_scatter``: ``later`` space (y) against ``earlier`` (x); returns its legend entries,
    {label: artist}."""
    pairs = np.array(_pairs(ds, metric), dtype=int).reshape(-1, 2)
    rows, columns = pairs[:, 0], pairs[:, 1]

    def at(name: str, space: str) -> np.ndarray | None:  # the value of every pair; None if the store lacks it
        return ds[name].sel(metric=metric, space=space).values[rows, columns].astype(float) if name in ds else None

    raw, anchor = at("similarity", earlier), at("similarity", later)  # x and y
    ok = np.isfinite(raw) & np.isfinite(anchor)
    ax.set_title(metric_label(metric, ds.attrs), fontsize=8)
    ax.set_xlabel(SPACE_LABELS.get(earlier, earlier), fontsize=8)
    ax.set_ylabel(SPACE_LABELS.get(later, later), fontsize=8)
    ax.tick_params(labelsize=7)
    if not ok.any():
        missing = f"{earlier} space" if np.isfinite(anchor).any() else "either space"
        ax.text(0.5, 0.5, f"not defined in\n{missing}", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return {}
    kind = control[rows].astype(int) + control[columns]
    colours = np.array(PAIR_COLOURS)[kind]
    entries, drawn, bands = {}, [raw[ok], anchor[ok]], []
    # the chance band of the MLIP pairs where there are any: a control's chance level can be far off (LFRE of the
    # element one-hot) and would hide theirs
    band_pairs = ok & (kind == 0) if (ok & (kind == 0)).any() else ok
    for space, span in ((earlier, ax.axvspan), (later, ax.axhspan)):
        band = _chance_band(at("chance", space), at("chance_sd", space), band_pairs)
        if band is not None:
            entries[CHANCE_LABEL] = span(*band, color="0.5", alpha=0.2, linewidth=0, zorder=0, gid=f"{space} chance")
            bands.append((space, band))
    # drawn as segments, not ax.errorbar: a percentile interval need not contain the value itself
    for space, segments, position in ((earlier, ax.hlines, anchor), (later, ax.vlines, raw)):
        low, high = at("ci_low", space), at("ci_high", space)
        if low is None or high is None:
            continue
        keep = ok & np.isfinite(low) & np.isfinite(high)
        if keep.any():
            segments(position[keep], low[keep], high[keep], colors=colours[keep], linewidth=0.7, alpha=0.7, zorder=1,
                     gid=f"{space} interval")  # fmt: skip
            entries[INTERVAL_LABEL] = matplotlib.lines.Line2D([], [], color="0.3", linewidth=0.7)
            drawn += [low[keep], high[keep]]
    for k, name in enumerate(PAIR_KINDS):
        keep = ok & (kind == k)
        if keep.any():
            entries[name] = ax.scatter(raw[keep], anchor[keep], s=18, zorder=2, label=name, **PAIR_STYLES[k])
    values = np.concatenate(drawn)
    low, high = float(values.min()), float(values.max())
    # a chance band joins the axes unless it would squeeze the pairs into less than a third of them; otherwise
    # the panel names it (LFRE's chance level, a local ridge fitted on unrelated neighbours, can be ~50)
    span, far = max(high - low, 1e-3), []
    for space, (start, stop) in bands:
        if start >= low - span and stop <= high + span:
            low, high = min(low, start), max(high, stop)
        else:
            far.append(f"{space} chance {start:.3g} to {stop:.3g}")
    if far:
        ax.text(0.97, 0.03, "off the axes:\n" + "\n".join(far), transform=ax.transAxes, ha="right", va="bottom",
                fontsize=6, color="0.3", gid="chance off the axes")  # fmt: skip
    pad = 0.08 * max(high - low, 1e-3)
    limits = (low - pad, high + pad)
    ax.plot(limits, limits, color="0.6", lw=0.8, zorder=0)
    ax.set_xlim(limits)
    ax.set_ylim(limits)
    ax.set_aspect("equal")
    better = "above" if metric in SIMILARITIES else "below"
    mlips = ok & (kind == 0)
    over = ", MLIP pairs" if control.any() else ""
    shift = f"{np.mean(anchor[mlips] - raw[mlips]):+.3g}" if mlips.any() else "no MLIP pair"
    ax.set_title(
        f"{metric_label(metric, ds.attrs)}\n{better} the line: closer in the {later} space\n"
        f"mean shift {later} - {earlier}{over}: {shift}",
        fontsize=7.5,
    )
    return entries


def _chance_band(chance: np.ndarray | None, sd: np.ndarray | None, keep: np.ndarray) -> tuple[float, float] | None:
    """(lowest chance - 2 sd, highest chance + 2 sd) over the pairs ``keep`` with a finite chance level (a missing
    sd counts as 0); None where there is none."""
    if chance is None:
        return None
    finite = keep & np.isfinite(chance)
    if not finite.any():
        return None
    spread = 2 * np.nan_to_num(sd[finite]) if sd is not None else 0.0
    return float(np.min(chance[finite] - spread)), float(np.max(chance[finite] + spread))


def _embed_2d(points: np.ndarray, method: str, seed: int) -> np.ndarray:
    if method == "pca":
        centred = points - points.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projected = centred @ vt[:2].T
        # a sign convention per axis, so that reruns and platforms agree
        signs = np.sign(projected[np.argmax(np.abs(projected), axis=0), range(projected.shape[1])])
        return np.pad(projected * signs, ((0, 0), (0, 2 - projected.shape[1])))
    if method == "umap":
        import umap

        reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=15, min_dist=0.3, metric="cosine")
        return reducer.fit_transform(points)
    raise ValueError(f"unknown 2-D map {method!r} (pca or umap)")


def available_maps() -> tuple[str, ...]:
    """The 2-D maps this installation can draw: PCA always, UMAP when ``umap-learn`` is installed."""
    import importlib.util

    return ("pca", "umap") if importlib.util.find_spec("umap") is not None else ("pca",)


def shared_space_maps(
    coordinates: dict[str, np.ndarray], atomic_numbers: np.ndarray, methods=("pca",), seed: int = 0
) -> plt.Figure:
    """2-D maps of the anchor coordinates (n_atoms, n_anchors) of each model, coloured by periodic-table group.

    Every model's rows are the same atoms. The map is fitted once on all models' coordinates together, so
    positions are comparable across panels; one row of panels per method (``pca``, ``umap``).
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap

    from platonic.elements import F_BLOCK, GROUP_LABELS, periodic_group

    models = list(coordinates)
    groups = periodic_group(atomic_numbers)
    cmap = ListedColormap(plt.get_cmap("viridis")(np.linspace(0, 1, F_BLOCK)))
    norm = BoundaryNorm(np.arange(0.5, F_BLOCK + 1.5), cmap.N)
    columns = min(len(models), 4)
    rows_per_method = int(np.ceil(len(models) / columns))
    n_rows = rows_per_method * len(methods)
    fig, axes = plt.subplots(
        n_rows, columns, figsize=(2.9 * columns + 1.0, 2.9 * n_rows + 0.7), constrained_layout=True, squeeze=False
    )
    stacked = np.concatenate([np.asarray(coordinates[m], dtype=np.float64) for m in models])
    n = len(groups)
    image = None
    for row_block, method in enumerate(methods):
        mapped = _embed_2d(stacked, method, seed)
        low, high = mapped.min(axis=0), mapped.max(axis=0)
        pad = 0.04 * np.maximum(high - low, 1e-9)
        for k, model in enumerate(models):
            ax = axes[row_block * rows_per_method + k // columns, k % columns]
            xy = mapped[k * n : (k + 1) * n]
            image = ax.scatter(xy[:, 0], xy[:, 1], c=groups, cmap=cmap, norm=norm, s=3, linewidths=0, rasterized=True)
            ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
            ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
            ax.set_title(_short(model, 30), fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{method.upper()} 1", fontsize=7)
            ax.set_ylabel(f"{method.upper()} 2", fontsize=7)
        for k in range(len(models), rows_per_method * columns):
            axes[row_block * rows_per_method + k // columns, k % columns].set_visible(False)
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, ticks=range(1, F_BLOCK + 1))
    bar.ax.set_yticklabels([GROUP_LABELS[g] for g in range(1, F_BLOCK + 1)], fontsize=7)
    bar.set_label("periodic-table group (f = La-Lu, Ac-Lr)", fontsize=8)
    n_anchors = stacked.shape[1]
    methods_text = " and ".join(m.upper() for m in methods)
    note = "" if "umap" in methods else "; UMAP: install umap-learn"
    fig.suptitle(
        f"Shared anchor space ({n_anchors} anchors), {methods_text} fitted on all models jointly; "
        f"the same {n} atoms in every panel{note}",
        fontsize=9,
    )
    return fig


def periodic_trends(
    elements: np.ndarray,
    means: dict[str, np.ndarray],
    counts: np.ndarray | None = None,
    intervals: dict[str, tuple[float, float]] | None = None,
) -> plt.Figure:
    """Element x element cosine similarity of each model's per-element mean embedding, ordered by group then Z.

    ``elements`` (n_elements,) atomic numbers shared by all models; ``means[model]`` (n_elements, n_features).
    Each panel after the first gives the Pearson r of its off-diagonal values with the first model's, and
    ``intervals[model]`` (low, high) beside it where given and finite (the structure bootstrap's 95 % interval,
    ``platonic.elements.periodic_trend_bootstrap``).
    """
    from ase.data import chemical_symbols

    from platonic.elements import GROUP_LABELS, cosine_matrix, periodic_group, periodic_order, trend_correlation

    models = list(means)
    order = periodic_order(elements)
    ordered = np.asarray(elements)[order]
    matrices = {m: cosine_matrix(np.asarray(means[m], dtype=np.float64)[order]) for m in models}
    n = len(ordered)
    off_diagonal = ~np.eye(n, dtype=bool)
    vmin = min(float(v[off_diagonal].min()) if n > 1 else 0.0 for v in matrices.values())
    panel = float(np.clip(0.04 * n + 2.4, 3.0, 4.4))
    fig, axes = _grid(len(models), 4, panel, extra_width=0.8)
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
        title = _short(model, 30)
        if model != models[0] and n > 2:
            r = float(trend_correlation(matrices[models[0]], matrices[model]))
            interval = " [{:.2f}, {:.2f}]".format(*intervals[model]) if model in intervals else ""
            title += f"\nr = {r:.2f}{interval} vs {_short(models[0], 30)}"
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
    left.set_xticks(x, [_short(m) for m in models], rotation=45, ha="right", fontsize=7)
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
    right.set_xticks(x, [_short(m) for m in models], rotation=45, ha="right", fontsize=7)
    right.set_ylabel("per-atom embedding norm (raw space)", fontsize=8)
    right.set_title("embedding norms (box: quartiles, whiskers: 1.5 IQR)", fontsize=9)
    n_atoms = data[0].size if data else 0
    fig.suptitle(f"Per-model intrinsic dimension and embedding norms ({n_atoms} atoms)", fontsize=10)
    return fig


# the model tree with metadata: colour = architecture, marker = training data (controls stay hollow squares)
LINEAGE_MARKERS = ("o", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p", "8")
UNKNOWN_COLOUR = "0.7"


def lineage_styles(models, metadata: dict) -> tuple[dict, dict, dict, dict]:
    """For ``models`` with ``metadata`` (``{model: platonic.compare.lineage.Lineage}``): each model's colour (its
    architecture's, palette in order of first appearance; unknown: light grey) and marker (its training data's;
    unknown and untrained have markers of their own), and the legends ``{architecture: colour}``, ``{training
    data: marker}``; controls keep their hollow squares (``model_tree``)."""
    from platonic.compare.lineage import Lineage

    lineages = {str(m): metadata.get(str(m), Lineage()) for m in models}
    architectures = list(dict.fromkeys(x.architecture for x in lineages.values() if x.architecture is not None))
    arch_colour = {a: MODEL_PALETTE[i % len(MODEL_PALETTE)] for i, a in enumerate(architectures)}
    trainings = list(dict.fromkeys(x.training_label for x in lineages.values() if not x.control))
    data_marker = {t: LINEAGE_MARKERS[i % len(LINEAGE_MARKERS)] for i, t in enumerate(trainings)}
    colour = {m: arch_colour.get(x.architecture, UNKNOWN_COLOUR) for m, x in lineages.items()}
    marker = {m: "s" if x.control else data_marker[x.training_label] for m, x in lineages.items()}
    if any(x.architecture is None and not x.control for x in lineages.values()):
        arch_colour["unknown"] = UNKNOWN_COLOUR
    return colour, marker, arch_colour, data_marker


def model_tree(ds: xr.Dataset, metric: str, metadata: dict | None = None) -> plt.Figure:
    """Which models think alike: average-linkage dendrogram and classical MDS of model distances from ``metric``.

    One row per space; distances as in ``platonic.compare.model_space.model_distances``. Control representations
    (``ds.control``) carry "(control)" in italic labels and are hollow squares in the MDS map. Without
    ``metadata`` every model has its own colour (``model_colours``) and the MDS legend names the models; with it
    (``{model: platonic.compare.lineage.Lineage}``) labels and points take their architecture's colour, the points
    (and a marker at each leaf) their training data's marker, the MDS points are labelled with the model names and
    the legends name the architectures and the training data (``lineage_styles``).
    """
    from matplotlib.lines import Line2D
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import squareform

    from platonic.compare.model_space import classical_mds, model_distances

    models = [str(m) for m in ds.model_a.values]
    control = _controls(ds, models)
    if metadata:
        colours, markers, arch_colour, data_marker = lineage_styles(models, metadata)
    else:
        colours, markers, arch_colour, data_marker = model_colours(models), {}, {}, {}
    labels = _model_labels(models, control)
    colour_of = {name: colours[m] for name, m in zip(labels, models, strict=True)}
    marker_of = {name: markers.get(m, "o") for name, m in zip(labels, models, strict=True)}
    spaces = [str(s) for s in ds.space.values]
    height = max(3.2, 0.32 * len(models) + 1.5)
    fig, axes = plt.subplots(
        len(spaces), 2, figsize=(10.5 + (1.5 if metadata else 0.0), height * len(spaces) + 0.4),
        constrained_layout=True, squeeze=False,
    )  # fmt: skip
    kind = "1 - similarity" if metric in SIMILARITIES else "distance"
    for (tree_ax, map_ax), space in zip(axes, spaces, strict=True):
        distances = model_distances(ds, metric, space)
        space_label = SPACE_LABELS.get(space, space)
        if not np.isfinite(distances).all() or len(models) < 2:
            for ax in (tree_ax, map_ax):
                ax.text(0.5, 0.5, f"{metric_label(metric, ds.attrs)}\nnot defined in the {space_label}",
                        ha="center", va="center", transform=ax.transAxes)  # fmt: skip
                ax.set_axis_off()
            continue
        drawn = dendrogram(
            linkage(squareform(distances, checks=False), method="average"), labels=labels, orientation="right",
            ax=tree_ax, color_threshold=0, above_threshold_color="0.3",
        )  # fmt: skip
        for tick in tree_ax.get_yticklabels():
            tick.set_color(colour_of[tick.get_text()])
            tick.set_fontsize(8)
        _mark_control_ticks(tree_ax.get_yticklabels())
        if metadata:  # the training data's marker at each leaf
            for position, name in enumerate(drawn["ivl"]):
                hollow = name.endswith(CONTROL_SUFFIX)
                tree_ax.scatter(0, 5 + 10 * position, s=30, marker=marker_of[name], clip_on=False, zorder=3,
                                facecolor="none" if hollow else colour_of[name],
                                edgecolor=colour_of[name] if hollow else "black", linewidth=1.2 if hollow else 0.5,
                                gid="leaf marker")  # fmt: skip
        tree_ax.set_xlabel(f"average-linkage distance ({kind})", fontsize=8)
        tree_ax.set_title(f"{space_label}: dendrogram", fontsize=9)
        tree_ax.tick_params(axis="x", labelsize=7)
        xy = classical_mds(distances)
        for (x, y), model, name, hollow in zip(xy, models, labels, control, strict=True):
            style = (
                {"marker": "s", "facecolor": "none", "edgecolor": colours[model], "linewidth": 1.4}
                if hollow
                else {"marker": markers.get(model, "o"), "facecolor": colours[model], "edgecolor": "black",
                      "linewidth": 0.5}
            )  # fmt: skip
            map_ax.scatter(x, y, s=45, label=_short(name), **style)
            if metadata:
                map_ax.annotate(_short(name, 18), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=5.5,
                                color="0.2", fontstyle="italic" if hollow else "normal")  # fmt: skip
        map_ax.margins(0.15)
        map_ax.set_aspect("equal", adjustable="datalim")
        map_ax.set_title(f"{space_label}: classical MDS", fontsize=9)
        map_ax.set_xlabel("MDS 1", fontsize=8)
        map_ax.set_ylabel("MDS 2", fontsize=8)
        map_ax.tick_params(labelsize=7)
        if not metadata:
            map_ax.legend(fontsize=6.5, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
            continue
        architecture = map_ax.legend(
            [Line2D([], [], marker="o", linestyle="", markerfacecolor=c, markeredgecolor="black", markersize=6)
             for c in arch_colour.values()], list(arch_colour), title="architecture (colour)", fontsize=6.5,
            title_fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0),
        )  # fmt: skip
        map_ax.add_artist(architecture)
        handles = [Line2D([], [], marker=m, linestyle="", markerfacecolor="0.5", markeredgecolor="black",
                          markersize=6) for m in data_marker.values()]  # fmt: skip
        names = list(data_marker)
        if control.any():
            handles.append(Line2D([], [], marker="s", linestyle="", markerfacecolor="none", markeredgecolor="0.3",
                                  markersize=6))  # fmt: skip
            names.append("control (hollow)")
        map_ax.legend(handles, names, title="training data (marker)", fontsize=6.5, title_fontsize=7,
                      frameon=False, loc="lower left", bbox_to_anchor=(1.0, 0.0))  # fmt: skip
    anchors = f", {ds.attrs['n_anchors']} anchors" if "n_anchors" in ds.attrs else ""
    note = "; controls: italic labels, hollow squares" if control.any() else ""
    note += "; colour: architecture, marker: training data" if metadata else ""
    fig.suptitle(f"Which models think alike: {metric_label(metric, ds.attrs)} ({kind}{anchors}){note}", fontsize=10)
    return fig


# the training data vs architecture figure: one colour and marker per group of pairs (Okabe & Ito)
GROUP_STYLES = {
    "both": ("#0072B2", "o"),
    "architecture only": ("#E69F00", "s"),
    "training data only": ("#009E73", "^"),
    "neither": ("#CC79A7", "D"),
}
HEADLINE_DIFFERENCE = "training data only - architecture only"


def training_vs_architecture(ds: xr.Dataset, metadata: dict, metrics=None) -> plt.Figure:
    """Similarity of pairs of trained models grouped by what they share (``platonic.compare.lineage.GROUPS``), two
    panels (one per space) per metric of ``ds`` (or of ``metrics``).

    Each pair is a point with its 95 % bootstrap interval (directed metrics: the mean of both directions); each
    group's mean is a black line with its interval as a shaded box; the grey band is the chance level of the grouped
    pairs (lowest chance - 2 sd to highest + 2 sd; named in the corner when it would squeeze the pairs); a group
    without pairs says "no pairs". A panel's title gives ``training data only - architecture only`` ("data only -
    arch. only") with its interval. ``metadata``: ``{model: Lineage}`` (``platonic.compare.lineage.read_metadata``).
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from platonic.compare.lineage import GROUPS, LEFT_OUT, lineage_rows, store_pair_groups
    from platonic.compare.pair_means import pair_values

    metrics = [str(m) for m in ds.metric.values] if metrics is None else list(metrics)
    grouped = store_pair_groups(ds, metadata)
    rows = {(r["metric"], r["space"], r["group"]): r for r in lineage_rows(ds, metadata, metrics)}
    spaces = [str(s) for s in ds.space.values]
    fig, axes = _grid(len(metrics) * len(spaces), 2 * len(spaces), 3.1, extra_width=0.4)
    entries = {}
    for k, (metric, space) in enumerate(itertools.product(metrics, spaces)):
        ax = axes[k]
        ax.set_title(f"{metric_label(metric, ds.attrs)}, {SPACE_LABELS.get(space, space)}", fontsize=7.5)
        drawn, bands = [], []
        for x, (group, pairs) in enumerate(grouped.groups.items()):
            colour, marker = GROUP_STYLES[group]
            if not pairs:
                ax.text(x, 0.5, "no pairs", rotation=90, ha="center", va="center", fontsize=7, color="0.4",
                        transform=ax.get_xaxis_transform(), gid="no pairs")  # fmt: skip
                continue
            values = pair_values(ds, metric, space, pairs)
            ok = np.isfinite(values.value)
            offsets = np.linspace(-0.22, 0.22, len(pairs)) if len(pairs) > 1 else np.zeros(1)
            keep = ok & np.isfinite(values.ci_low) & np.isfinite(values.ci_high)
            if keep.any():
                ax.vlines(x + offsets[keep], values.ci_low[keep], values.ci_high[keep], colors=colour, linewidth=0.7,
                          alpha=0.8, zorder=2, gid="pair interval")  # fmt: skip
                drawn += [values.ci_low[keep], values.ci_high[keep]]
                entries["a pair's 95 % interval"] = Line2D([], [], color="0.3", linewidth=0.7)
            if ok.any():
                ax.scatter(x + offsets[ok], values.value[ok], s=16, marker=marker, facecolor=colour,
                           edgecolor="white", linewidth=0.4, zorder=3, gid="pairs")  # fmt: skip
                drawn.append(values.value[ok])
            row = rows[metric, space, group]
            if np.isfinite(row["mean"]):
                if np.isfinite(row["ci_low"]):
                    ax.fill_between([x - 0.34, x + 0.34], row["ci_low"], row["ci_high"], color=colour, alpha=0.25,
                                    linewidth=0, zorder=1, gid="group interval")  # fmt: skip
                    drawn.append(np.array([row["ci_low"], row["ci_high"]]))
                    entries["group mean's 95 % interval"] = Patch(color="0.5", alpha=0.35, linewidth=0)
                ax.hlines(row["mean"], x - 0.34, x + 0.34, color="black", linewidth=1.4, zorder=4, gid="group mean")
                entries["group mean"] = Line2D([], [], color="black", linewidth=1.4)
            band = _chance_band(values.chance, values.chance_sd, np.ones(len(pairs), dtype=bool))
            if band is not None:
                bands.append(band)
        ax.set_xticks(range(len(GROUPS)), [f"{g.replace(' ', chr(10), 1)}\n({len(p)})"
                                           for g, p in grouped.groups.items()], fontsize=6.5)  # fmt: skip
        ax.set_xlim(-0.6, len(GROUPS) - 0.4)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel(metric_label(metric, ds.attrs), fontsize=7)
        if not drawn:
            if any(grouped.groups.values()):
                ax.text(0.5, 0.75, f"not defined in the\n{SPACE_LABELS.get(space, space)}", ha="center",
                        va="center", fontsize=7, transform=ax.transAxes)  # fmt: skip
            continue
        values = np.concatenate(drawn)
        low, high = float(values.min()), float(values.max())
        span = max(high - low, 1e-3)
        if bands:
            start, stop = min(b[0] for b in bands), max(b[1] for b in bands)
            if start >= low - span and stop <= high + span:
                entries[CHANCE_LABEL_GROUPS] = ax.axhspan(start, stop, color="0.5", alpha=0.2, linewidth=0,
                                                          zorder=0, gid="chance")  # fmt: skip
                low, high = min(low, start), max(high, stop)
            else:
                ax.text(0.97, 0.03, f"chance {start:.3g} to {stop:.3g}\n(off the axes)", transform=ax.transAxes,
                        ha="right", va="bottom", fontsize=6, color="0.3", gid="chance off the axes")  # fmt: skip
        pad = 0.08 * max(high - low, 1e-3)
        ax.set_ylim(low - pad, high + pad)
        difference = rows[metric, space, HEADLINE_DIFFERENCE]
        if np.isfinite(difference["mean"]):
            bracket = (f" [{difference['ci_low']:.2g}, {difference['ci_high']:.2g}]"
                       if np.isfinite(difference["ci_low"]) else "")  # fmt: skip
            ax.set_title(f"{ax.get_title()}\ndata only - arch. only: {difference['mean']:+.2g}{bracket}",
                         fontsize=7.5)  # fmt: skip
    labels = [name for name in ("group mean", "group mean's 95 % interval", "a pair's 95 % interval",
                                CHANCE_LABEL_GROUPS) if name in entries]  # fmt: skip
    if labels:
        fig.legend([entries[n] for n in labels], labels, loc="outside lower center", ncols=len(labels), fontsize=7,
                   frameon=False)  # fmt: skip
    n_grouped = sum(len(p) for p in grouped.groups.values())
    left_out = ", ".join(f"{len(p)} with {LEFT_OUT[r]}" for r, p in grouped.left_out.items() if p) or "none"
    fig.suptitle(
        f"Training data vs architecture: pairs of trained models by what they share ({n_grouped} pairs;"
        f" left out: {left_out})\nsame training data = equal sets of training datasets; directed metrics: mean of"
        f" both directions; intervals: 95 %, {ds.attrs.get('bootstrap', '?')} structure-bootstrap resamples;"
        " panel titles: training data only - architecture only [its interval]",
        fontsize=9,
    )
    return fig


CHANCE_LABEL_GROUPS = "chance (structures permuted), grouped pairs, ± 2 sd"


# ----------------------------------------------------------------------------------------------
# the shared-space analyses: transfer matrices (raw vs anchor space), per-element departures


def transfer_heatmaps(ds: xr.Dataset, head: str = "ridge") -> plt.Figure:
    """One row per target, one column per space: the head fitted on the row model, scored (R^2 or
    accuracy) on the column model's test structures. Grey cells: the head cannot read that model. Controls
    (``ds.control``) come after the models behind a separator, hatched, as in the similarity heatmaps."""
    targets = [str(t) for t in ds["target"].values]
    spaces = [str(s) for s in ds["space"].values]
    control = _controls(ds, ds["source_model"].values)
    order = np.argsort(control, kind="stable")
    control = control[order]
    ds = ds.isel(source_model=order, target_model=order)
    models = _model_labels(ds["source_model"].values, control)
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
            ink = np.where(np.nan_to_num(shown, nan=1.0) < 0.6, "w", "k")
            for (a, b), value in np.ndenumerate(values):
                if np.isfinite(value):
                    text = f"{value:.2f}" if value > -10 else "<-10"
                    ax.text(b, a, text, ha="center", va="center", fontsize=6, color=ink[a, b])
            _set_apart_controls(ax, control, ink)
            ax.set_xticks(range(len(models)), models if i == len(targets) - 1 else [], rotation=90, fontsize=7)
            ax.set_yticks(range(len(models)), models if j == 0 else [], fontsize=7)
            _mark_control_ticks([*ax.get_xticklabels(), *ax.get_yticklabels()], CONTROL_COLOUR)
            ax.set_title(f"{target} ({'accuracy' if classify else 'R²'}), {SPACE_LABELS.get(space, space)}", fontsize=8)
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


def symmetry_breaking_figure(relative: dict[str, np.ndarray], threshold: float) -> plt.Figure:
    """Per model, the relative spread of its embeddings over the copies of each orbit (``{model: (n_orbits,)}``,
    orbits with more than one copy), log scale, with the flagging ``threshold``."""
    models = list(relative)
    colours = model_colours(models)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.6 * len(models) + 2), 3.6), constrained_layout=True)
    floor = 1e-9  # exactly equal copies (spread 0) are drawn at the floor
    for i, model in enumerate(models):
        values = np.maximum(np.asarray(relative[model], dtype=np.float64), floor)
        jitter = np.random.default_rng(i).uniform(-0.25, 0.25, size=values.size)
        ax.scatter(i + jitter, values, s=4, alpha=0.4, color=colours[model], linewidths=0)
        if values.size:
            ax.plot([i - 0.3, i + 0.3], [np.median(values)] * 2, color="black", linewidth=1.2)
    ax.axhline(threshold, color="firebrick", linestyle="--", linewidth=1, label=f"flagged above {threshold:g}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(models)), [_short(m) for m in models], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("spread of an orbit's copies /\ntypical distance between environments", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.set_title(f"Symmetry breaking: one point per orbit with copies (floor {floor:g} = identical copies)", fontsize=9)
    return fig


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
            ax.set_xlabel(f"{_short(b, 28)} layer", fontsize=7)
            ax.set_ylabel(f"{_short(a, 28)} layer", fontsize=7)
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
        f" left)\n{_short(names, 150)}",
        fontsize=9,
    )
    return fig


def layer_depth_figure(ds: xr.Dataset, metric: str) -> plt.Figure:
    """Does agreement grow with depth? Per space, each model's layers (x: relative depth, 0 first, 1 last) against
    its own last layer (solid, with its 95 % interval where the store has one) and against the best-matching layer
    of each other model, averaged over those models (dashed)."""
    data = ds["similarity"].sel(metric=metric)
    models = list(dict.fromkeys(str(m) for m in ds["model_a"].values))
    colours = model_colours(models)
    spaces = [str(s) for s in data.space.values]
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.2 * len(spaces), 3.4), squeeze=False, constrained_layout=True)
    for ax, space in zip(axes[0], spaces, strict=True):
        values = data.sel(space=space).values
        for model in models:
            rows = np.flatnonzero(ds["model_a"].values == model)
            rows = rows[np.argsort(ds["depth_a"].values[rows], kind="stable")]
            depth = ds["depth_a"].values[rows]
            last = rows[-1]
            ax.plot(depth, values[rows, last], "-o", color=colours[model], markersize=3, label=f"{model}: to its last")
            if "ci_low" in ds:
                low = ds["ci_low"].sel(metric=metric, space=space).values[rows, last]
                high = ds["ci_high"].sel(metric=metric, space=space).values[rows, last]
                ax.fill_between(depth, low, high, color=colours[model], alpha=0.15, linewidth=0)
            others = [m for m in models if m != model]
            if others:
                best = ds["best_similarity"].sel(metric=metric, space=space, other=others).values[rows]
                ax.plot(depth, np.nanmean(best, axis=1), "--", color=colours[model], linewidth=1,
                        label=f"{model}: best layer of the others")  # fmt: skip
        ax.set_xlabel("relative depth of the layer (0 first stored, 1 last)", fontsize=8)
        ax.set_ylabel(metric_label(metric), fontsize=8)
        ax.set_title(SPACE_LABELS.get(space, space), fontsize=9)
        if metric in SIMILARITIES:
            ax.set_ylim(0, 1.02)
    axes[0, -1].legend(fontsize=6, loc="best")
    fig.suptitle(f"{metric_label(metric)} by depth ({ds.attrs.get('n_atoms', '?')} atoms)", fontsize=10)
    return fig


LADDER_COLOURS = {"raw": "#D55E00", "unit": "#009E73", "anchor": "#0072B2"}


def protocol_ladder(rows: list[dict]) -> plt.Figure:
    """The protocol ladder (``platonic.compare.ladder.ladder_rows``): one panel per metric (rows) and pair group
    (columns); each space's group mean across the rungs with its 95 % interval as error bars, its mean chance level
    as a dotted line of the same colour; the rung with the configured settings shaded."""
    from platonic.spaces import LABELS, SPACES

    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    groups = list(dict.fromkeys(r["group"] for r in rows))
    steps = list(dict.fromkeys(r["step"] for r in rows))
    configured = sorted({r["rung"] for r in rows if r["configured"] in (True, "True")})
    fig, axes = plt.subplots(
        len(metrics), len(groups), figsize=(3.2 * len(groups), 2.8 * len(metrics)), squeeze=False, sharex=True
    )
    for (i, metric), (j, group) in itertools.product(enumerate(metrics), enumerate(groups)):
        ax = axes[i, j]
        for rung in configured:
            ax.axvspan(rung - 0.4, rung + 0.4, color="0.92", zorder=0)
        for k, space in enumerate(SPACES):
            chosen = sorted(
                (r for r in rows if (r["metric"], r["group"], r["space"]) == (metric, group, space)),
                key=lambda r: r["rung"],
            )
            if not chosen:
                continue
            x = np.array([r["rung"] for r in chosen], dtype=float) + (k - 1) * 0.12
            mean = np.array([r["mean"] for r in chosen], dtype=float)
            low = np.array([r["ci_low"] for r in chosen], dtype=float)
            high = np.array([r["ci_high"] for r in chosen], dtype=float)
            errors = np.vstack([np.clip(mean - low, 0, None), np.clip(high - mean, 0, None)])
            errors = np.where(np.isfinite(errors), errors, 0.0)
            colour = LADDER_COLOURS[space]
            ax.errorbar(x, mean, yerr=errors, color=colour, marker="o", ms=3.5, lw=1.2, capsize=2, label=LABELS[space])
            chance = np.array([r["chance"] for r in chosen], dtype=float)
            if np.isfinite(chance).any():
                ax.plot(x, chance, color=colour, ls=":", lw=1.0, label=f"chance, {space}")
        ax.set_title(f"{metric_label(metric)}, {group}", fontsize=8)
        ax.set_xticks(range(len(steps)))
        ax.set_xticklabels(steps, rotation=35, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", color="0.9", lw=0.5)
    axes[0, -1].legend(fontsize=6, loc="best", frameon=False)
    fig.suptitle("From the reference protocol to platonic's, one choice at a time (shaded: configured)", fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# anchor sensitivity: the anchor space's agreement against the number of anchors and how they are chosen

SENSITIVITY_STYLES = {  # method -> (colour, marker, label)
    "direct": ("#0072B2", "o", "DIRECT, 95 % interval"),
    "random": ("#E69F00", "s", "random: mean of the draws, their range"),
    "farthest-point": ("#009E73", "^", "farthest-point"),
    "indices": ("#CC79A7", "D", "given anchors (anchors.indices)"),
}


def anchor_sensitivity_figure(rows: list[dict], reading: str = "", title: str = "") -> plt.Figure:
    """One panel per metric and pair group of the anchor-sensitivity ``rows`` (``compare.anchor_sensitivity``):
    each method's group mean against the number of anchors K (log axis), DIRECT with its 95 % interval, random as
    the mean of its draws with their range (each draw a faint point), the unit space (no anchors) as a dashed line
    with its interval, DIRECT's chance level dotted and the configured K as a vertical line; ``reading`` below."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import NullLocator

    from platonic.compare.anchor_sensitivity import curve, unit_row

    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    groups = list(dict.fromkeys(r["group"] for r in rows))
    fig, axes = _grid(len(metrics) * len(groups), len(groups), 3.2, extra_width=0.3)
    entries = {}
    for ax, (metric, group) in zip(axes, itertools.product(metrics, groups), strict=True):
        reference = unit_row(rows, metric, group)
        n_pairs = reference["n_pairs"] if reference else ""
        ax.set_title(f"{metric_label(metric)}, {group} ({n_pairs} pair{'' if n_pairs == 1 else 's'})", fontsize=7.5)
        if reference is not None:
            entries["unit space (no anchors), 95 % interval"] = ax.axhline(
                reference["mean"], color="black", linestyle="--", linewidth=1.1, zorder=3, gid="unit"
            )
            if np.isfinite(reference["ci_low"]):
                ax.axhspan(reference["ci_low"], reference["ci_high"], color="0.5", alpha=0.18, linewidth=0, zorder=0,
                           gid="unit interval")  # fmt: skip
        for method, (colour, marker, name) in SENSITIVITY_STYLES.items():
            line = curve(rows, metric, group, method)
            if not line:
                continue
            k = np.array([r["n_anchors"] for r in line], dtype=float)
            mean = np.array([r["mean"] for r in line])
            ax.plot(k, mean, color=colour, marker=marker, markersize=3.5, linewidth=1.2, zorder=4, gid=method)
            entries[name] = Line2D([], [], color=colour, marker=marker, markersize=3.5, linewidth=1.2)
            if method == "direct":
                low, high = np.array([r["ci_low"] for r in line]), np.array([r["ci_high"] for r in line])
                if np.isfinite(low).all():
                    ax.fill_between(k, low, high, color=colour, alpha=0.2, linewidth=0, zorder=1, gid="direct interval")
                chance = np.array([r["chance"] for r in line])
                if np.isfinite(chance).any():
                    ax.plot(k, chance, color=colour, linestyle=":", linewidth=0.9, zorder=2, gid="chance")
                    entries["DIRECT's chance level (structures permuted)"] = Line2D(
                        [], [], color=colour, linestyle=":", linewidth=0.9
                    )
            if method == "random":
                low, high = np.array([r["seeds_min"] for r in line]), np.array([r["seeds_max"] for r in line])
                ax.fill_between(k, low, high, color=colour, alpha=0.25, linewidth=0, zorder=1, gid="random range")
                draws = [r for r in rows if r["space"] == "anchor" and r["method"] == "random" and r["seed"] != ""
                         and (r["metric"], r["group"]) == (metric, group)]  # fmt: skip
                ax.scatter([r["n_anchors"] for r in draws], [r["mean"] for r in draws], s=5, color=colour, alpha=0.5,
                           linewidth=0, zorder=2, gid="random draws")  # fmt: skip
        configured = [r["n_anchors"] for r in rows if r["configured"] and r["metric"] == metric]
        if configured:
            entries[f"configured anchors (K = {configured[0]})"] = ax.axvline(
                configured[0], color="0.4", linewidth=0.7, linestyle="-.", zorder=0, gid="configured"
            )
        ax.set_xscale("log")
        counts = sorted({r["n_anchors"] for r in rows if r["space"] == "anchor"})
        ax.set_xticks(counts, [str(k) for k in counts])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("anchors K", fontsize=7)
        ax.set_ylabel(metric_label(metric), fontsize=7)
        ax.tick_params(labelsize=6.5)
    entries.setdefault("unit space (no anchors), 95 % interval", Patch(color="0.5", alpha=0.3))
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=3, fontsize=6.5,
               frameon=False)  # fmt: skip
    import textwrap

    heading = "Anchor sensitivity: the anchor space's agreement against the number of anchors and their choice"
    fig.suptitle("\n".join([heading, *([title] if title else []), *textwrap.wrap(reading, 150)]), fontsize=8.5)
    return fig
