"""The similarity section: model x model heatmaps, agreement between the spaces, and the model tree."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from platonic.compare.agreement import PAIR_KINDS
from platonic.compare.registry import METRICS, SCALE_FREE, SIMILARITIES
from platonic.compare.registry import label as metric_label
from platonic.figures.style import (
    CONTROL_COLOUR,
    CONTROL_SUFFIX,
    MODEL_PALETTE,
    SPACE_LABELS,
    chance_band,
    control_flags,
    mark_control_ticks,
    model_colours,
    model_labels,
    panel_grid,
    set_apart_controls,
    short_name,
)

__all__ = [
    "WIDE_MARK",
    "PAIR_KINDS",
    "PAIR_COLOURS",
    "PAIR_STYLES",
    "INTERVAL_LABEL",
    "CHANCE_LABEL",
    "LINEAGE_MARKERS",
    "UNKNOWN_COLOUR",
    "similarity_heatmaps",
    "wide_note",
    "agreement_scatter",
    "lineage_styles",
    "model_tree",
]


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
    control = control_flags(ds, data.model_a.values)
    order = np.argsort(control, kind="stable")  # MLIPs, then controls, each in the order given
    control = control[order]
    models = model_labels(data.model_a.values[order], control)
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
        mark_control_ticks([*ax.get_xticklabels(), *ax.get_yticklabels()], CONTROL_COLOUR)
        ax.set_title(SPACE_LABELS.get(space, space), fontsize=10)
        # black ink on light cells, white on dark ones
        ink = np.where(values / vmax > 0.6 if similar else values / vmax < 0.4, "black", "white")
        set_apart_controls(ax, control, ink)
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


def _interval(ds: xr.Dataset, metric: str) -> tuple[xr.DataArray, xr.DataArray] | None:
    """``ci_low`` and ``ci_high`` of ``metric`` (space, model_a, model_b); None where the store has no finite one."""
    if "ci_low" not in ds or "ci_high" not in ds:
        return None
    low, high = ds["ci_low"].sel(metric=metric), ds["ci_high"].sel(metric=metric)
    return (low, high) if (np.isfinite(low.values) & np.isfinite(high.values)).any() else None


def agreement_scatter(ds: xr.Dataset, pairs: dict[tuple[str, str, str], xr.Dataset]) -> plt.Figure:
    """Each space's value against the previous space's for every model pair: ``pairs`` ``{(metric, earlier, later):
    platonic.compare.agreement.space_pairs}`` (``agreement.all_space_pairs(ds)``), one row of panels per step (in the
    order of ``pairs``), one panel per scale-free metric of the similarity store ``ds``.

    Metrics whose values carry the units of their space (not in ``registry.SCALE_FREE``) are left out, and the title
    says so. Directed metrics (``ds.attrs['directed_metrics']``) show both directions of each pair. Pairs of two MLIPs,
    of an MLIP and a control, and of two controls (``ds.control``) differ in marker and colour; the mean shift in a
    panel's title (``attrs['shift']``) is over the pairs of two MLIPs. Where the store has them: 95 % bootstrap
    intervals (``ci_low``, ``ci_high``) as bars on both axes, and the chance level as grey bands (vertical: the
    earlier space, horizontal: the later), each from the lowest ``chance - 2 chance_sd`` to the highest ``chance + 2
    chance_sd`` of the plotted pairs in that space.
    """
    metrics = [str(m) for m in ds.metric.values]
    left_out = [m for m in metrics if m in METRICS and m not in SCALE_FREE]
    shown = [m for m in metrics if m not in left_out]
    steps = list(dict.fromkeys((earlier, later) for _, earlier, later in pairs))
    control = control_flags(ds, ds.model_a.values)
    columns = min(max(len(shown), 1), 5)
    rows_per_step = -(-max(len(shown), 1) // columns)
    fig, axes = panel_grid(max(rows_per_step * columns * len(steps), 1), columns, 3.0)
    entries = {}
    for s, (earlier, later) in enumerate(steps):
        for k, metric in enumerate(shown):
            ax = axes[s * rows_per_step * columns + k]
            entries.update(_agreement_panel(ax, pairs[metric, earlier, later], ds.attrs, control.any()))
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


# pairs of two MLIPs, of an MLIP and a control, of two controls (``agreement.PAIR_KINDS``): marker and colour in the
# agreement figure
PAIR_COLOURS = (MODEL_PALETTE[0], MODEL_PALETTE[1], CONTROL_COLOUR)
PAIR_STYLES = (
    {"marker": "o", "facecolor": PAIR_COLOURS[0], "edgecolor": "white", "linewidth": 0.4},
    {"marker": "^", "facecolor": PAIR_COLOURS[1], "edgecolor": "white", "linewidth": 0.4},
    {"marker": "s", "facecolor": "none", "edgecolor": PAIR_COLOURS[2], "linewidth": 0.9},
)

INTERVAL_LABEL = "95 % bootstrap interval"
CHANCE_LABEL = "chance (structures permuted), MLIP pairs, mean ± 2 sd"


def _agreement_panel(ax, pairs: xr.Dataset, attrs: dict, controls: bool) -> dict:
    """One panel of ``agreement_scatter``: the ``later`` space of ``pairs`` (``agreement.space_pairs``) (y) against
    its ``earlier`` (x); ``attrs`` the store's, ``controls`` whether it has controls; returns its legend entries,
    {label: artist}."""
    metric = pairs.attrs["metric"]
    earlier, later = (str(s) for s in pairs.space.values)

    def at(name: str, space: str) -> np.ndarray | None:  # the value of every pair; None if the store lacks it
        return pairs[name].sel(space=space).values if name in pairs else None

    raw, anchor = at("similarity", earlier), at("similarity", later)  # x and y
    ok = np.isfinite(raw) & np.isfinite(anchor)
    ax.set_title(metric_label(metric, attrs), fontsize=8)
    ax.set_xlabel(SPACE_LABELS.get(earlier, earlier), fontsize=8)
    ax.set_ylabel(SPACE_LABELS.get(later, later), fontsize=8)
    ax.tick_params(labelsize=7)
    if not ok.any():
        missing = f"{earlier} space" if np.isfinite(anchor).any() else "either space"
        ax.text(0.5, 0.5, f"not defined in\n{missing}", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return {}
    kind = pairs["kind"].values
    colours = np.array(PAIR_COLOURS)[kind]
    entries, drawn, bands = {}, [raw[ok], anchor[ok]], []
    # the chance band of the MLIP pairs where there are any: a control's chance level can be far off (LFRE of the
    # element one-hot) and would hide theirs
    band_pairs = ok & (kind == 0) if (ok & (kind == 0)).any() else ok
    for space, span in ((earlier, ax.axvspan), (later, ax.axhspan)):
        band = chance_band(at("chance", space), at("chance_sd", space), band_pairs)
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
    over = ", MLIP pairs" if controls else ""
    shift = f"{pairs.attrs['shift']:+.3g}" if mlips.any() else "no MLIP pair"
    ax.set_title(
        f"{metric_label(metric, attrs)}\n{better} the line: closer in the {later} space\n"
        f"mean shift {later} - {earlier}{over}: {shift}",
        fontsize=7.5,
    )
    return entries


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


def model_tree(tree: xr.Dataset, metadata: dict | None = None) -> plt.Figure:
    """Which models think alike: the average-linkage dendrogram and classical MDS map of ``tree``
    (``platonic.compare.model_space.linkage_and_mds``: ``linkage (space, merge, link)``, ``mds (space, model,
    component)``, ``defined (space)``, ``control (model)``, its metric in ``attrs``), one row per space.

    Control representations (``tree.control``) carry "(control)" in italic labels and are hollow squares in the MDS
    map. Without ``metadata`` every model has its own colour (``model_colours``) and the MDS legend names the models;
    with it (``{model: platonic.compare.lineage.Lineage}``) labels and points take their architecture's colour, the
    points (and a marker at each leaf) their training data's marker, the MDS points are labelled with the model names
    and the legends name the architectures and the training data (``lineage_styles``).
    """
    from matplotlib.lines import Line2D
    from scipy.cluster.hierarchy import dendrogram

    metric = tree.attrs["metric"]
    models = [str(m) for m in tree.model.values]
    control = tree["control"].values.astype(bool)
    if metadata:
        colours, markers, arch_colour, data_marker = lineage_styles(models, metadata)
    else:
        colours, markers, arch_colour, data_marker = model_colours(models), {}, {}, {}
    labels = model_labels(models, control)
    colour_of = {name: colours[m] for name, m in zip(labels, models, strict=True)}
    marker_of = {name: markers.get(m, "o") for name, m in zip(labels, models, strict=True)}
    spaces = [str(s) for s in tree.space.values]
    height = max(3.2, 0.32 * len(models) + 1.5)
    fig, axes = plt.subplots(
        len(spaces), 2, figsize=(10.5 + (1.5 if metadata else 0.0), height * len(spaces) + 0.4),
        constrained_layout=True, squeeze=False,
    )  # fmt: skip
    kind = "1 - similarity" if metric in SIMILARITIES else "distance"
    for (tree_ax, map_ax), space in zip(axes, spaces, strict=True):
        space_label = SPACE_LABELS.get(space, space)
        if not tree["defined"].sel(space=space):
            for ax in (tree_ax, map_ax):
                ax.text(0.5, 0.5, f"{metric_label(metric, tree.attrs)}\nnot defined in the {space_label}",
                        ha="center", va="center", transform=ax.transAxes)  # fmt: skip
                ax.set_axis_off()
            continue
        drawn = dendrogram(
            tree["linkage"].sel(space=space).values, labels=labels, orientation="right",
            ax=tree_ax, color_threshold=0, above_threshold_color="0.3",
        )  # fmt: skip
        for tick in tree_ax.get_yticklabels():
            tick.set_color(colour_of[tick.get_text()])
            tick.set_fontsize(8)
        mark_control_ticks(tree_ax.get_yticklabels())
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
        xy = tree["mds"].sel(space=space).values
        for (x, y), model, name, hollow in zip(xy, models, labels, control, strict=True):
            style = (
                {"marker": "s", "facecolor": "none", "edgecolor": colours[model], "linewidth": 1.4}
                if hollow
                else {"marker": markers.get(model, "o"), "facecolor": colours[model], "edgecolor": "black",
                      "linewidth": 0.5}
            )  # fmt: skip
            map_ax.scatter(x, y, s=45, label=short_name(name), **style)
            if metadata:
                map_ax.annotate(short_name(name, 18), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=5.5,
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
    anchors = f", {tree.attrs['n_anchors']} anchors" if "n_anchors" in tree.attrs else ""
    note = "; controls: italic labels, hollow squares" if control.any() else ""
    note += "; colour: architecture, marker: training data" if metadata else ""
    fig.suptitle(f"Which models think alike: {metric_label(metric, tree.attrs)} ({kind}{anchors}){note}", fontsize=10)
    return fig
