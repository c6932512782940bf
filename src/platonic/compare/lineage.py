"""Training data vs architecture: do models that share their training data agree more than models that share their
architecture? (Edamadaka et al., arXiv 2512.03750, report that training data dominates.)

Every unordered pair of trained models falls in one of ``GROUPS`` by its two models' metadata (config
``models.<name>.architecture`` and ``training_data``):

- *same architecture*: equal ``architecture`` strings;
- *same training data*: equal **sets** of ``training_data`` names (order and repeats do not matter). Sets that
  overlap but differ (MPtrj vs MPtrj + sAlex) are *different* training data; such pairs are counted in
  ``n_partial_overlap`` of their group, so a reader can see how many "different" pairs share part of their data.
  ``fidelity`` is not part of the definition.

Left out, and counted (``LEFT_OUT``): pairs with a control representation (``control``; compared with the models in
the headline instead), pairs with an untrained model (``training_data: []``: "the same training data" means nothing
for two models that saw none), and pairs where either model's architecture or training data is unknown (null).

A group's value is the mean over its pairs, its interval that of the group mean from the shared bootstrap
replicates, and the difference of two groups (``DIFFERENCES``) gets its interval from the same replicates
(``platonic.compare.pair_means``; directed metrics are symmetrised, the mean of both directions).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import numpy as np
import xarray as xr

from platonic.compare.pair_means import excludes_zero, group_mean, interval, pair_values
from platonic.compare.registry import SIMILARITIES

GROUPS = {
    "both": "the same architecture and the same training data",
    "architecture only": "the same architecture, different training data",
    "training data only": "the same training data, different architectures",
    "neither": "different architectures and different training data",
}
# (a, b): the difference a - b; the first answers "does the training data matter more than the architecture?"
DIFFERENCES = (
    ("training data only", "architecture only"),
    ("training data only", "neither"),
    ("architecture only", "neither"),
    ("both", "architecture only"),
    ("both", "training data only"),
)
LEFT_OUT = {
    "control": "a control representation",
    "untrained": "an untrained model (training_data: [])",
    "unknown": "an unknown architecture or training data (null)",
}
COLUMNS = ["metric", "space", "kind", "group", "n_pairs", "mean", "median", "min", "max", "ci_low", "ci_high",
           "standard_error", "chance", "differs", "larger_means", "n_partial_overlap", "pairs"]  # fmt: skip


@dataclass(frozen=True)
class Lineage:
    """What a model is built from: ``architecture`` (None: unknown), ``training_data`` (a frozenset of dataset
    names; empty: untrained; None: unknown), and whether it is a ``control`` representation."""

    architecture: str | None = None
    training_data: frozenset[str] | None = None
    control: bool = False

    @classmethod
    def from_mapping(cls, entry: dict) -> Lineage:
        data = entry.get("training_data")
        return cls(entry.get("architecture"), None if data is None else frozenset(data), bool(entry.get("control")))

    @property
    def training_label(self) -> str:
        """The training data as text: names joined by " + " in sorted order, "untrained" or "unknown"."""
        if self.training_data is None:
            return "unknown"
        return " + ".join(sorted(self.training_data)) or "untrained"


def read_metadata(metadata: str | dict | None) -> dict[str, Lineage]:
    """``{model: Lineage}`` from the JSON (or mapping) ``{model: {"architecture", "training_data", "control",
    ...}}`` of the rules' ``model_metadata()``; missing keys are unknown."""
    if metadata is None:
        return {}
    mapping = json.loads(metadata) if isinstance(metadata, str) else metadata
    return {str(model): Lineage.from_mapping(entry or {}) for model, entry in mapping.items()}


def _reason(a: Lineage, b: Lineage) -> str | None:
    """Why a pair is left out (a key of ``LEFT_OUT``), or None."""
    if a.control or b.control:
        return "control"
    if a.training_data == frozenset() or b.training_data == frozenset():
        return "untrained"
    if None in (a.architecture, b.architecture, a.training_data, b.training_data):
        return "unknown"
    return None


def group_of(a: Lineage, b: Lineage) -> str:
    """The key of ``GROUPS`` of a pair of trained models with known metadata."""
    architecture, data = a.architecture == b.architecture, a.training_data == b.training_data
    return {(True, True): "both", (True, False): "architecture only", (False, True): "training data only",
            (False, False): "neither"}[architecture, data]  # fmt: skip


@dataclass(frozen=True)
class PairGroups:
    """The unordered pairs ``(i, j)`` (i < j, indices into the models) of each of ``GROUPS`` and each reason of
    ``LEFT_OUT``, and the grouped pairs whose training data overlap without being equal."""

    groups: dict[str, list[tuple[int, int]]]
    left_out: dict[str, list[tuple[int, int]]]
    partial_overlap: frozenset[tuple[int, int]]


