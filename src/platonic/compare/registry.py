"""The metric registry: the list of metric classes (``platonic.compare.metrics``), each with what a reader needs to
interpret its numbers (``Metric``, its class's ``facts``).

The schema's ``similarity.metrics`` enum, the fan-in, the figures, the report captions and the README's
metric table all read this list (tests check the schema and the README against it). Order matters: it is
the order of the ``metric`` dimension of the similarity store. Adding a metric is its module and one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from platonic.compare import metrics
from platonic.compare.metrics.base import ATOMS
from platonic.compare.metrics.base import Facts as Metric

__all__ = [
    "ATOMS", "CLASSES", "DIRECTED", "IMPLEMENTATIONS", "LAYER_METRICS", "METRICS", "NAMES", "SCALE_FREE",
    "SIMILARITIES", "VARIANTS", "Metric", "caption", "label", "markdown_table", "metric",
]  # fmt: skip

# the metrics, in the order of the similarity store's ``metric`` dimension: one class each (``metrics.base.Metric``)
CLASSES: tuple[type[metrics.Metric], ...] = (
    metrics.LinearCka,
    metrics.DebiasedCka,
    metrics.MutualKnn,
    metrics.Cknna,
    metrics.Svcca,
    metrics.Procrustes,
    metrics.DistanceCorrelation,
    metrics.OptimalTransport,
    metrics.InformationImbalance,
    metrics.Gfre,
    metrics.Lfre,
    metrics.Rsa,
)

# a metric's implementation (one instance of its class) and its facts, by name
IMPLEMENTATIONS: dict[str, metrics.Metric] = {cls.facts.name: cls() for cls in CLASSES}
METRICS: dict[str, Metric] = {name: m.facts for name, m in IMPLEMENTATIONS.items()}

# what a metric is under a similarity setting other than the default its entry describes: (metric, similarity key,
# value) -> the fields of its entry that change (its name, the config and store key, stays)
VARIANTS: dict[tuple[str, str, str], dict[str, str]] = {
    # the default (ot_cost: sqeuclidean): squared Euclidean ground cost, the root of the exact plan's total cost (W2)
    ("optimal_transport", "ot_cost", "euclidean"): {
        "label": "1-Wasserstein distance",
        "description": "1-Wasserstein distance between the point clouds, the exact plan's total Euclidean cost;"
        " defined where the spaces have equal width (the anchor space)",
        "reference": "exact EMD with POT (Flamary et al., JMLR 2021), Euclidean ground cost as Li & Walsh 2026",
        "computation": "exact earth mover's distance, Euclidean ground cost, no root",
    },
}

NAMES: tuple[str, ...] = tuple(METRICS)
DIRECTED: frozenset[str] = frozenset(m.name for m in METRICS.values() if m.directed)
SIMILARITIES: frozenset[str] = frozenset(m.name for m in METRICS.values() if m.similarity)
SCALE_FREE: frozenset[str] = frozenset(m.name for m in METRICS.values() if m.scale_free)
# what the layer x layer table (analysis.layers.metrics) may compare: one number per pair of layers (not directed)
# that means the same between layers of different widths and scales (scale-free)
LAYER_METRICS: tuple[str, ...] = tuple(name for name in NAMES if name not in DIRECTED and name in SCALE_FREE)


def metric(name: str, settings=None) -> Metric:
    """The registry entry of ``name`` as the similarity ``settings`` make it (``VARIANTS``; a ``SimilaritySettings``
    or a mapping such as a similarity store's attrs; None or a key not there: the defaults); a clear error listing the
    known metrics otherwise."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(NAMES)}")
    entry = METRICS[name]
    for (which, key, value), fields in VARIANTS.items():
        if which == name and _setting(settings, key) == value:
            entry = replace(entry, **fields)
    return entry


def _setting(settings, key: str):
    if settings is None:
        return None
    return settings.get(key) if isinstance(settings, Mapping) else getattr(settings, key, None)


def label(name: str, settings=None) -> str:
    """Axis/title text of a metric under ``settings`` (as ``metric``; the name itself for one not in the
    registry)."""
    return metric(name, settings).label if name in METRICS else name


def caption(name: str, settings) -> str:
    """One sentence for a report caption: what ``name`` measures, its reference, and on which atoms with the
    numbers of ``settings`` (a ``SimilaritySettings``)."""
    m = metric(name, settings)
    atoms = {
        "all": "every compared atom",
        "queries": f"{settings.queries} seeded query atoms (at most all atoms), neighbourhoods and ranks over all",
        "subsample": f"a seeded subsample of {settings.subsample} atoms (at most all atoms)",
        "test": f"the test structures of a seeded split keeping {settings.train_fraction:g} of the structures for"
        " the ridge fit",
    }[m.atoms]
    direction = "1 = identical" if m.similarity else "0 = identical"
    directed = "; row model -> column model" if m.directed else ""
    return f"{m.description} ({m.reference}; {direction}{directed}); computed on {atoms}"


def markdown_table() -> str:
    """The README's metric table, one row per metric in registry order."""
    rows = [
        "| metric | what it measures | reference | larger means | atoms used | computed | bootstrap replicate |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in METRICS.values():
        direction = "more alike" if m.similarity else "further apart"
        direction += " (directed: row -> column)" if m.directed else ""
        rows.append(
            f"| `{m.name}` | {m.description} | {m.reference} | {direction} | {ATOMS[m.atoms]} | {m.computation} |"
            f" {m.interval} |"
        )
    return "\n".join(rows)
