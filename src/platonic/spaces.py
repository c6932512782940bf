"""The spaces every comparison is made in: one list for the whole package.

- ``raw``: each model's own per-atom features;
- ``unit``: the same rows scaled to unit length, no anchors (the cosine geometry the projection starts from);
- ``anchor``: each row's cosine to the K anchor atoms (``platonic.projection``), the shared space.

The projection does two things at once, normalising each row and describing it by its angles to the anchors, so
the steps between the spaces say which does what: ``unit - raw`` is what normalisation does, ``anchor - unit`` what
the anchors add on top of it, and ``anchor - raw`` both.
"""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics import Features

__all__ = ["LABELS", "SAME_NEIGHBOURS", "SPACES", "STEPS", "in_dependency_order", "model_spaces", "unit_space"]

SPACES = ("raw", "unit", "anchor")
LABELS = {"raw": "raw latent spaces", "unit": "unit-normalised raw spaces", "anchor": "shared anchor space"}
# (name, later space, earlier space): each step's change is later minus earlier
STEPS = (
    ("unit - raw", "unit", "raw"),
    ("anchor - unit", "anchor", "unit"),
    ("anchor - raw", "anchor", "raw"),
)
# spaces whose cosine neighbour lists are those of another space by construction (a row and its unit row have the
# same cosine to every other row), so a summary takes them over instead of searching again
SAME_NEIGHBOURS = {"unit": "raw"}


def unit_space(raw: np.ndarray) -> Features:
    """The unit space of raw features ``raw (n, d)``: their float64 unit rows, which are their own unit rows."""
    unit = Features(np.asarray(raw)).unit
    return Features(unit, unit=unit)


def model_spaces(raw: np.ndarray, anchor: np.ndarray) -> dict[str, Features]:
    """A model's features in every space, ``{space: Features (n, d_space)}`` in ``SPACES`` order, from its raw
    features ``raw (n, d)`` and its anchor coordinates ``anchor (n, K)`` on the same rows.

    The unit space's rows are the raw space's float64 unit rows (``Features.unit``), one array serving both: the
    raw space's cosine geometry and the unit space's features (whose own unit rows they are)."""
    raw_features = Features(np.asarray(raw))
    unit = raw_features.unit
    return {"raw": raw_features, "unit": Features(unit, unit=unit), "anchor": Features(np.asarray(anchor))}


def in_dependency_order(spaces) -> list[tuple[str, ...]]:
    """``spaces`` in batches: first those that search their own neighbour lists, then those that take them over
    from an earlier batch (``SAME_NEIGHBOURS``), so that each batch's spaces can run side by side."""
    spaces = tuple(spaces)
    first = tuple(s for s in spaces if SAME_NEIGHBOURS.get(s) not in spaces)
    later = tuple(s for s in spaces if s not in first)
    return [batch for batch in (first, later) if batch]
