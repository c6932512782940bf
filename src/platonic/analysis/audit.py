"""Consistency audit and bias detection in the shared anchor space (embedding arithmetic: `arithmetic`).

Every model's anchor coordinates (cosines to the same anchor atoms) are scaled to unit rows; the
*consensus* of an atom is the mean of the models' unit rows, and a model's *distance to the
consensus* (0 .. 2) measures how far it places the atom from where the models place it on average.
Together with the overlap of the models' k-nearest-neighbour sets it gives a per-atom
disagreement, aggregated per element and per structure. (No per-model centring here: a centring
mean moves with every atom, so one scrambled element would shift a model's every row.)

Bias: each model's mean distance per element is divided by that model's median over elements
(a model that sits further from the consensus everywhere is not biased on any one element); a
model *departs* on an element when this relative distance lies above every other model's and its
z-score against the others exceeds a threshold (the others' spread is floored, so that models
agreeing almost exactly do not make every tiny difference significant).

All per-atom passes stream over row chunks; memory grows with models x atoms, never atoms^2.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict

import numpy as np
import xarray as xr
from ase.data import atomic_numbers, chemical_symbols

from platonic.compare.neighbours import nearest_neighbours
from platonic.settings import AuditSettings, SimilaritySettings

CHUNK = 16384
# columns of the tables (written with their header even when empty)
ELEMENT_COLUMNS = [
    "rank", "element", "Z", "n_atoms", "disagreement", "neighbour_jaccard", "most_departing_model", "departure"
]  # fmt: skip
STRUCTURE_COLUMNS = ["rank", "material_id", "formula", "n_atoms", "disagreement", "neighbour_jaccard"]
BIAS_COLUMNS = ["model", "element", "Z", "n_atoms", "distance", "departure", "flagged", "training_count"]


def column_means(x: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Column means of ``x (N, d)`` in float64, streamed."""
    total = np.zeros(x.shape[1])
    for start in range(0, len(x), chunk):
        total += np.asarray(x[start : start + chunk], dtype=np.float64).sum(axis=0)
    return total / len(x)


def normalised_rows(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``x (n, d)`` centred by ``mean (d,)`` and scaled to unit rows (zero rows stay zero), float64."""
    centred = np.asarray(x, dtype=np.float64) - mean
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.where(norms > 0, norms, 1.0)


def consensus_distances(spaces: dict[str, np.ndarray], chunk: int = CHUNK) -> np.ndarray:
    """Distance of every model's normalised row to the cross-model consensus (mean of the normalised
    rows): ``spaces`` maps model -> ``(N, K)`` anchor coordinates; returns ``(M, N)`` float64."""
    models = list(spaces)
    widths = {np.shape(x)[1] for x in spaces.values()}
    if len(widths) != 1:
        raise ValueError(f"the models' anchor coordinates have different widths {sorted(widths)}; use one anchor set")
    n = len(spaces[models[0]])
    out = np.empty((len(models), n))
    no_centre = np.zeros(widths.pop())
    for start in range(0, n, chunk):
        unit = np.stack([normalised_rows(spaces[m][start : start + chunk], no_centre) for m in models])
        out[:, start : start + chunk] = np.linalg.norm(unit - unit.mean(axis=0), axis=2)
    return out


def neighbour_jaccard(neighbours: dict[str, np.ndarray], chunk: int = CHUNK) -> np.ndarray:
    """Per atom, the Jaccard overlap of its k-NN sets, averaged over all pairs of models:
    ``neighbours`` maps model -> ``(N, k)`` indices; returns ``(N,)`` in [0, 1] (1 = same sets)."""
    lists = list(neighbours.values())
    if len(lists) < 2:
        raise ValueError("the neighbour overlap needs at least two models")
    n, k = lists[0].shape
    total = np.zeros(n)
    pairs = list(itertools.combinations(range(len(lists)), 2))
    for a, b in pairs:
        for start in range(0, n, chunk):
            joined = np.sort(np.hstack([lists[a][start : start + chunk], lists[b][start : start + chunk]]), axis=1)
            shared = np.count_nonzero(joined[:, 1:] == joined[:, :-1], axis=1)
            total[start : start + chunk] += shared / (2 * k - shared)
    return total / len(pairs)


def group_means(values: np.ndarray, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of ``values (..., N)`` per label in ``labels (N,)`` (0..n_groups-1) -> ``(..., n_groups)``;
    NaN for an empty group."""
    counts = np.bincount(labels, minlength=n_groups).astype(np.float64)
    flat = np.atleast_2d(values)
    sums = np.stack([np.bincount(labels, weights=row, minlength=n_groups) for row in flat])
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return means if np.ndim(values) > 1 else means[0]


