"""The headline of a run, computed from its similarity store: how much the models agree within a family, across
families and with the controls, in the raw and the anchor space, each with its bootstrap interval and chance level.

A group's value is the mean over its unordered model pairs; its interval comes from the same mean in every
bootstrap replicate (every pair is resampled with the same structure draws), shifted by the bootstrap bias like
each pair's interval (``platonic.compare.pair_means``; a directed metric's pair is the mean of both directions).
The anchor-minus-raw difference of a group is computed the same way, so "the anchor space differs from the raw
space" means its interval excludes 0.
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from platonic.compare.pair_means import excludes_zero, group_mean, interval, pair_values
from platonic.compare.registry import label

HEADLINE_METRICS = ("linear_cka", "mutual_knn")
GROUPS = {
    "within family": "pairs of trained models of the same family",
    "across families": "pairs of trained models of different families",
    "model vs control": "a trained model against a control representation",
}
DIFFERENCE = "anchor - raw"
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
    """One row per metric, group and space (``raw``, ``anchor`` and their difference ``anchor - raw``): the mean
    over the group's pairs with its interval, the mean chance level, and (for the difference) whether the interval
    excludes 0. Metrics the store lacks are left out; a group without pairs has no row."""
    rows = []
    for metric in [m for m in metrics if m in ds.metric.values]:
        for group, pairs in pair_groups(ds).items():
            if not pairs:
                continue
            means, replicates = {}, {}
            for space in ("raw", "anchor"):
                means[space], replicates[space], chance = group_mean(pair_values(ds, metric, space, pairs))
                rows.append(_row(metric, space, group, len(pairs), means[space], replicates[space], chance))
            difference = replicates["anchor"] - replicates["raw"]
            rows.append(_row(metric, DIFFERENCE, group, len(pairs), means["anchor"] - means["raw"], difference))
    return rows


def _row(metric, space, group, n_pairs, mean, replicates, chance=np.nan) -> dict:
    row = {"metric": metric, "space": space, "group": group, "n_pairs": n_pairs, "mean": mean,
           **interval(replicates, mean), "chance": chance if space != DIFFERENCE else np.nan}  # fmt: skip
    row["differs"] = excludes_zero(row) if space == DIFFERENCE else ""
    return row


def _interval(row: dict) -> str:
    if not np.isfinite(row["ci_low"]):
        return f"{row['mean']:.2f}"
    return f"{row['mean']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def headline_text(rows: list[dict], ds: xr.Dataset) -> str:
    """reStructuredText paragraphs stating the rows (the report's first page), generated from the numbers."""
    if not rows:
        return "No headline: the similarity store has neither linear CKA nor mutual k-NN.\n"
    n_boot = int(ds.attrs.get("bootstrap", 0))
    interval = (
        f"brackets: 95 % intervals from {n_boot} structure-bootstrap replicates" if n_boot > 1 else "no intervals"
    )
    lines = [
        f"**Headline** (means over model pairs; {interval}; chance: the value with one model's rows permuted by whole"
        f" structures, {int(ds.attrs.get('permutations', 0))} permutations; {ds.attrs.get('n_atoms', '?')} atoms).",
        "",
    ]
    by_key = {(r["metric"], r["space"], r["group"]): r for r in rows}
    for metric in dict.fromkeys(r["metric"] for r in rows):
        parts = []
        for group in GROUPS:
            raw, anchor = by_key.get((metric, "raw", group)), by_key.get((metric, "anchor", group))
            if raw is None:
                continue
            change = by_key[metric, DIFFERENCE, group]
            verdict = (
                ""
                if change["differs"] == ""
                else (
                    f", a change of {change['mean']:+.2f} beyond its interval"
                    if change["differs"]
                    else f", a change of {change['mean']:+.2f} within its interval"
                )
            )
            chance = f"; chance {anchor['chance']:.2f}" if np.isfinite(anchor["chance"]) else ""
            parts.append(
                f"{group} ({raw['n_pairs']} pairs) {_interval(raw)} raw, {_interval(anchor)} in the anchor space"
                f"{verdict}{chance}"
            )
        lines.append(f"- {label(metric)}: " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"
