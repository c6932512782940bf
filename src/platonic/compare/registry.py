"""The metric registry: every similarity metric once, with what a reader needs to interpret its numbers.

The schema's ``similarity.metrics`` enum, the fan-in, the figures, the report captions and the README's
metric table all read this table (tests check the schema and the README against it). Order matters: it is
the order of the ``metric`` dimension of the similarity store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

# which atoms a metric's number is computed on
ATOMS = {
    "all": "every compared atom",
    "queries": "seeded query atoms (similarity.queries), neighbourhoods or ranks over every atom",
    "subsample": "a seeded subsample (similarity.subsample)",
    "test": "the test structures of a seeded structure split (1 - similarity.train_fraction of them)",
}


@dataclass(frozen=True)
class Metric:
    """One metric: ``name`` (its config and store key), ``label`` (axis/title text), ``description`` (one
    sentence for captions), ``reference``, ``similarity`` (True: larger = more alike, 1 = identical; False: a
    distance or error, 0 = identical), ``directed`` (metric(a -> b) != metric(b -> a): stored as model_a =
    source, model_b = target), ``atoms`` (a key of ``ATOMS``), ``neighbours`` (uses the k-NN lists),
    ``computation`` (how the number is obtained), ``interval`` (how a bootstrap replicate is obtained,
    ``platonic.compare.bootstrap``), ``scale_free`` (False: the value carries the units of the space, so
    values in different spaces are not comparable numbers)."""

    name: str
    label: str
    description: str
    reference: str
    similarity: bool
    directed: bool
    atoms: str
    neighbours: bool
    computation: str
    interval: str
    scale_free: bool = True


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "linear_cka", "linear CKA",
            "linear centred kernel alignment; 1 = identical up to rotation and isotropic scale",
            "Kornblith et al., ICML 2019", True, False, "all", False, "from streamed d x d covariances",
            "exact, from per-structure sums",
        ),
        Metric(
            "debiased_cka", "debiased linear CKA",
            "linear CKA with unbiased HSIC estimators; about 0 for unrelated spaces",
            "Song et al., JMLR 2012", True, False, "all", False, "from streamed moments",
            "exact, from per-structure sums",
        ),
        Metric(
            "mutual_knn", "mutual k-NN alignment",
            "shared fraction of the k nearest cosine neighbours (similarity.k)",
            "Huh et al., ICML 2024", True, False, "all", True, "from each model's k-NN lists",
            "neighbour lists kept fixed",
        ),
        Metric(
            "cknna", "CKNNA",
            "CKA restricted to mutual k-NN pairs, symmetrised over the two kernels",
            "Huh et al., ICML 2024", True, False, "all", True, "sparse masked kernels on the k-NN lists",
            "neighbour lists kept fixed",
        ),
        Metric(
            "svcca", "SVCCA",
            "mean canonical correlation after keeping 99 % of each space's variance, at most"
            " similarity.svcca_max_fraction of the atoms as directions",
            "Raghu et al., NeurIPS 2017", True, False, "all", False, "from streamed covariances",
            "exact, from per-structure sums",
        ),
        Metric(
            "procrustes", "Procrustes angular distance (rad)",
            "angular orthogonal-Procrustes distance after centring and unit norm, in radians; 0 = identical up to"
            " rotation",
            "Williams et al., NeurIPS 2021", False, False, "all", False, "nuclear norm of the centred cross-covariance",
            "exact, from per-structure sums",
        ),
        Metric(
            "distance_correlation", "distance correlation",
            "distance correlation of the two point clouds",
            "Szekely et al., Ann. Stat. 2007", True, False, "subsample", False, "dense distance matrices",
            "exact, the subsample's rows weighted by their draws",
        ),
        Metric(
            "optimal_transport", "2-Wasserstein distance",
            "2-Wasserstein distance between the point clouds; defined where the spaces have equal width (the"
            " anchor space)",
            "exact EMD with POT (Flamary et al., JMLR 2021)", False, False, "subsample", False,
            "exact earth mover's distance", "none: one exact earth mover's distance per replicate", scale_free=False,
        ),
        Metric(
            "information_imbalance", "information imbalance (row -> column)",
            "information imbalance from the row model to the column model; 0 = the row model's neighbourhoods"
            " predict the column model's",
            "Glielmo et al., PNAS Nexus 2022", False, True, "queries", True, "exact ranks over every atom",
            "each query's rank kept fixed",
        ),
        Metric(
            "gfre", "GFRE (row predicts column)",
            "global feature reconstruction error of the column model from the row model (ridge)",
            "Goscinski et al., MLST 2021", False, True, "test", False,
            "ridge from train/test moment matrices, atoms of a structure on one side of the split; relative ridge"
            " by two-fold cross-validation on the training structures (similarity.ridge)",
            "exact, from per-structure sums (fixed split, the value's ridge)",
        ),
        Metric(
            "lfre", "LFRE (row predicts column)",
            "local feature reconstruction error of the column model from the row model (similarity.lfre_k"
            " neighbours)",
            "Goscinski et al., MLST 2021", False, True, "queries", True,
            "local ridge on each query's neighbourhood; relative ridge by two-fold cross-validation on the"
            " neighbourhoods (similarity.ridge)",
            "each query's error kept fixed",
        ),
    )
}  # fmt: skip

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
