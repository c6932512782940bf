"""Information imbalance (Glielmo et al., PNAS Nexus 2022): ranks in one space of the other's nearest neighbours."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.base import Facts, TermMetric
from platonic.compare.metrics.features import RANK_TOLERANCE, features

TILE = 4096  # rows of Y a block of queries is compared with at once: a 256 x 4096 float64 block is 8 MiB


def information_imbalance(
    x: np.ndarray,
    y: np.ndarray,
    neighbours_x: np.ndarray,
    queries: np.ndarray,
    chunk: int | None = None,
    groups: np.ndarray | None = None,
) -> float:
    """Information imbalance Delta(X -> Y) (Glielmo et al., PNAS Nexus 1, pgac039 (2022)):
    ``2/N`` times the mean rank, in Y, of each query's nearest neighbour in X. ~0: X's
    neighbourhoods predict Y's; ~1: no information. Like the neighbour lists, distances are between
    unit-normalised rows (cosine order). Ranks are exact over all N rows; queries are a (seeded)
    subsample. With ``groups (N,)`` (structure of each row), rows of a query's own group are not ranked (as
    for neighbour lists searched with ``groups``)."""
    ranks = neighbour_ranks(y, neighbours_x, queries, chunk, groups)
    return float(2.0 / len(y) * ranks.mean())


def neighbour_ranks(
    y: np.ndarray,
    neighbours_x: np.ndarray,
    queries: np.ndarray,
    chunk: int | None = None,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Per query, the rank in Y (1 = nearest) of its nearest neighbour in X, ``(len(queries),)`` float64: the
    terms whose mean ``information_imbalance`` scales by ``2/N``."""
    return target_ranks(y, queries, neighbours_x[queries, :1], chunk, groups)[:, 0]


def target_ranks(
    y: np.ndarray,
    queries: np.ndarray,
    targets: np.ndarray,
    chunk: int | None = None,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Per query row ``queries[i]`` and target row ``targets[i, t]``, the target's rank among the query's
    neighbours in Y (1 = nearest), ``(len(queries), T)`` float64: one pass over the queries' distances serves every
    target (information imbalance's value and its chance level's permutations ask for the ranks of different
    targets among the same rows' neighbours).

    Squared distances between unit rows, ``(|a|^2 + |b|^2) - 2 a.b`` with the products from one matrix product, for
    ``chunk`` queries (default 256) against ``TILE`` rows at a time, so that each block stays in cache; the targets'
    own distances come from a product of the query rows with the target rows (an element of a matrix product does
    not depend on the other rows and columns multiplied with it)."""
    fy = features(y)
    y, square = fy.unit, fy.square
    n = len(y)
    chunk = chunk or 256
    ranks = np.zeros(targets.shape)
    for start in range(0, len(queries), chunk):
        batch = np.asarray(queries[start : start + chunk])
        own_targets = targets[start : start + chunk]
        rows = np.arange(len(batch))
        query_rows = y[batch]
        target = np.empty(own_targets.shape)
        for t in range(targets.shape[1]):
            products = query_rows @ y[own_targets[:, t]].T
            target[:, t] = (square[batch] + square[own_targets[:, t]]) - 2.0 * np.diagonal(products)
        target[own_targets == batch[:, None]] = np.inf  # a point is not its own neighbour, nor of its group
        if groups is not None:
            target[groups[own_targets] == groups[batch][:, None]] = np.inf
        # neighbours come from a float32 search: closer by less than its round-off counts as a tie
        target -= RANK_TOLERANCE
        for first in range(0, n, TILE):
            last = min(first + TILE, n)
            distance = square[batch, None] + square[None, first:last]
            products = query_rows @ y[first:last].T
            products *= 2.0
            distance -= products
            inside = (batch >= first) & (batch < last)
            distance[rows[inside], batch[inside] - first] = np.inf
            if groups is not None:
                distance[groups[batch][:, None] == groups[None, first:last]] = np.inf
            for t in range(targets.shape[1]):
                ranks[start : start + chunk, t] += np.count_nonzero(distance < target[:, t, None], axis=1)
    return ranks + 1


class InformationImbalance(TermMetric):
    """Per query, the rank in the target of its nearest neighbour in the source."""

    facts = Facts(
        "information_imbalance", "information imbalance (row -> column)",
        "information imbalance from the row model to the column model; 0 = the row model's neighbourhoods"
        " predict the column model's",
        "Glielmo et al., PNAS Nexus 2022", False, True, "queries", True, "exact ranks over every atom",
        "each query's rank kept fixed",
    )  # fmt: skip
    through_unit_rows = True

    def terms(self, pair, forward: bool) -> np.ndarray:
        if not forward and pair.parent is not None:  # a permutation's: ranked with the value's (backward_ranks)
            return self.backward_ranks(pair.parent)[pair.parent.chance_queries, 1 + pair.index]
        if not forward and pair.resampling is not None and pair.resampling.permutations:
            return self.backward_ranks(pair)[:, 0]
        _, target, neighbours = pair.oriented(forward)
        return neighbour_ranks(target, neighbours, pair.queries, groups=pair.c.excluded)

    def backward_ranks(self, pair) -> np.ndarray:
        """The backward direction's ranks in x, whose distances no permutation of y changes, ``(len(queries), 1 +
        P)``: column 0 the value's (each query's nearest neighbour in y), column 1 + p permutation p's (in the
        permuted y) on the chance level's queries (``Pair.chance_queries``; elsewhere the value's again), ranked
        in one pass over the queries' distances (``target_ranks``)."""

        def ranks():
            ny, queries, few = pair.sy.neighbours, pair.queries, pair.chance_queries
            permutations = pair.resampling.permutations
            targets = np.repeat(ny[queries, :1], 1 + len(permutations), axis=1)
            for p in range(len(permutations)):
                targets[few, 1 + p] = pair.permuted_neighbours(p, queries[few])[:, 0]
            return target_ranks(pair.fx, queries, targets, groups=pair.c.excluded)

        return pair.memo((self.name, "backward, with the permutations'"), ranks)

    def rows(self, pair):
        return pair.queries

    def aggregate(self, terms, pair) -> float:
        return float(2.0 / pair.c.n * terms.mean())

    def weighted(self, terms, pair) -> np.ndarray:
        return 2.0 / len(pair.x) * pair.resampling.mean(terms, self.rows(pair))
