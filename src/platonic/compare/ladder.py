"""The protocol ladder: from the reference study's mutual k-NN protocol to platonic's, one choice at a time.

The reference (Li & Walsh 2026, their notebook ``PlatonicRep.ipynb``) scores a pair by mutual k-NN with k = 10 on
1,000 atoms drawn with ``torch.manual_seed(42); torch.randperm(N)[:1000]`` from every atom (symmetry copies
included), neighbours by the raw inner product among those 1,000 only. Each rung after the first changes one of
those choices, in ``STEPS`` order, and keeps the others: inner product -> cosine; the subsample -> every atom;
every atom -> one per crystallographic orbit; any neighbour -> neighbours from other structures only. The rest of
a rung's settings are the configured ``similarity`` section (k, the bootstrap, the permutations, the seed, and the
subsample's own seed ``knn_subsample_seed``, 42 by default as the reference's), so every rung resamples the same
structures and the change
from one rung to the next gets an interval from the same replicates. The rung whose settings are the configured
ones gives the numbers of the similarity store (and of the headline) exactly.

A rung is a similarity store over the rung's atoms (``platonic.compare.similarity.pairwise_similarity``, metrics
limited to linear CKA and mutual k-NN); its rows are the headline's group means (``headline.pair_groups``,
``pair_means.group_mean``) in every space of ``platonic.spaces.SPACES`` and every step between spaces.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from platonic.compare.headline import pair_groups
from platonic.compare.pair_means import group_mean, interval, pair_values
from platonic.settings import SimilaritySettings
from platonic.spaces import SPACES, STEPS

__all__ = ["COLUMNS", "LADDER_METRICS", "REFERENCE", "STEPS_TO_PLATONIC", "ladder_rows", "rungs"]

LADDER_METRICS = ("linear_cka", "mutual_knn")
# the reference study's choices, as similarity settings
REFERENCE = {"knn_similarity": "inner_product", "knn_subsample": 1000, "atoms": "all", "neighbours": "all"}
# each rung's name and the one choice it changes from the rung before (the first rung: the reference's)
STEPS_TO_PLATONIC = (
    ("Li & Walsh", {}),
    ("cosine", {"knn_similarity": "cosine"}),
    ("every atom", {"knn_subsample": None}),
    ("one per orbit", {"atoms": "unique"}),
    ("other structures", {"neighbours": "other-structures"}),
)
COLUMNS = [
    "rung", "step", "configured", "knn_similarity", "knn_subsample", "atoms", "neighbours", "n_atoms", "metric",
    "space", "group", "n_pairs", "mean", "ci_low", "ci_high", "chance", "change", "change_ci_low", "change_ci_high",
]  # fmt: skip


def rungs(settings: SimilaritySettings) -> list[tuple[str, SimilaritySettings]]:
    """Every rung's name and settings: ``settings`` with ``REFERENCE``'s choices, then each of
    ``STEPS_TO_PLATONIC``'s changes in turn, metrics limited to ``LADDER_METRICS``."""
    choices = dict(REFERENCE)
    out = []
    for name, change in STEPS_TO_PLATONIC:
        choices.update(change)
        out.append((name, dataclasses.replace(settings, metrics=LADDER_METRICS, **choices)))
    return out


def is_configured(rung: SimilaritySettings, settings: SimilaritySettings) -> bool:
    """Whether a rung's settings are the configured ``settings`` (then its numbers are the similarity store's)."""
    return rung == dataclasses.replace(settings, metrics=LADDER_METRICS)


def ladder_rows(
    ladder: list[tuple[str, SimilaritySettings, dict[str, xr.Dataset]]], settings: SimilaritySettings
) -> list[dict]:
    """One row per rung, metric, space (``SPACES`` and the steps between them, ``platonic.spaces.STEPS``) and
    pair group: the group mean over its pairs with its 95 % interval and mean chance level, and its change from the
    rung before with that change's interval (from the same bootstrap replicates; NaN on the first rung or where
    the rungs' replicates differ in number). ``ladder``: each rung's name, settings and ``{metric: similarity
    store}`` (stores holding ``control`` and ``family``); ``settings``: the configured ones."""
    rows = []
    previous: dict[tuple, tuple[float, np.ndarray]] = {}
    for index, (name, rung, stores) in enumerate(ladder):
        current: dict[tuple, tuple[float, np.ndarray]] = {}
        for metric in LADDER_METRICS:
            ds = stores[metric]
            for group, pairs in pair_groups(ds).items():
                if not pairs:
                    continue
                means, replicates, chances = {}, {}, {}
                for space in SPACES:
                    means[space], replicates[space], chances[space] = group_mean(pair_values(ds, metric, space, pairs))
                for step, later, earlier in STEPS:
                    means[step] = means[later] - means[earlier]
                    replicates[step] = replicates[later] - replicates[earlier]
                    chances[step] = np.nan
                for space in (*SPACES, *(step for step, _, _ in STEPS)):
                    key = (metric, space, group)
                    current[key] = (means[space], replicates[space])
                    change, change_replicates = np.nan, np.zeros(0)
                    if key in previous:
                        change = means[space] - previous[key][0]
                        if previous[key][1].shape == replicates[space].shape:
                            change_replicates = replicates[space] - previous[key][1]
                    spread = interval(replicates[space], means[space])
                    change_spread = interval(change_replicates, change)
                    rows.append({
                        "rung": index, "step": name, "configured": is_configured(rung, settings),
                        "knn_similarity": rung.knn_similarity, "knn_subsample": rung.knn_subsample,
                        "atoms": rung.atoms, "neighbours": rung.neighbours, "n_atoms": int(ds.attrs["n_atoms"]),
                        "metric": metric, "space": space, "group": group, "n_pairs": len(pairs),
                        "mean": means[space], "ci_low": spread["ci_low"], "ci_high": spread["ci_high"],
                        "chance": chances[space], "change": change, "change_ci_low": change_spread["ci_low"],
                        "change_ci_high": change_spread["ci_high"],
                    })  # fmt: skip
        previous = current
    return rows
