"""The analyses: training data vs architecture, transfer matrices, per-element departures, symmetry breaking,
the protocol ladder and the anchor sensitivity."""

from __future__ import annotations

import itertools

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from platonic.compare.registry import label as metric_label
from platonic.figures.style import (
    CONTROL_COLOUR,
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
    "GROUP_STYLES",
    "HEADLINE_DIFFERENCE",
    "CHANCE_LABEL_GROUPS",
    "LADDER_COLOURS",
    "SENSITIVITY_STYLES",
    "training_vs_architecture",
    "transfer_heatmaps",
    "departure_heatmap",
    "symmetry_breaking_figure",
    "protocol_ladder",
    "anchor_sensitivity_figure",
    "prediction_failure_figure",
    "phonons_figure",
]


# the training data vs architecture figure: one colour and marker per group of pairs (Okabe & Ito)
GROUP_STYLES = {
    "both": ("#0072B2", "o"),
    "architecture only": ("#E69F00", "s"),
    "training data only": ("#009E73", "^"),
    "neither": ("#CC79A7", "D"),
}
HEADLINE_DIFFERENCE = "training data only - architecture only"


def training_vs_architecture(rows: list[dict], pairs: list[dict], attrs: dict | None = None) -> plt.Figure:
    """Similarity of pairs of trained models grouped by what they share (``platonic.compare.lineage.GROUPS``), two
    panels (one per space) per metric of ``rows``: the table of ``platonic.compare.lineage.lineage_rows`` (its
    group, difference and left-out rows), ``pairs`` its pairs (``lineage.pair_rows``), ``attrs`` the similarity
    store's (metric labels, the number of bootstrap resamples).

    Each pair is a point with its 95 % bootstrap interval (directed metrics: the mean of both directions); each
    group's mean is a black line with its interval as a shaded box; the grey band is the chance level of the grouped
    pairs (lowest chance - 2 sd to highest + 2 sd; named in the corner when it would squeeze the pairs); a group
    without pairs says "no pairs". A panel's title gives ``training data only - architecture only`` ("data only -
    arch. only") with its interval.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from platonic.compare.lineage import GROUPS, LEFT_OUT

    attrs = attrs or {}
    groups = [r for r in rows if r["kind"] == "group"]
    metrics = list(dict.fromkeys(r["metric"] for r in groups))
    spaces = list(dict.fromkeys(r["space"] for r in groups))
    n_pairs = {r["group"]: r["n_pairs"] for r in groups}  # the same pairs in every metric and space
    left_out = {r["group"]: r["n_pairs"] for r in rows if r["kind"] == "left out"}
    members = {}
    for pair in pairs:
        members.setdefault((pair["metric"], pair["space"], pair["group"]), []).append(pair)
    table = {(r["metric"], r["space"], r["group"]): r for r in rows if r["kind"] != "left out"}
    fig, axes = panel_grid(len(metrics) * len(spaces), 2 * len(spaces), 3.1, extra_width=0.4)
    entries = {}
    for k, (metric, space) in enumerate(itertools.product(metrics, spaces)):
        ax = axes[k]
        ax.set_title(f"{metric_label(metric, attrs)}, {SPACE_LABELS.get(space, space)}", fontsize=7.5)
        drawn, bands = [], []
        for x, group in enumerate(GROUPS):
            colour, marker = GROUP_STYLES[group]
            shown = members.get((metric, space, group), [])
            if not shown:
                ax.text(x, 0.5, "no pairs", rotation=90, ha="center", va="center", fontsize=7, color="0.4",
                        transform=ax.get_xaxis_transform(), gid="no pairs")  # fmt: skip
                continue
            value, ci_low, ci_high, chance, chance_sd = (
                np.array([p[name] for p in shown], dtype=np.float64)
                for name in ("value", "ci_low", "ci_high", "chance", "chance_sd")
            )
            ok = np.isfinite(value)
            offsets = np.linspace(-0.22, 0.22, len(shown)) if len(shown) > 1 else np.zeros(1)
            keep = ok & np.isfinite(ci_low) & np.isfinite(ci_high)
            if keep.any():
                ax.vlines(x + offsets[keep], ci_low[keep], ci_high[keep], colors=colour, linewidth=0.7,
                          alpha=0.8, zorder=2, gid="pair interval")  # fmt: skip
                drawn += [ci_low[keep], ci_high[keep]]
                entries["a pair's 95 % interval"] = Line2D([], [], color="0.3", linewidth=0.7)
            if ok.any():
                ax.scatter(x + offsets[ok], value[ok], s=16, marker=marker, facecolor=colour,
                           edgecolor="white", linewidth=0.4, zorder=3, gid="pairs")  # fmt: skip
                drawn.append(value[ok])
            row = table[metric, space, group]
            if np.isfinite(row["mean"]):
                if np.isfinite(row["ci_low"]):
                    ax.fill_between([x - 0.34, x + 0.34], row["ci_low"], row["ci_high"], color=colour, alpha=0.25,
                                    linewidth=0, zorder=1, gid="group interval")  # fmt: skip
                    drawn.append(np.array([row["ci_low"], row["ci_high"]]))
                    entries["group mean's 95 % interval"] = Patch(color="0.5", alpha=0.35, linewidth=0)
                ax.hlines(row["mean"], x - 0.34, x + 0.34, color="black", linewidth=1.4, zorder=4, gid="group mean")
                entries["group mean"] = Line2D([], [], color="black", linewidth=1.4)
            band = chance_band(chance, chance_sd, np.ones(len(shown), dtype=bool))
            if band is not None:
                bands.append(band)
        ax.set_xticks(range(len(GROUPS)), [f"{g.replace(' ', chr(10), 1)}\n({p})"
                                           for g, p in n_pairs.items()], fontsize=6.5)  # fmt: skip
        ax.set_xlim(-0.6, len(GROUPS) - 0.4)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel(metric_label(metric, attrs), fontsize=7)
        if not drawn:
            if any(n_pairs.values()):
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
        difference = table[metric, space, HEADLINE_DIFFERENCE]
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
    n_grouped = sum(n_pairs.values())
    left_out = ", ".join(f"{n} with {LEFT_OUT[r]}" for r, n in left_out.items() if n) or "none"
    fig.suptitle(
        f"Training data vs architecture: pairs of trained models by what they share ({n_grouped} pairs;"
        f" left out: {left_out})\nsame training data = equal sets of training datasets; directed metrics: mean of"
        f" both directions; intervals: 95 %, {attrs.get('bootstrap', '?')} structure-bootstrap resamples;"
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
    control = control_flags(ds, ds["source_model"].values)
    order = np.argsort(control, kind="stable")
    control = control[order]
    ds = ds.isel(source_model=order, target_model=order)
    models = model_labels(ds["source_model"].values, control)
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
            set_apart_controls(ax, control, ink)
            ax.set_xticks(range(len(models)), models if i == len(targets) - 1 else [], rotation=90, fontsize=7)
            ax.set_yticks(range(len(models)), models if j == 0 else [], fontsize=7)
            mark_control_ticks([*ax.get_xticklabels(), *ax.get_yticklabels()], CONTROL_COLOUR)
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
    ax.set_xticks(range(len(models)), [short_name(m) for m in models], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("spread of an orbit's copies /\ntypical distance between environments", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.set_title(f"Symmetry breaking: one point per orbit with copies (floor {floor:g} = identical copies)", fontsize=9)
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
    fig, axes = panel_grid(len(metrics) * len(groups), len(groups), 3.2, extra_width=0.3)
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


FAILURE_CONTROLS = {"none": ("o", "#0072B2", "signal"), "element+size": ("s", "#D55E00", "signal | element, size"),
                    "baseline": ("^", "#7F7F7F", "element and size alone")}  # fmt: skip


def prediction_failure_figure(rows: list[dict], reason: str = "") -> plt.Figure:
    """One panel per prediction target: each latent signal's Spearman correlation with it (per model where the target
    is a model's), bare, given element and size, and the baseline, with 95 % bootstrap intervals and the permutation
    chance range (grey); ``rows`` are the prediction-failure table's (``analysis.prediction_failure.COLUMNS``). With
    no rows the figure says ``reason``."""
    targets = list(dict.fromkeys(r["target"] for r in rows))
    if not targets:
        fig, ax = plt.subplots(figsize=(6, 1.6), constrained_layout=True)
        ax.axis("off")
        ax.text(0.5, 0.5, f"Prediction failure: no test\n{reason}", ha="center", va="center", fontsize=9, wrap=True)
        return fig
    entries = {t: list(dict.fromkeys((r["signal"], r["model"]) for r in rows if r["target"] == t)) for t in targets}
    height = max(len(e) for e in entries.values())
    fig, axes = plt.subplots(1, len(targets), figsize=(3.4 * len(targets), 0.9 + 0.32 * height),
                             constrained_layout=True, squeeze=False)  # fmt: skip
    for ax, target in zip(axes[0], targets, strict=True):
        for y, (signal, model) in enumerate(entries[target]):
            for offset, control in zip((-0.22, 0.0, 0.22), FAILURE_CONTROLS, strict=True):
                found = [r for r in rows if (r["target"], r["signal"], r["model"], r["control"]) ==
                         (target, signal, model, control)]  # fmt: skip
                if not found:
                    continue
                r = found[0]
                marker, colour, _ = FAILURE_CONTROLS[control]
                if np.isfinite(r["chance_low"]) and np.isfinite(r["chance_high"]):
                    ax.fill_betweenx([y + offset - 0.09, y + offset + 0.09], r["chance_low"], r["chance_high"],
                                     color="0.85", linewidth=0)  # fmt: skip
                error = [[max(r["value"] - r["ci_low"], 0)], [max(r["ci_high"] - r["value"], 0)]]
                ax.errorbar(r["value"], y + offset, xerr=error, fmt=marker, color=colour, markersize=3.5,
                            elinewidth=0.9, capsize=1.5)  # fmt: skip
        labels = [signal if model == "consensus" else f"{signal} ({short_name(model)})"
                  for signal, model in entries[target]]  # fmt: skip
        ax.set_yticks(range(len(labels)), labels, fontsize=6.5)
        ax.set_ylim(height - 0.5, -0.5)  # one row height in every panel: a short panel's rows sit at its top
        ax.axvline(0, color="black", linewidth=0.6)
        level = next(r["level"] for r in rows if r["target"] == target)
        ax.set_title(f"{target.replace('_', ' ')} (per {level})", fontsize=8.5)
        ax.set_xlabel("Spearman correlation", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    handles = [Line2D([], [], marker=m, color=c, linestyle="", label=text)
               for m, c, text in FAILURE_CONTROLS.values()]  # fmt: skip
    handles.append(Patch(color="0.85", label="permutation chance (95 %)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
    return fig


# the latent signals of the phonons figure, as its axes name them
PHONON_SIGNALS = {"disagreement": "disagreement", "atypicality": "atypicality (percentile)",
                  "symmetry_spread": "symmetry-breaking spread"}  # fmt: skip


def phonons_figure(rows: list[dict], tests: list[dict], tolerance: float) -> plt.Figure:
    """The phonon comparison: per latent signal, each structure's cross-model frequency spread against the signal
    (the Spearman correlation, its interval and chance level in the title), and each model's imaginary share per
    structure as a heatmap; ``rows`` the phonon table's (``analysis.phonons.COLUMNS``), ``tests`` its rank tests
    (``analysis.phonons.TEST_COLUMNS``), ``tolerance`` the imaginary-mode threshold (THz)."""
    structures = list(dict.fromkeys(r["material_id"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    first = {name: next(r for r in rows if r["material_id"] == name) for name in structures}
    widths = [1] * len(PHONON_SIGNALS) + [1.4]
    fig, axes = plt.subplots(1, len(widths), figsize=(3.3 * len(PHONON_SIGNALS) + 4.2, 3.6), constrained_layout=True,
                             gridspec_kw={"width_ratios": widths})  # fmt: skip
    spread = np.array([float(first[n]["frequency_spread"]) for n in structures])
    for ax, (signal, label) in zip(axes, PHONON_SIGNALS.items(), strict=False):
        x = np.array([float(first[n][signal]) for n in structures])
        ax.scatter(x, spread, s=18, color="#0072B2")
        for xi, yi, name in zip(x, spread, structures, strict=True):
            if np.isfinite(xi) and np.isfinite(yi):
                ax.annotate(first[name]["formula"], (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
        found = [t for t in tests if (t["signal"], t["target"]) == (signal, "frequency_spread")]
        if found:
            t = found[0]
            title = (f"rho {t['value']:.2f} [{t['ci_low']:.2f}, {t['ci_high']:.2f}], n = {t['n']}\n"
                     f"chance {t['chance']:.2f} [{t['chance_low']:.2f}, {t['chance_high']:.2f}]")  # fmt: skip
            ax.set_title(title, fontsize=7.5)
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("cross-model frequency spread (relative)", fontsize=8)
    heat = axes[-1]
    shares = np.full((len(structures), len(models)), np.nan)
    for r in rows:
        shares[structures.index(r["material_id"]), models.index(r["model"])] = float(r["imaginary_fraction"])
    image = heat.imshow(np.ma.masked_invalid(shares), cmap="Reds", vmin=0, vmax=max(0.05, np.nanmax(shares, initial=0)),
                        aspect="auto")  # fmt: skip
    heat.set_xticks(range(len(models)), [short_name(m, 14) for m in models], rotation=90, fontsize=6)
    heat.set_yticks(range(len(structures)), [f"{first[n]['formula']} ({n})" for n in structures], fontsize=6)
    heat.set_title(f"share of modes below -{tolerance:g} THz (grey: not computed)", fontsize=7.5)
    heat.set_facecolor("0.85")
    fig.colorbar(image, ax=heat, shrink=0.8).ax.tick_params(labelsize=6)
    return fig
