"""One pair's shared work, computed once on first use and handed to each metric: the cross Gram and centred
covariances, GFRE's split cross Grams, the bootstrap replicates' cross sums, CKNNA's mutual-pair kernels, and the
pair with its second model's rows permuted for the chance level (``Pair.permutations``), which offers the same to
the metrics' ``permuted`` hooks. Like ``Features`` caches what one space's metrics share, ``Pair`` caches what a
pair's share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import cached_property

import numpy as np

from platonic.compare.metrics.cknna import OwnKernel, cknna_shared_kernels, own_kernel
from platonic.compare.metrics.features import Features, features
from platonic.compare.metrics.gfre import split_crosses
from platonic.compare.metrics.moments import centred_cross, cross_gram

CHANCE_QUERIES = 500  # the chance level of the query metrics (information imbalance, LFRE) uses at most these


class Pair:
    """Features ``x`` and ``y`` (arrays or ``Features``, the same ``c.n`` atoms in the same order) of two models with
    their summaries ``sx``, ``sy`` (``fan_in.ModelSummary``) under the comparison ``c`` (``fan_in.Comparison``);
    ``same``: one model with itself (forward directions only). ``queries``: the query rows (default ``c.queries``);
    ``permutation``/``parent``/``index``: a permuted pair's row permutation of y, the pair it permutes and the
    permutation's place among the resampling's permutations. ``ridges``: the
    relative ridges the metrics' values chose, ``{(metric, forward): ridge}``."""

    def __init__(self, x, y, sx, sy, c, same: bool = False, queries=None, permutation=None, parent=None, index=None):
        self.fx: Features = features(x)
        self.fy: Features = self.fx if y is x else features(y)
        self.x, self.y = self.fx.x, self.fy.x
        self.sx, self.sy, self.c, self.same = sx, sy, c, same
        self.queries = c.queries if queries is None else queries
        self.permutation, self.parent, self.index = permutation, parent, index
        self.ridges: dict = {}
        self._memo: dict = {}

    @property
    def forwards(self) -> tuple[bool, ...]:
        """The directions of the directed metrics: forward (x -> y) and, between two models, backward."""
        return (True,) if self.same else (True, False)

    @property
    def k(self) -> int:
        return self.c.k

    @property
    def resampling(self):
        return self.c.resampling

    def memo(self, key, compute: Callable):
        """``compute()``, once per pair and ``key``: what one metric derives and reuses (its per-atom terms)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def oriented(self, forward: bool) -> tuple[Features, Features, np.ndarray]:
        """(source, target, the source's neighbour lists) of a directed metric's direction."""
        return (self.fx, self.fy, self.sx.neighbours) if forward else (self.fy, self.fx, self.sy.neighbours)

    def forget(self, *names: str) -> None:
        """Drop the cached ``names`` (e.g. the replicates' ``(B, d_x, d_y)`` stacks once every metric's replicates are
        made), so that they are not held through the chance level; a later use computes them again."""
        for name in names:
            self.__dict__.pop(name, None)

    @cached_property
    def cross(self) -> np.ndarray:
        """Raw ``X^T Y`` (``X^T W Y`` with the row weights), ``(d_x, d_y)``."""
        return cross_gram(self.x, self.y, weights=self.c.weights)

    @cached_property
    def covariances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centred ``Xc^T Yc``, ``Xc^T Xc``, ``Yc^T Yc``."""
        mx, my = self.sx.moments, self.sy.moments
        return centred_cross(self.cross, mx, my), mx.centred_gram, my.centred_gram

    @cached_property
    def split_crosses(self) -> tuple:
        """GFRE's raw cross Grams on the training and the test rows, and on each fold's training rows (or None)."""
        c = self.c
        return split_crosses(self.x, self.y, c.train, c.weights, c.folds if c.cross_validated else None)

    @cached_property
    def replicate_crosses(self) -> tuple[np.ndarray, np.ndarray]:
        """Every replicate's cross sums on the training and on the test structures, ``(B, d_x, d_y)`` each."""
        from platonic.compare.bootstrap import replicate_sums

        return replicate_sums(self.x, self.y, self.resampling)

    @cached_property
    def replicate_cross(self) -> np.ndarray:
        """Every replicate's raw cross Gram over all structures, ``(B, d_x, d_y)``."""
        cross_train, cross_test = self.replicate_crosses
        return cross_train + cross_test

    @cached_property
    def replicate_centred(self) -> np.ndarray:
        """Every replicate's centred cross-covariance, ``(B, d_x, d_y)``."""
        mx, my = self.sx.replicates, self.sy.replicates
        return self.replicate_cross - mx.total[:, :, None] * my.total[:, None, :] / mx.n[:, None, None]

    @cached_property
    def own_kernels(self) -> tuple[OwnKernel, OwnKernel]:
        """x's and y's ``cknna.OwnKernel`` on their first k neighbours: from their summaries, or computed here for a
        summary that holds none."""
        resampling = None if self.same else self.resampling  # a model with itself has no replicates

        def own(features, summary):
            if summary.own_kernel is not None:
                return summary.own_kernel
            return own_kernel(features, summary.neighbours[:, : self.k], resampling)

        first = own(self.fx, self.sx)
        return first, first if self.same else own(self.fy, self.sy)

    @cached_property
    def shared_kernels(self) -> tuple:
        """CKNNA's two sparse kernels on the mutual k-NN pairs of the first k neighbours
        (``cknna.cknna_shared_kernels``)."""
        (own_x, own_y), k = self.own_kernels, self.k
        return cknna_shared_kernels(own_x.cosines, self.fy.unit, self.sx.neighbours[:, :k], self.sy.neighbours[:, :k],
                                    own_y=own_y.cosines)  # fmt: skip

    def permutations(self) -> Iterator[Pair]:
        """The pair with y's rows permuted by each of the resampling's permutations (whole structures), one at a time:
        y's features and neighbour lists (relabelled, no new search) move along, y's summary is its permuted moments
        (``ModelSummary.chance``), and at most ``CHANCE_QUERIES`` of the queries are used."""
        few = self.queries[self.chance_queries]
        for p, perm in enumerate(self.resampling.permutations):
            moments, split, distances = self.sy.chance[p]
            sy = replace(self.sy, moments=moments, split=split, distances=distances, replicates=None, chance=None,
                         neighbours=self.permuted_neighbours(p))  # fmt: skip
            yield Pair(self.fx, self.fy.take(perm), self.sx, sy, self.c, self.same, few, perm, self, p)

    @property
    def chance_queries(self) -> np.ndarray:
        """Where the queries of the permuted pairs (at most ``CHANCE_QUERIES``, spread evenly) sit among this pair's
        queries."""
        n = len(self.queries)
        return np.unique(np.linspace(0, n - 1, min(n, CHANCE_QUERIES)).astype(np.int64))

    def permuted_neighbours(self, p: int, rows: np.ndarray | None = None) -> np.ndarray | None:
        """y's neighbour lists in the pair whose y rows are permuted by the resampling's permutation ``p`` (of its
        ``rows``, default all): row i is y's row ``perm[i]``, its neighbours relabelled to the permuted rows (no new
        search)."""
        ny, perm = self.sy.neighbours, self.resampling.permutations[p]
        if ny is None:
            return None
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        return inverse[ny[perm if rows is None else perm[rows]]]
