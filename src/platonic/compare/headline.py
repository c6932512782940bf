"""The headline of a run, computed from its similarity store: how much the models agree within a family, across
families and with the controls, in every space (``platonic.spaces``), each with its bootstrap interval and chance
level, and the steps between the spaces: ``unit - raw`` (what normalising the rows does), ``anchor - unit`` (what
the anchors add on top of it) and ``anchor - raw`` (both).

A group's value is the mean over its unordered model pairs; its interval comes from the same mean in every
bootstrap replicate (every pair is resampled with the same structure draws), shifted by the bootstrap bias like
each pair's interval (``platonic.compare.pair_means``; a directed metric's pair is the mean of both directions).
A step between two spaces is computed the same way, so "the step changes the agreement" means its interval
excludes 0.
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from platonic.compare.pair_means import excludes_zero, group_mean, interval, pair_values
from platonic.compare.registry import label
from platonic.spaces import SPACES, STEPS

HEADLINE_METRICS = ("linear_cka", "mutual_knn")
GROUPS = {
    "within family": "pairs of trained models of the same family",
    "across families": "pairs of trained models of different families",
    "model vs control": "a trained model against a control representation",
}
STEP_NAMES = tuple(name for name, _, _ in STEPS)
COLUMNS = ["metric", "space", "group", "n_pairs", "mean", "ci_low", "ci_high", "standard_error", "chance", "differs"]


def pair_groups(ds: xr.Dataset) -> dict[str, list[tuple[int, int]]]:
    """The unordered model pairs (indices) of each of ``GROUPS``; control-vs-control pairs belong to none."""
    models = [str(m) for m in ds.model_a.values]
    control = ds["control"].values if "control" in ds else np.zeros(len(models), dtype=bool)
    family = ds["family"].values if "family" in ds else np.array(models)
    groups: dict[str, list[tuple[int, int]]] = {name: [] for name in GROUPS}
    for i, j in itertools.combinations(range(len(models)), 2):
        if control[i] and control[j]:
            continue
        if control[i] or control[j]:
            groups["model vs control"].append((i, j))
        else:
            groups["within family" if family[i] == family[j] else "across families"].append((i, j))
    return groups


def headline_rows(ds: xr.Dataset, metrics=HEADLINE_METRICS) -> list[dict]:
    """One row per metric, group and space of the store (in ``SPACES`` order), then one per step between two of its
    spaces (``spaces.STEPS``; ``space`` holds the step's name): the mean over the group's pairs with its interval,
    the mean chance level, and (for a step) whether the interval excludes 0. Metrics the store lacks are left out;
    a group without pairs has no row."""
    spaces = [s for s in SPACES if s in ds.space.values]
    rows = []
    for metric in [m for m in metrics if m in ds.metric.values]:
        for group, pairs in pair_groups(ds).items():
            if not pairs:
                continue
            means, replicates = {}, {}
            for space in spaces:
                means[space], replicates[space], chance = group_mean(pair_values(ds, metric, space, pairs))
                rows.append(_row(metric, space, group, len(pairs), means[space], replicates[space], chance))
            for name, later, earlier in STEPS:
                if later in means and earlier in means:
                    change = replicates[later] - replicates[earlier]
                    rows.append(_row(metric, name, group, len(pairs), means[later] - means[earlier], change))
    return rows


def _row(metric, space, group, n_pairs, mean, replicates, chance=np.nan) -> dict:
    step = space in STEP_NAMES
    row = {"metric": metric, "space": space, "group": group, "n_pairs": n_pairs, "mean": mean,
           **interval(replicates, mean), "chance": np.nan if step else chance}  # fmt: skip
    row["differs"] = excludes_zero(row) if step else ""
    return row


def _interval(row: dict, signed: bool = False) -> str:
    value = f"{row['mean']:+.2f}" if signed else f"{row['mean']:.2f}"
    if not np.isfinite(row["ci_low"]):
        return value
    low, high = (f"{row[b]:+.2f}" if signed else f"{row[b]:.2f}" for b in ("ci_low", "ci_high"))
    return f"{value} [{low}, {high}]"


def step_reading(normalising: dict | None, anchors: dict | None) -> str:
    """One line on what the two steps of a group do, from their rows (``unit - raw``, ``anchor - unit``)."""
    if normalising is None or anchors is None:
        return ""
    if normalising["differs"] == "" or anchors["differs"] == "":
        return f"no intervals: normalising {normalising['mean']:+.2f}, the anchors {anchors['mean']:+.2f}"

    def moves(row, who):
        verb = "raise" if row["mean"] > 0 else "lower"
        return f"{who} {verb if who == 'the anchors' else verb + 's'} it by {abs(row['mean']):.2f}"

    if normalising["differs"] and anchors["differs"]:
        same = np.sign(normalising["mean"]) == np.sign(anchors["mean"])
        how = "both in the same direction" if same else "in opposite directions"
        return f"{moves(normalising, 'normalising')} and {moves(anchors, 'the anchors')}, {how}, beyond their intervals"
    if normalising["differs"]:
        return f"{moves(normalising, 'normalising')}; the anchors add nothing beyond their interval"
    if anchors["differs"]:
        return f"{moves(anchors, 'the anchors')}; normalising changes nothing beyond its interval"
    return "neither normalising nor the anchors changes it beyond their intervals"


def headline_text(rows: list[dict], ds: xr.Dataset) -> str:
    """reStructuredText for the report's first page, generated from the rows: a table with one row per metric and
    group (each space's value, each step's change with its interval, the chance level and a one-line reading)."""
    if not rows:
        return "No headline: the similarity store has neither linear CKA nor mutual k-NN.\n"
    n_boot = int(ds.attrs.get("bootstrap", 0))
    brackets = (
        f"brackets: 95 % intervals from {n_boot} structure-bootstrap replicates" if n_boot > 1 else "no intervals"
    )
    by_key = {(r["metric"], r["space"], r["group"]): r for r in rows}
    spaces = [s for s in SPACES if any(r["space"] == s for r in rows)]
    steps = [name for name in STEP_NAMES if any(r["space"] == name for r in rows)]
    header = ["metric", "group (pairs)", *spaces, *steps, "chance", "reading"]
    lines = [
        f".. list-table:: **Headline**: means over model pairs ({brackets}; chance: the value with one model's rows"
        f" permuted by whole structures, {int(ds.attrs.get('permutations', 0))} permutations, in the anchor space;"
        f" {ds.attrs.get('n_atoms', '?')} atoms). Steps: ``unit - raw`` is what normalising each row to unit length"
        " does, ``anchor - unit`` what the anchors add on top of it.",
        "   :header-rows: 1",
        "",
        *_table_row(header),
    ]
    for metric in dict.fromkeys(r["metric"] for r in rows):
        for group in GROUPS:
            first = by_key.get((metric, spaces[0], group))
            if first is None:
                continue
            last = by_key[metric, spaces[-1], group]
            chance = f"{last['chance']:.2f}" if np.isfinite(last["chance"]) else ""
            reading = step_reading(
                by_key.get((metric, "unit - raw", group)), by_key.get((metric, "anchor - unit", group))
            )
            cells = [
                label(metric, ds.attrs),
                f"{group} ({first['n_pairs']})",
                *(_interval(by_key[metric, s, group]) for s in spaces),
                *(_interval(by_key[metric, s, group], signed=True) for s in steps),
                chance,
                reading,
            ]
            lines.extend(_table_row(cells))
    return "\n".join(lines) + "\n"


def _table_row(cells: list[str]) -> list[str]:
    return [f"   * - {cells[0]}", *(f"     - {cell}" for cell in cells[1:])]
