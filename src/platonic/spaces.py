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

from platonic.compare.neighbours import unit_rows

__all__ = ["LABELS", "SPACES", "STEPS", "model_spaces"]

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


def unit_space(raw: np.ndarray) -> np.ndarray:
    """The ``unit`` space of raw features ``(n, d)``: rows scaled to unit length in float64, returned in the raw
    rows' float dtype; NaN rows stay NaN, zero rows zero."""
    raw = np.asarray(raw)
    dtype = raw.dtype if np.issubdtype(raw.dtype, np.floating) else np.float64
    return unit_rows(raw.astype(np.float64)).astype(dtype, copy=False)


def model_spaces(raw: np.ndarray, anchor: np.ndarray) -> dict[str, np.ndarray]:
    """A model's features in every space, ``{space: (n, d_space)}`` in ``SPACES`` order, from its raw features
    ``(n, d)`` and its anchor coordinates ``(n, K)`` on the same rows."""
    return {"raw": raw, "unit": unit_space(raw), "anchor": anchor}
