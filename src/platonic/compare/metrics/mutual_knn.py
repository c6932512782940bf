"""Mutual k-NN alignment (Huh et al., ICML 2024): the shared fraction of the k nearest neighbours."""

from __future__ import annotations

import numpy as np

from platonic.compare.metrics.base import Facts, TermMetric
from platonic.compare.metrics.neighbour_lists import shared_neighbours
from platonic.compare.neighbours import nearest_neighbours


def mutual_knn_alignment(neighbours_a: np.ndarray, neighbours_b: np.ndarray) -> float:
    """Mean fraction of shared k-nearest neighbours (Huh et al. 2024), from ``(N, k)`` index arrays."""
    shared = shared_neighbours(neighbours_a, neighbours_b)
    return int(shared.sum()) / (len(neighbours_a) * neighbours_a.shape[1])


def permuted_mutual_knn(nx: np.ndarray, ny: np.ndarray, permutations) -> np.ndarray:
    """Mutual k-NN of the neighbour lists ``nx``, ``ny`` ``(m, k)`` with y's rows permuted by each of
    ``permutations`` ``(P, m)`` (its lists relabelled along, no new search): the chance level, ``(P,)``."""
    out = np.full(len(permutations), np.nan)
    for p, perm in enumerate(permutations):
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        out[p] = mutual_knn_alignment(nx, inverse[ny[perm]])
    return out


def subsample_neighbours(x, c) -> np.ndarray:
    """Mutual k-NN's neighbour lists on its subsample ``c.knn_rows``, ``(m, k)`` positions in the subsample."""
    s, rows = c.settings, c.knn_rows
    groups = None if c.excluded is None else c.excluded[rows]
    return nearest_neighbours(
        x[rows], c.k, s.neighbour_search, n_probe=s.n_probe, seed=s.seed, groups=groups, similarity=s.knn_similarity
    )


class MutualKnn(TermMetric):
    """Per atom, the neighbours its two lists share; with ``similarity.knn_subsample``, on lists searched among a
    seeded subsample of the atoms alone (``fan_in.knn_draw``), with permutations of their own."""

    facts = Facts(
        "mutual_knn", "mutual k-NN alignment",
        "shared fraction of the k nearest cosine neighbours (similarity.k)",
        "Huh et al., ICML 2024", True, False, "all", True, "from each model's k-NN lists",
        "neighbour lists kept fixed",
        k_setting="k",
    )  # fmt: skip
    through_unit_rows = True

    def subsample_lists(self, pair) -> tuple[np.ndarray, np.ndarray]:
        """Both models' lists on the k-NN subsample (``similarity.knn_subsample``)."""

        def search():
            kx = subsample_neighbours(pair.x, pair.c)
            return kx, kx if pair.y is pair.x else subsample_neighbours(pair.y, pair.c)

        return pair.memo("knn_subsample", search)

    def terms(self, pair, forward: bool) -> np.ndarray:
        if pair.c.knn_rows is not None:
            return shared_neighbours(*self.subsample_lists(pair))
        k = pair.k
        return shared_neighbours(pair.sx.neighbours[:, :k], pair.sy.neighbours[:, :k])

    def rows(self, pair):
        return pair.c.knn_rows

    def aggregate(self, terms, pair) -> float:
        return int(terms.sum()) / (len(terms) * pair.k)

    def weighted(self, terms, pair) -> np.ndarray:
        return pair.resampling.mean(terms / pair.k, self.rows(pair))

    def permuted(self, pair) -> dict:
        return {} if pair.c.knn_rows is not None else self.value(pair)

    def chance(self, pair):
        if pair.c.knn_rows is None:
            return None
        return {(self.name, True): permuted_mutual_knn(*self.subsample_lists(pair), pair.c.knn_permutations)}
