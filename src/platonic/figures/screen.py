"""The screen's figure: where the screened environments fall in each model's distribution of the study's own."""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt

__all__ = ["screen_figure"]


def screen_figure(percentile: dict[str, np.ndarray], consensus: np.ndarray, name: str) -> plt.Figure:
    """Histogram of the screened atoms' atypicality percentiles (0 .. 100) per model (``percentile``: model ->
    ``(Q,)``, NaN where not embedded) and of their ``consensus (Q,)``; the study's own atoms spread evenly in each
    model (a mean of percentiles, the consensus is narrower)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    bins = np.linspace(0, 100, 21)
    for model, values in percentile.items():
        values = values[np.isfinite(values)]
        ax.hist(values, bins=bins, density=True, histtype="step", linewidth=0.9, alpha=0.8, label=model)
    values = consensus[np.isfinite(consensus)]
    ax.hist(values, bins=bins, density=True, histtype="step", linewidth=2.4, color="black", label="consensus")
    ax.axhline(0.01, color="grey", linestyle="--", linewidth=1, label="the study's own atoms, per model (uniform)")
    ax.set_xlabel("atypicality percentile in the study's own environments")
    ax.set_ylabel("density of screened atoms")
    ax.set_title(f"screen {name}: {len(values)} atoms every model embedded")
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    return fig
