"""How atypical an atomic environment is in a model's shared space: its distance to the nearest environments of
*other* structures, read against the study's own distribution.

A model's anchor coordinates are scaled to unit rows (as in the audit, no centring), and an environment's
atypicality is the mean cosine distance (1 - cosine, 0 .. 2) to its ``k`` nearest environments in other
structures: an atom whose only close neighbours are its own symmetry copies or its own structure's atoms still
counts as atypical. Distances are not comparable across models, so each is turned into a percentile of the
study's own atypicality distribution for that model; the consensus is the mean percentile over models.
"""

from __future__ import annotations

import numpy as np

from platonic.compare.neighbours import nearest_neighbours, unit_rows

__all__ = ["atypicality", "consensus_percentile", "percentile_in", "query_atypicality"]


def atypicality(x: np.ndarray, groups: np.ndarray, k: int, threads: int | None = None) -> np.ndarray:
    """Mean cosine distance of every row of ``x (N, d)`` to its ``k`` nearest rows of other structures (``groups
    (N,)``), ``(N,)`` float64."""
    unit = unit_rows(np.asarray(x, dtype=np.float64))
    neighbours = nearest_neighbours(unit, k, groups=np.asarray(groups), threads=threads)
    cosines = np.einsum("nd,nkd->nk", unit, unit[neighbours])
    return (1.0 - cosines).mean(axis=1)


def query_atypicality(queries: np.ndarray, reference: np.ndarray, k: int, chunk: int = 4096) -> tuple:
    """Atypicality of new rows ``queries (Q, d)`` against a study's rows ``reference (N, d)`` (all from other
    structures): ``(distances (Q,), nearest (Q, k) indices into reference, their cosine distances (Q, k))``. Exact,
    streamed over query chunks."""
    if not 1 <= k <= len(reference):
        raise ValueError(f"k must be between 1 and the {len(reference)} reference rows, got {k}")
    ref = unit_rows(np.asarray(reference, dtype=np.float64))
    rows = unit_rows(np.asarray(queries, dtype=np.float64))
    nearest = np.empty((len(rows), k), dtype=np.int64)
    distance = np.empty((len(rows), k))
    for start in range(0, len(rows), chunk):
        cosines = rows[start : start + chunk] @ ref.T
        top = np.argpartition(-cosines, k - 1, axis=1)[:, :k]
        values = np.take_along_axis(cosines, top, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        nearest[start : start + chunk] = np.take_along_axis(top, order, axis=1)
        distance[start : start + chunk] = 1.0 - np.take_along_axis(values, order, axis=1)
    return distance.mean(axis=1), nearest, distance


def percentile_in(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Percentile (0 .. 100) of each of ``values`` in the distribution ``reference``: the share of reference values
    at or below it, ties counted half."""
    ordered = np.sort(np.asarray(reference, dtype=np.float64))
    below = np.searchsorted(ordered, values, side="left")
    at_or_below = np.searchsorted(ordered, values, side="right")
    return 100.0 * (below + at_or_below) / (2.0 * len(ordered))


def consensus_percentile(per_model: np.ndarray) -> np.ndarray:
    """Mean over models of each atom's atypicality percentile within its own model's distribution, ``per_model
    (M, N)`` distances -> ``(N,)``."""
    per_model = np.asarray(per_model, dtype=np.float64)
    return np.mean([percentile_in(row, row) for row in per_model], axis=0)
