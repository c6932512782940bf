"""Comparison figures, one module per report section: ``similarity`` (model x model heatmaps, agreement between
spaces, the model tree), ``shared_space`` (2-D maps of the anchor space, periodic trends, intrinsic dimension and
norms), ``analyses`` (training data vs architecture, transfer, departures, symmetry breaking, the protocol ladder,
anchor sensitivity) and ``layers``; ``style`` holds what they share, ``save_figure`` among it.

Plotting draws, stages compute: a figure function takes the arrays or tables it draws (the stage or analysis module
that owns a concept computes them) and returns a matplotlib Figure; ``save_figure`` writes it. Every figure draws
models in the order given and in the colour ``model_colours`` assigns to that order; the heatmaps, the agreement
figure and the model tree set control representations (``ds.control``) apart (the heatmaps move them after the
MLIPs).
"""

from platonic.figures import analyses, layers, shared_space, similarity, style
from platonic.figures.analyses import *  # noqa: F403
from platonic.figures.layers import *  # noqa: F403
from platonic.figures.shared_space import *  # noqa: F403
from platonic.figures.similarity import *  # noqa: F403
from platonic.figures.style import *  # noqa: F403

__all__ = [*style.__all__, *similarity.__all__, *shared_space.__all__, *analyses.__all__, *layers.__all__]