def element_departure(
    distance: np.ndarray, threshold: float = 3.0, spread_floor: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Per (model, element), how far a model's mean distance to the consensus ``distance (M, E)``,
    divided by its median over elements (``r``), departs from the *other* models': ``z = (r_m -
    mean_others) / max(std_others, spread_floor * mean_others)``. ``flagged`` where
    ``z > threshold`` and ``r_m`` exceeds every other model's.
    Needs three or more models (with two, both sit equally far from their mean)."""
    m = distance.shape[0]
    if m < 3:
        raise ValueError(f"bias detection needs at least three models, got {m}")
    # relative to each model's own typical level (median over elements): a model that sits further
    # from the consensus everywhere is not biased on any one element
    distance = distance / np.nanmedian(distance, axis=1, keepdims=True)
    z = np.full(distance.shape, np.nan)
    above_all = np.zeros(distance.shape, dtype=bool)
    for i in range(m):
        others = np.delete(distance, i, axis=0)
        mean, spread = others.mean(axis=0), others.std(axis=0)
        scale = np.maximum(spread, spread_floor * mean)
        with np.errstate(invalid="ignore", divide="ignore"):
            z[i] = (distance[i] - mean) / scale
        above_all[i] = distance[i] > others.max(axis=0)
    flagged = (z > threshold) & above_all
    return z, flagged


def consistency_audit(
    spaces: dict[str, np.ndarray],
    z: np.ndarray,
    structure_index: np.ndarray,
    structure_ids: np.ndarray,
    settings: AuditSettings | None = None,
    neighbours: dict[str, np.ndarray] | None = None,
) -> xr.Dataset:
    """Disagreement of the models in the shared space, per atom, element and structure, and per-model
    departures per element. ``spaces``: model -> anchor coordinates ``(N, K)`` over the same atoms;
    ``z (N,)`` atomic numbers; ``structure_index (N,)`` in 0..S-1 with ``structure_ids (S,)``.
    ``neighbours`` (model -> ``(N, k)``) are computed when not given."""
    settings = settings or AuditSettings()
    models = list(spaces)
    if len(models) < 2:
        raise ValueError(f"the audit needs at least two models, got {models}")
    n = len(z)
    k = min(settings.k, n - 1)
    distance = consensus_distances(spaces)
    # null: the similarity stage's search (validate_config writes that in; by hand, its schema default)
    search = settings.neighbour_search or SimilaritySettings().neighbour_search
    if neighbours is None:
        neighbours = {m: nearest_neighbours(x, k, search, seed=settings.seed) for m, x in spaces.items()}
    jaccard = neighbour_jaccard({m: nb[:, :k] for m, nb in neighbours.items()})
    disagreement = distance.mean(axis=0)

    elements, element_index = np.unique(z, return_inverse=True)
    element_count = np.bincount(element_index, minlength=len(elements))
    element_distance = group_means(distance, element_index, len(elements))
    n_structures = len(structure_ids)
    structure_count = np.bincount(structure_index, minlength=n_structures)
    if len(models) >= 3:
        departure, flagged = element_departure(element_distance, settings.departure_threshold, settings.spread_floor)
        flagged &= (element_count >= settings.min_atoms)[None, :]
    else:
        departure = np.full(element_distance.shape, np.nan)
        flagged = np.zeros(element_distance.shape, dtype=bool)
    ds = xr.Dataset(
        {
            "consensus_distance": (("model", "atom"), distance),
            "disagreement": (("atom",), disagreement),
            "neighbour_jaccard": (("atom",), jaccard),
            "element_distance": (("model", "element"), element_distance),
            "element_disagreement": (("element",), group_means(disagreement, element_index, len(elements))),
            "element_jaccard": (("element",), group_means(jaccard, element_index, len(elements))),
            "element_count": (("element",), element_count),
            "departure": (("model", "element"), departure),
            "flagged": (("model", "element"), flagged),
            "structure_disagreement": (("structure",), group_means(disagreement, structure_index, n_structures)),
            "structure_jaccard": (("structure",), group_means(jaccard, structure_index, n_structures)),
            "structure_count": (("structure",), structure_count),
        },
        coords={
            "model": models,
            "atom": np.arange(n),
            "Z": ("atom", np.asarray(z, dtype=np.int64)),
            "structure_index": ("atom", np.asarray(structure_index, dtype=np.int64)),
            "element": elements.astype(np.int64),
            "symbol": ("element", [chemical_symbols[e] for e in elements]),
            "structure": np.arange(n_structures),
            "material_id": ("structure", np.asarray(structure_ids, dtype=object)),
        },
    )
    ds["consensus_distance"].attrs["description"] = (
        "distance (0..2) of the model's unit-normalised anchor coordinates to the mean of all models'"
    )
    ds["departure"].attrs["description"] = (
        "z-score of the model's mean distance on the element (relative to its median over elements) "
        "against the other models' (spread floored)"
    )
    ds.attrs.update(kind="audit", n_models=len(models), **asdict(settings), k_used=k)
    return ds


def contested_elements(ds: xr.Dataset, top: int | None = None) -> list[dict]:
    """Elements with at least ``min_atoms`` atoms, most contested first (mean disagreement)."""
    keep = ds["element_count"].values >= ds.attrs["min_atoms"]
    order = [i for i in np.argsort(-ds["element_disagreement"].values, kind="stable") if keep[i]]
    models = [str(m) for m in ds.model.values]
    rows = []
    for rank, i in enumerate(order[:top] if top else order, start=1):
        departures = ds["departure"].values[:, i]
        worst = int(np.nanargmax(departures)) if np.isfinite(departures).any() else None
        rows.append(
            {
                "rank": rank,
                "element": str(ds.symbol.values[i]),
                "Z": int(ds.element.values[i]),
                "n_atoms": int(ds["element_count"].values[i]),
                "disagreement": float(ds["element_disagreement"].values[i]),
                "neighbour_jaccard": float(ds["element_jaccard"].values[i]),
                "most_departing_model": models[worst] if worst is not None else "",
                "departure": float(departures[worst]) if worst is not None else float("nan"),
            }
        )
    return rows


def contested_structures(ds: xr.Dataset, top: int | None = None) -> list[dict]:
    """Structures, most contested first (mean disagreement of their atoms), with their ids and formulas."""
    import ase

    values = ds["structure_disagreement"].values
    order = [i for i in np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable") if np.isfinite(values[i])]
    structure_of_atom = ds["structure_index"].values
    rows = []
    for rank, i in enumerate(order[:top] if top else order, start=1):
        numbers = ds.Z.values[structure_of_atom == i]
        rows.append(
            {
                "rank": rank,
                "material_id": str(ds.material_id.values[i]),
                "formula": ase.Atoms(numbers=numbers).get_chemical_formula(mode="metal"),
                "n_atoms": int(ds["structure_count"].values[i]),
                "disagreement": float(values[i]),
                "neighbour_jaccard": float(ds["structure_jaccard"].values[i]),
            }
        )
    return rows


def bias_table(ds: xr.Dataset, training_counts: dict[str, dict[int, float]] | None = None) -> list[dict]:
    """One row per (model, element) with enough atoms: mean distance to the consensus, departure,
    flag, and the element's count in the model's training data where known."""
    training_counts = training_counts or {}
    rows = []
    for (i, model), (e, element) in itertools.product(enumerate(ds.model.values), enumerate(ds.element.values)):
        if ds["element_count"].values[e] < ds.attrs["min_atoms"]:
            continue
        counts = training_counts.get(str(model))
        rows.append(
            {
                "model": str(model),
                "element": str(ds.symbol.values[e]),
                "Z": int(element),
                "n_atoms": int(ds["element_count"].values[e]),
                "distance": float(ds["element_distance"].values[i, e]),
                "departure": float(ds["departure"].values[i, e]),
                "flagged": bool(ds["flagged"].values[i, e]),
                "training_count": float(counts.get(int(element), 0.0)) if counts is not None else float("nan"),
            }
        )
    return rows


def training_count_correlation(ds: xr.Dataset, training_counts: dict[str, dict[int, float]]) -> dict[str, float]:
    """Per model with known training counts: Spearman correlation between log(1 + count) and the
    model's distance to the consensus over elements with enough atoms (negative = elements seen
    less in training are where the model departs)."""
    from scipy.stats import spearmanr

    keep = ds["element_count"].values >= ds.attrs["min_atoms"]
    out = {}
    for i, model in enumerate(ds.model.values):
        counts = training_counts.get(str(model))
        if counts is None:
            continue
        log_count = np.log1p([counts.get(int(e), 0.0) for e in ds.element.values[keep]])
        out[str(model)] = float(spearmanr(log_count, ds["element_distance"].values[i, keep]).statistic)
    return out


def read_training_counts(path: str) -> dict[int, float]:
    """A training-data element-count CSV (columns ``element`` (symbol or Z) and ``count``) -> {Z: count}."""
    import csv

    counts: dict[int, float] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"element", "count"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: training element counts need the columns 'element' and 'count'")
        for row in reader:
            element = row["element"].strip()
            z = int(element) if element.isdigit() else atomic_numbers.get(element)
            if z is None:
                raise ValueError(f"{path}: unknown element {element!r}")
            counts[z] = float(row["count"])
    return counts
