"""What a metric is: its registry facts, what it needs of a model's summary, and its value, bootstrap replicates
and chance level as hooks on a ``Pair`` (``platonic.compare.metrics.pair``).

A metric is one class in one module of this package. Its class attribute ``facts`` is its registry entry; ``needs``
names the parts of a model's summary it reads (``SUMMARY_PARTS``); its hooks take the pair and return
``{(name, forward): ...}``, ``forward`` False being a directed metric from the pair's second model to its first:

- ``value(pair)``: the numbers;
- ``replicates(pair)``: every bootstrap replicate, ``(B,)`` per key;
- ``permuted(pair)``: the value on a pair whose second model's rows are permuted by whole structures
  (``Pair.permutations``); by default the value itself, computed on that pair;
- ``chance(pair)``: a chance level not made from the pair's shared permutations, ``(P,)`` per key (default none).

Base classes carry what families share: ``MomentMetric`` (a number from the pair's centred covariances, its
replicates from the replicates' ones) and ``TermMetric`` (an aggregate of per-atom terms: the replicates are
count-weighted means of the same terms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

# which atoms a metric's number is computed on
ATOMS = {
    "all": "every compared atom",
    "queries": "seeded query atoms (similarity.queries), neighbourhoods or ranks over every atom",
    "subsample": "a seeded subsample (similarity.subsample)",
    "test": "the test structures of a seeded structure split (1 - similarity.train_fraction of them)",
}

# the parts of a model's summary (``platonic.compare.fan_in.ModelSummary``) a metric may need: its moments, GFRE's
# split moments, the subsample's distance matrix, the bootstrap replicates' moments, the SVCCA whitening of each
# replicate, and CKNNA's own kernel (neighbour lists are the ``neighbours`` fact)
SUMMARY_PARTS = ("moments", "split", "distances", "replicates", "whitening", "own_kernel")


@dataclass(frozen=True)
class Facts:
    """A metric's registry entry: ``name`` (its config and store key), ``label`` (axis/title text), ``description``
    (one sentence for captions), ``reference``, ``similarity`` (True: larger = more alike, 1 = identical; False: a
    distance or error, 0 = identical), ``directed`` (metric(a -> b) != metric(b -> a): stored as model_a = source,
    model_b = target), ``atoms`` (a key of ``ATOMS``), ``neighbours`` (uses the k-NN lists), ``computation`` (how
    the number is obtained), ``interval`` (how a bootstrap replicate is obtained), ``scale_free`` (False: the value
    carries the units of the space, so values in different spaces are not comparable numbers), ``k_setting`` (the
    similarity setting whose neighbour count the metric's figures state, e.g. ``k``; None: they state none)."""

    name: str
    label: str
    description: str
    reference: str
    similarity: bool
    directed: bool
    atoms: str
    neighbours: bool
    computation: str
    interval: str
    scale_free: bool = True
    k_setting: str | None = None


Key = tuple[str, bool]


class Metric:
    """One similarity metric (see the module's docstring). ``through_unit_rows``: the metric reads a space only
    through its unit rows and its neighbour lists, so it is the same in a space that shares both with another (the
    unit space with the raw space under cosine k-NN) and is not computed again there."""

    facts: ClassVar[Facts]
    needs: ClassVar[frozenset[str]] = frozenset()
    through_unit_rows: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return self.facts.name

    def keys(self, pair) -> list[Key]:
        """The pair's keys of this metric: forward, and backward for a directed metric between two models."""
        return [(self.name, forward) for forward in pair.forwards if forward or self.facts.directed]

    def value(self, pair) -> dict[Key, float]:
        raise NotImplementedError

    def replicates(self, pair) -> dict[Key, np.ndarray]:
        raise NotImplementedError

    def permuted(self, pair) -> dict[Key, float]:
        """The value on ``pair``, whose second model's rows are permuted (``Pair.permutations``)."""
        return self.value(pair)

    def chance(self, pair) -> dict[Key, np.ndarray] | None:
        """A chance level of its own, ``(P,)`` per key, or None: the ``permuted`` values of the pair's permutations."""
        return None


class MomentMetric(Metric):
    """A number from a pair's centred covariances ``Xc^T Yc (d_x, d_y)``, ``Xc^T Xc``, ``Yc^T Yc``
    (``from_covariances``); its replicates from the same in every replicate, as ``(B, ...)`` stacks with the two
    spaces' ``bootstrap.ReplicateMoments`` (``from_replicates``). The value keeps its own arithmetic (the replicates'
    batched forms round differently)."""

    needs = frozenset({"moments", "replicates"})

    def from_covariances(self, cross: np.ndarray, cxx: np.ndarray, cyy: np.ndarray, pair) -> float:
        raise NotImplementedError

    def from_replicates(self, centred: np.ndarray, mx, my, pair) -> np.ndarray:
        raise NotImplementedError

    def value(self, pair) -> dict[Key, float]:
        return {(self.name, True): self.from_covariances(*pair.covariances, pair)}

    def replicates(self, pair) -> dict[Key, np.ndarray]:
        return {(self.name, True): self.from_replicates(pair.replicate_centred, pair.sx.replicates, pair.sy.replicates,
                                                        pair)}  # fmt: skip


class TermMetric(Metric):
    """A value that is an aggregate of per-atom terms (as scikit-matter pairs pointwise and global reconstruction
    errors): ``terms(pair, forward)`` gives them ``(m,)``, for the rows ``rows(pair)`` (None: every row),
    ``aggregate`` makes the value of them and ``weighted`` every bootstrap replicate from them, each atom's term
    counted as often as its structure was drawn (``bootstrap.Resampling.mean``). A pair computes a direction's terms
    once (``Pair.memo``)."""

    def terms(self, pair, forward: bool) -> np.ndarray:
        raise NotImplementedError

    def rows(self, pair) -> np.ndarray | None:
        return None

    def aggregate(self, terms: np.ndarray, pair) -> float:
        raise NotImplementedError

    def weighted(self, terms: np.ndarray, pair) -> np.ndarray:
        raise NotImplementedError

    def pair_terms(self, pair, forward: bool) -> np.ndarray:
        return pair.memo((self.name, forward), lambda: self.terms(pair, forward))

    def value(self, pair) -> dict[Key, float]:
        return {key: self.aggregate(self.pair_terms(pair, key[1]), pair) for key in self.keys(pair)}

    def replicates(self, pair) -> dict[Key, np.ndarray]:
        return {key: self.weighted(self.pair_terms(pair, key[1]), pair) for key in self.keys(pair)}
