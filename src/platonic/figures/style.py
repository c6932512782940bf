"""What every figure shares: ``save_figure``, the model palette, how control representations are set apart,
wrapped model names, panel grids and chance bands."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from platonic.spaces import LABELS  # noqa: E402

__all__ = [
    "SPACE_LABELS",
    "MODEL_PALETTE",
    "SPACE_HATCH",
    "CONTROL_SUFFIX",
    "CONTROL_COLOUR",
    "CONTROL_HATCH",
    "save_figure",
    "model_colours",
    "control_flags",
    "model_labels",
    "mark_control_ticks",
    "set_apart_controls",
    "short_name",
    "panel_grid",
    "chance_band",
]

SPACE_LABELS = LABELS


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


def control_flags(ds: xr.Dataset, models) -> np.ndarray:
    """``ds.control`` of each of ``models`` (True: a control representation); all False in a store without it."""
    if "control" not in ds:
        return np.zeros(len(models), dtype=bool)
    return ds["control"].sel(model=[str(m) for m in models]).values.astype(bool)


def model_labels(models, control: np.ndarray) -> list[str]:
    """Each model's name, with ``CONTROL_SUFFIX`` on the controls."""
    return [f"{m}{CONTROL_SUFFIX}" if c else str(m) for m, c in zip(models, control, strict=True)]


def mark_control_ticks(ticks, colour: str | None = None) -> None:
    """Italic, and in ``colour`` if given, the tick labels that name a control (end in ``CONTROL_SUFFIX``)."""
    for tick in ticks:
        if tick.get_text().endswith(CONTROL_SUFFIX):
            tick.set_fontstyle("italic")
            if colour is not None:
                tick.set_color(colour)


def set_apart_controls(ax, control: np.ndarray, ink: np.ndarray) -> None:
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


def short_name(name: str, width: int = 24) -> str:
    """A model name wrapped onto lines of at most ``width`` characters (long names stay readable in titles)."""
    import textwrap

    return "\n".join(textwrap.wrap(str(name), width, break_on_hyphens=True)) or str(name)


def panel_grid(n_panels: int, max_columns: int, panel: float, extra_width: float = 0.0):
    """A figure of ``n_panels`` square panels of ``panel`` inches, at most ``max_columns`` to a row (the unused ones
    hidden); returns (figure, the ``n_panels`` axes in reading order)."""
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


def chance_band(chance: np.ndarray | None, sd: np.ndarray | None, keep: np.ndarray) -> tuple[float, float] | None:
    """(lowest chance - 2 sd, highest chance + 2 sd) over the pairs ``keep`` with a finite chance level (a missing
    sd counts as 0); None where there is none."""
    if chance is None:
        return None
    finite = keep & np.isfinite(chance)
    if not finite.any():
        return None
    spread = 2 * np.nan_to_num(sd[finite]) if sd is not None else 0.0
    return float(np.min(chance[finite] - spread)), float(np.max(chance[finite] + spread))
