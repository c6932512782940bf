"""Screening new structures against a finished study in its shared space: how atypical each new environment is for
each model (a percentile of the study's own atypicality distribution), whether the models agree on it, and which
study environments lie nearest.

Every model's anchor coordinates are scaled to unit rows, as in `platonic.analysis.atypicality` and the audit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from platonic.analysis.atypicality import atypicality, percentile_in, query_atypicality
from platonic.analysis.audit import consensus_distances
from platonic.compare.neighbours import unit_rows

__all__ = ["Screening", "consensus_nearest", "screen_environments"]


@dataclass(frozen=True)
class Screening:
    """Per model ``(M, Q)`` over the screened atoms: ``atypicality`` (mean cosine distance to the k nearest study
    environments), its ``percentile`` in the study's own distribution (``study_atypicality (M, N)``) and the
    ``nearest`` study row; per atom ``(Q,)``: ``consensus_percentile`` (mean over the consensus models),
    ``disagreement`` (mean over them of the distance to the cross-model consensus, as the audit defines it) and its
    ``disagreement_percentile`` in the study's. NaN (index -1) where a model did not embed the atom."""

    atypicality: np.ndarray
    percentile: np.ndarray
    nearest: np.ndarray
    consensus_percentile: np.ndarray
    disagreement: np.ndarray
    disagreement_percentile: np.ndarray
    study_atypicality: np.ndarray


def screen_environments(
    queries: dict[str, np.ndarray],
    study: dict[str, np.ndarray],
    groups: np.ndarray,
    k: int,
    consensus_models: list[str] | None = None,
) -> Screening:
    """``queries`` maps model -> screened anchor coordinates ``(Q, K)`` (NaN rows: not embedded), ``study`` model
    -> the study's coordinates ``(N, K)`` of its compared atoms (every model embedded them), ``groups (N,)`` their
    structures. ``k``: neighbours of the atypicality, the study's own atoms measured against other structures.
    The consensus percentile and the disagreement are over ``consensus_models`` (default every model; the audit
    leaves the controls out)."""
    models = list(queries)
    chosen = [models.index(m) for m in (consensus_models or models)]
    n_queries = len(next(iter(queries.values())))
    distance = np.full((len(models), n_queries), np.nan)
    percentile = np.full((len(models), n_queries), np.nan)
    nearest = np.full((len(models), n_queries), -1, dtype=np.int64)
    reference = np.empty((len(models), len(groups)))
    for i, model in enumerate(models):
        reference[i] = atypicality(study[model], groups, k)
        embedded = np.isfinite(queries[model]).all(axis=1)
        if embedded.any():
            d, near, _ = query_atypicality(queries[model][embedded], study[model], k)
            distance[i, embedded], nearest[i, embedded] = d, near[:, 0]
            percentile[i, embedded] = percentile_in(d, reference[i])
    everywhere = np.isfinite(percentile[chosen]).all(axis=0)
    consensus = np.where(everywhere, np.mean(np.where(everywhere, percentile[chosen], 0.0), axis=0), np.nan)
    disagreement = np.full(n_queries, np.nan)
    disagreement_percentile = np.full(n_queries, np.nan)
    voters = [models[i] for i in chosen]
    if len(voters) > 1 and everywhere.any():
        disagreement[everywhere] = consensus_distances({m: queries[m][everywhere] for m in voters}).mean(axis=0)
        study_disagreement = consensus_distances({m: study[m] for m in voters}).mean(axis=0)
        disagreement_percentile[everywhere] = percentile_in(disagreement[everywhere], study_disagreement)
    return Screening(distance, percentile, nearest, consensus, disagreement, disagreement_percentile, reference)


def consensus_nearest(
    queries: dict[str, np.ndarray], study: dict[str, np.ndarray], n: int, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` study rows nearest each screened row in the mean over models of the cosine distance: indices
    ``(Q, n)`` and distances ``(Q, n)``, nearest first (rows some model did not embed: -1 and NaN). Streamed over
    query chunks; memory ``chunk x N``."""
    models = list(queries)
    n_queries, n_study = len(queries[models[0]]), len(study[models[0]])
    n = min(n, n_study)
    units = {m: unit_rows(np.asarray(study[m], dtype=np.float64)) for m in models}
    index = np.full((n_queries, n), -1, dtype=np.int64)
    distance = np.full((n_queries, n), np.nan)
    embedded = np.logical_and.reduce([np.isfinite(queries[m]).all(axis=1) for m in models])
    rows = np.flatnonzero(embedded)
    for start in range(0, len(rows), chunk):
        block = rows[start : start + chunk]
        mean = sum(1.0 - unit_rows(np.asarray(queries[m][block], dtype=np.float64)) @ units[m].T for m in models)
        mean /= len(models)
        top = np.argpartition(mean, n - 1, axis=1)[:, :n]
        values = np.take_along_axis(mean, top, axis=1)
        order = np.argsort(values, axis=1, kind="stable")
        index[block] = np.take_along_axis(top, order, axis=1)
        distance[block] = np.take_along_axis(values, order, axis=1)
    return index, distance