def pair_groups(models: list[str], metadata: dict[str, Lineage], control=None) -> PairGroups:
    """Group every unordered pair of ``models``; a model without metadata is unknown, and ``control (n_models,)``
    (the similarity store's) marks controls as well as the metadata's own ``control``."""
    control = np.zeros(len(models), dtype=bool) if control is None else np.asarray(control, dtype=bool)
    lineages = []
    for model, marked in zip(models, control, strict=True):
        known = metadata.get(model, Lineage())
        lineages.append(Lineage(known.architecture, known.training_data, known.control or bool(marked)))
    groups = {name: [] for name in GROUPS}
    left_out = {name: [] for name in LEFT_OUT}
    overlap = set()
    for i, j in itertools.combinations(range(len(models)), 2):
        a, b = lineages[i], lineages[j]
        reason = _reason(a, b)
        if reason is not None:
            left_out[reason].append((i, j))
            continue
        groups[group_of(a, b)].append((i, j))
        if a.training_data != b.training_data and a.training_data & b.training_data:
            overlap.add((i, j))
    return PairGroups(groups, left_out, frozenset(overlap))


def store_pair_groups(ds: xr.Dataset, metadata: dict[str, Lineage]) -> PairGroups:
    """``pair_groups`` of the models of a similarity store, its ``control (model)`` included."""
    models = [str(m) for m in ds.model_a.values]
    return pair_groups(models, metadata, ds["control"].values if "control" in ds else None)


def _names(models: list[str], pairs) -> str:
    return "; ".join(f"{models[i]}|{models[j]}" for i, j in pairs)


def lineage_rows(ds: xr.Dataset, metadata: dict[str, Lineage], metrics=None) -> list[dict]:
    """The table of the comparison (``COLUMNS``): per metric (default: every metric of ``ds``) and space, one
    ``kind = group`` row per group (an empty one with ``n_pairs`` 0), one ``kind = difference`` row per
    ``DIFFERENCES`` (its interval from the shared replicates, ``differs``: whether it excludes 0), then one
    ``kind = left out`` row per reason of ``LEFT_OUT`` naming its pairs."""
    models = [str(m) for m in ds.model_a.values]
    grouped = store_pair_groups(ds, metadata)
    metrics = [str(m) for m in ds.metric.values] if metrics is None else [m for m in metrics if m in ds.metric.values]
    rows = []
    for metric in metrics:
        larger = "more alike" if metric in SIMILARITIES else "further apart"
        for space in [str(s) for s in ds.space.values]:
            means = {}
            for group, pairs in grouped.groups.items():
                values = pair_values(ds, metric, space, pairs)
                mean, replicates, chance = group_mean(values)
                means[group] = (mean, replicates)
                finite = values.value[np.isfinite(values.value)]
                spread = (np.median(finite), finite.min(), finite.max()) if finite.size else (np.nan,) * 3
                rows.append({"metric": metric, "space": space, "kind": "group", "group": group,
                             "n_pairs": len(pairs), "mean": mean, "median": float(spread[0]),
                             "min": float(spread[1]), "max": float(spread[2]), **interval(replicates, mean),
                             "chance": chance, "differs": "", "larger_means": larger,
                             "n_partial_overlap": sum(p in grouped.partial_overlap for p in pairs),
                             "pairs": _names(models, pairs)})  # fmt: skip
            for a, b in DIFFERENCES:
                (mean_a, rep_a), (mean_b, rep_b) = means[a], means[b]
                mean = mean_a - mean_b
                replicates = rep_a - rep_b if rep_a.size and rep_b.size else np.zeros(0)
                row = {"metric": metric, "space": space, "kind": "difference", "group": f"{a} - {b}",
                       "n_pairs": len(grouped.groups[a]) + len(grouped.groups[b]), "mean": mean, "median": np.nan,
                       "min": np.nan, "max": np.nan, **interval(replicates, mean), "chance": np.nan,
                       "larger_means": larger, "n_partial_overlap": "", "pairs": ""}  # fmt: skip
                row["differs"] = excludes_zero(row)
                rows.append(row)
    for reason, pairs in grouped.left_out.items():
        rows.append({**dict.fromkeys(COLUMNS, ""), "kind": "left out", "group": reason, "n_pairs": len(pairs),
                     "pairs": _names(models, pairs)})  # fmt: skip
    return rows


PAIR_COLUMNS = ["metric", "space", "group", "model_a", "model_b", "value", "ci_low", "ci_high", "chance", "chance_sd"]


def pair_rows(ds: xr.Dataset, metadata: dict[str, Lineage], metrics=None) -> list[dict]:
    """The pairs behind ``lineage_rows`` (``PAIR_COLUMNS``): per metric (default: every metric of ``ds``), space and
    group, one row per pair of the group (in ``pair_groups`` order) with its value, 95 % interval and chance level
    (``pair_values``: directed metrics symmetrised)."""
    models = [str(m) for m in ds.model_a.values]
    grouped = store_pair_groups(ds, metadata)
    metrics = [str(m) for m in ds.metric.values] if metrics is None else [m for m in metrics if m in ds.metric.values]
    rows = []
    for metric in metrics:
        for space in [str(s) for s in ds.space.values]:
            for group, pairs in grouped.groups.items():
                values = pair_values(ds, metric, space, pairs)
                rows += [{"metric": metric, "space": space, "group": group, "model_a": models[i], "model_b": models[j],
                          **{name: float(getattr(values, name)[k]) for name in PAIR_COLUMNS[5:]}}
                         for k, (i, j) in enumerate(pairs)]  # fmt: skip
    return rows
