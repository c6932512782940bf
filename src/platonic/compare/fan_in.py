"""The fan-in in three steps that run as separate jobs: a summary per model, a comparison per pair, a gather.

``Comparison`` is what every job of one comparison derives from its atoms alone (the subsample, the queries, GFRE's
train/test split, the bootstrap draws and the permutations, all seeded by ``SimilaritySettings.seed``), so a model's
summary and a pair's comparison computed in different processes use the same draws. ``summarise`` computes what a
model brings to every pair it is in (moments, neighbour lists, intrinsic dimension, the subsample's distances, the
bootstrap replicates' moments and the permuted moments of the chance level), once per model and space;
``compare_pair`` computes one pair's values, bootstrap replicates and chance levels from the two models' features
and summaries; ``platonic.compare.similarity.assemble`` gathers them into the similarity store.

With ``similarity.knn_subsample`` set, mutual k-NN alone is computed on a seeded subsample of the compared atoms
(``knn_draw``, the reference study's protocol): each of its atoms gets its neighbours among the subsample only, in
the pair job (a search among a few thousand rows costs little), its bootstrap replicates are the count-weighted
means over the subsample's atoms (the same structure draws as every other metric) and its chance level permutes
whole structures within the subsample. The summaries' neighbour lists, and every other metric, keep all atoms.

A pair is oriented by model name (``pair_key``): the chance level of a symmetric metric permutes the rows of the
pair's second model, whatever the configured order, so that a pair's result never depends on which other models
are configured or in which order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from platonic.compare import bootstrap, metrics, registry
from platonic.compare.bootstrap import ReplicateMoments, Resampling
from platonic.compare.metrics import Moments, Pair, SplitMoments
from platonic.compare.neighbours import nearest_neighbours
from platonic.compare.registry import DIRECTED, IMPLEMENTATIONS, METRICS, NAMES
from platonic.settings import SimilaritySettings
from platonic.spaces import SAME_NEIGHBOURS

# metrics that read a space only through its unit rows and its neighbour lists: the same in a space that shares
# both with another (the unit space with the raw space under cosine k-NN)
THROUGH_UNIT_ROWS = frozenset(name for name, m in IMPLEMENTATIONS.items() if m.through_unit_rows)


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The orientation of the pair {a, b}: by name."""
    return (a, b) if a <= b else (b, a)


@dataclass
class Comparison:
    """The draws of one comparison on ``n`` atoms: each atom's structure ``groups (n,)``, the moment metrics' row
    ``weights`` (None: uniform), the subsample and the queries (row indices), GFRE's ``train`` rows, the rows whose
    neighbours are excluded (``excluded``: each row's structure with ``neighbours == "other-structures"``) and the
    bootstrap/permutation ``resampling`` (None when neither is asked for); with ``knn_subsample``, mutual k-NN's
    rows ``knn_rows`` (``knn_draw``) and its structure-block permutations of them, ``knn_permutations``. GFRE's and
    LFRE's relative ridges: ``ridge_grid`` (one value: that ridge; several: chosen by cross-validation on the rows'
    two ``folds (n,)``, ``cv_folds``); SVCCA keeps at most ``svcca_directions`` directions per space."""

    settings: SimilaritySettings
    n: int
    groups: np.ndarray
    weights: np.ndarray | None
    k: int
    lfre_k: int
    subsample: np.ndarray
    queries: np.ndarray
    train: np.ndarray
    excluded: np.ndarray | None
    resampling: Resampling | None
    wanted: frozenset = field(default_factory=frozenset)
    knn_rows: np.ndarray | None = None
    knn_permutations: list = field(default_factory=list)
    ridge_grid: tuple[float, ...] = (1e-8,)
    folds: np.ndarray | None = None
    svcca_directions: int | None = None

    @classmethod
    def build(
        cls,
        n: int,
        structure_index: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        settings: SimilaritySettings | None = None,
    ) -> Comparison:
        settings = settings or SimilaritySettings()
        for name in settings.metrics:
            registry.metric(name)  # unknown names: a clear error
        if n < 4:
            raise ValueError(f"need at least 4 atoms to compare models, got {n}")
        rng = np.random.default_rng(settings.seed)
        subsample = np.sort(rng.choice(n, size=min(settings.subsample, n), replace=False))
        queries = np.sort(rng.choice(n, size=min(settings.queries, n), replace=False))
        groups = np.asarray(structure_index) if structure_index is not None else np.arange(n)
        if len(groups) != n:
            raise ValueError(f"structure_index has {len(groups)} entries for {n} atoms")
        train = train_mask(groups, settings)
        weights = None if weights is None else np.asarray(weights, np.float64)
        knn_rows, knn_permutations = None, []
        if settings.knn_subsample is not None:
            knn_rows = knn_draw(n, settings.knn_subsample, settings.knn_subsample_seed)
            if len(knn_rows) <= min(settings.k, n - 1):
                raise ValueError(f"a k-NN subsample of {len(knn_rows)} atoms needs more than k = {settings.k}")
            dense = np.unique(groups, return_inverse=True)[1][knn_rows]
            rng = np.random.default_rng(settings.seed + 4)
            knn_permutations = [bootstrap.block_permutation(dense, rng) for _ in range(settings.permutations)]
        return cls(
            settings=settings,
            n=n,
            groups=groups,
            weights=weights,
            k=min(settings.k, n - 1),
            lfre_k=min(settings.lfre_k, n - 1),
            subsample=subsample,
            queries=queries,
            train=train,
            excluded=groups if settings.neighbours == "other-structures" else None,
            resampling=resampling(groups, train, weights, settings),
            wanted=frozenset(settings.metrics),
            knn_rows=knn_rows,
            knn_permutations=knn_permutations,
            ridge_grid=ridge_grid(settings),
            folds=cv_folds(groups, train, settings.seed + 5) if settings.ridge == "cv" else None,
            svcca_directions=metrics.svcca_max_directions(n, settings.svcca_max_fraction),
        )

    @property
    def cross_validated(self) -> bool:
        """Whether GFRE and LFRE choose their ridge by cross-validation (``ridge_grid`` has several values)."""
        return len(self.ridge_grid) > 1

    def width_ratios(self, width_x: int, width_y: int, directions=(0, 0)) -> dict[tuple[str, bool], float]:
        """The ratio each wide-sensitive estimator depends on, ``{(metric, forward): ratio}``, for spaces of widths
        ``width_x``, ``width_y`` whose SVCCA needs ``directions`` (``metrics.principal_directions_count``): GFRE's
        source width over its training atoms, LFRE's over its neighbours, SVCCA's directions over the atoms."""
        n_train = max(int(np.count_nonzero(self.train)), 1)
        out = {("svcca", True): max(directions) / self.n}
        for forward, width in ((True, width_x), (False, width_y)):
            out["gfre", forward] = width / n_train
            out["lfre", forward] = width / self.lfre_k
        return {key: value for key, value in out.items() if key[0] in self.wanted}

    @property
    def needs_neighbours(self) -> bool:
        return any(METRICS[m].neighbours for m in self.wanted)

    def needs(self, part: str) -> bool:
        """Whether a wanted metric needs ``part`` of a model's summary (``metrics.base.SUMMARY_PARTS``)."""
        return any(part in IMPLEMENTATIONS[m].needs for m in self.wanted)

    @property
    def implementations(self) -> list[metrics.Metric]:
        """The wanted metrics' classes' instances, in registry order."""
        return [IMPLEMENTATIONS[name] for name in NAMES if name in self.wanted]

    @property
    def atoms_used(self) -> dict[str, int]:
        """How many atoms each kind of metric uses (``registry.Metric.atoms``)."""
        test = int(np.count_nonzero(~self.train))
        return {"all": self.n, "subsample": len(self.subsample), "queries": len(self.queries), "test": test}


def knn_draw(n: int, size: int, seed: int) -> np.ndarray:
    """Mutual k-NN's subsample of ``n`` rows, ``(min(size, n),)`` int64 in the order drawn: the first ``size`` of
    ``torch.randperm(n)`` from a generator seeded with ``seed`` (what ``torch.manual_seed(seed);
    torch.randperm(n)[:size]`` gives, the reference study's draw with seed 42), or of
    ``numpy.random.default_rng(seed).permutation(n)`` where torch is not installed (another draw)."""
    try:
        import torch
    except ImportError:
        logging.getLogger("platonic").warning(
            "torch is not installed: the k-NN subsample is numpy's draw, not torch.randperm's (the reference study's)"
        )
        order = np.random.default_rng(seed).permutation(n)
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return np.asarray(order[: min(size, n)], dtype=np.int64)


def ridge_grid(settings: SimilaritySettings) -> tuple[float, ...]:
    """The relative ridges GFRE and LFRE choose from: ``similarity.ridge_grid`` with ``ridge: cv``, else the one
    fixed ridge."""
    return tuple(float(r) for r in settings.ridge_grid) if settings.ridge == "cv" else (float(settings.ridge),)


def cv_folds(groups: np.ndarray, train: np.ndarray, seed: int) -> np.ndarray:
    """Each row's cross-validation fold, 0 or 1, ``(n,)`` int8, by structure: a seeded half of the training
    structures (the first half of ``numpy.random.default_rng(seed).permutation`` of them) is fold 0, and a half of
    the others likewise (LFRE's neighbourhoods span both sides of GFRE's split)."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(groups), dtype=np.int8)
    for side in (train, ~train):
        structures = np.unique(groups[side])
        second = rng.permutation(structures)[len(structures) // 2 :]
        folds[side & np.isin(groups, second)] = 1
    return folds


def train_mask(groups: np.ndarray, settings: SimilaritySettings) -> np.ndarray:
    """GFRE's boolean train mask over the rows: a seeded ``train_fraction`` of the groups (structures), whole
    (the transfer probes' split is ``platonic.analysis.transfer.held_out_mask``, a test mask)."""
    unique = np.unique(groups)
    rng = np.random.default_rng(settings.seed + 1)
    n_train = int(round(settings.train_fraction * len(unique)))
    n_train = min(max(n_train, 1), len(unique) - 1) if len(unique) > 1 else 1
    chosen = rng.choice(unique, size=n_train, replace=False)
    return np.isin(groups, chosen)


def resampling(groups, train, weights, settings: SimilaritySettings) -> Resampling | None:
    """The bootstrap draws and permutations of a comparison (seeded by ``settings.seed``), or None when neither is
    asked for."""
    if settings.bootstrap == 0 and settings.permutations == 0:
        return None
    structures, dense = np.unique(groups, return_inverse=True)
    counts = bootstrap.structure_counts(len(structures), settings.bootstrap, settings.seed + 2)
    rng = np.random.default_rng(settings.seed + 3)
    permutations = [bootstrap.block_permutation(dense, rng) for _ in range(settings.permutations)]
    train_structures = np.zeros(len(structures), dtype=bool)
    train_structures[dense[train]] = True
    return bootstrap.Resampling(dense, counts, train_structures, weights, permutations)


@dataclass
class ModelSummary:
    """What one model brings to every pair in one space (None where no wanted metric needs it): its ``moments``
    and GFRE's ``split`` moments, its ``neighbours (n, k_max)``, its TwoNN ``dimension``, the subsample's
    ``distances``, the bootstrap ``replicates``' moments, the permuted moments of the ``chance`` level and CKNNA's
    ``own_kernel`` (``metrics.OwnKernel``: computed here once, not in each of the model's pairs)."""

    moments: Moments | None = None
    split: SplitMoments | None = None
    neighbours: np.ndarray | None = None
    dimension: float = float("nan")
    distances: np.ndarray | None = None
    replicates: ReplicateMoments | None = None
    chance: list | None = None
    own_kernel: metrics.OwnKernel | None = None


# the pieces of a summary, each a function of (features, comparison[, neighbours]); the in-process fan-in runs them
# as separate dask tasks, the summary job one after the other


def summary_moments(x, c: Comparison) -> Moments | None:
    return metrics.moments(x, weights=c.weights) if c.needs("moments") else None


def summary_split(x, c: Comparison) -> SplitMoments | None:
    if not c.needs("split"):
        return None
    return metrics.split_moments(x, c.train, c.weights, c.folds if c.cross_validated else None)


def summary_neighbours(x, c: Comparison) -> np.ndarray | None:
    if not c.needs_neighbours:
        return None
    s = c.settings
    k_max = max(c.k, c.lfre_k, 2)
    return nearest_neighbours(
        x, k_max, s.neighbour_search, n_probe=s.n_probe, seed=s.seed, groups=c.excluded, similarity=s.knn_similarity
    )


def summary_dimension(x, neighbours, c: Comparison) -> float:
    """TwoNN on the k-NN metrics' lists ``neighbours (n, k_max)`` (None: no neighbour metric is wanted, NaN), or
    with ``twonn_distance: euclidean`` on as many neighbours searched by Euclidean distance."""
    if neighbours is None:
        return float("nan")
    s = c.settings
    if s.twonn_distance == "euclidean":
        neighbours = nearest_neighbours(
            metrics.features(x).x, neighbours.shape[1], s.neighbour_search, n_probe=s.n_probe, seed=s.seed,
            groups=c.excluded, similarity="euclidean",
        )  # fmt: skip
    return metrics.twonn_dimension(
        x, neighbours, s.twonn_discard, s.twonn_zero_tolerance, s.twonn_duplicates, s.twonn_distance
    )


def summary_distances(x, c: Comparison) -> np.ndarray | None:
    return metrics.distance_matrix(x[c.subsample]) if c.needs("distances") else None


def summary_replicates(x, c: Comparison) -> ReplicateMoments | None:
    if c.resampling is None or not c.resampling.n_replicates or not c.needs("replicates"):
        return None
    return ReplicateMoments(
        x, c.resampling, svcca=c.needs("whitening"), gfre=c.needs("split"), svcca_directions=c.svcca_directions
    )


def summary_own_kernel(x, neighbours, c: Comparison) -> metrics.OwnKernel | None:
    """CKNNA's ``OwnKernel`` of ``x`` on its first k ``neighbours`` (with every bootstrap replicate's HSIC), or None
    where no wanted metric needs it."""
    if neighbours is None or not c.needs("own_kernel"):
        return None
    return metrics.own_kernel(x, neighbours[:, : c.k], c.resampling)


def summary_chance(x, c: Comparison) -> list | None:
    """Per permutation, what the chance level needs of the permuted space, computed once per model: its moments and
    train/test split moments (with the rows' cross-validation folds, also the folds'; row weights and folds staying
    with the rows of the pair's other model), and its subsample's distance matrix; None where no wanted metric needs
    it."""
    if c.resampling is None or not c.resampling.permutations:
        return None
    folds = c.folds if c.cross_validated else None
    out = []
    for perm in c.resampling.permutations:
        permuted = x[perm]
        moments = metrics.moments(permuted, weights=c.weights) if c.needs("moments") else None
        split = metrics.split_moments(permuted, c.train, c.weights, folds) if c.needs("split") else None
        distances = metrics.distance_matrix(permuted[c.subsample]) if c.needs("distances") else None
        out.append((moments, split, distances))
    return out


def neighbours_from(space: str, settings: SimilaritySettings) -> str | None:
    """The space whose summary's neighbour lists ``space``'s summary takes over (``spaces.SAME_NEIGHBOURS``: the
    unit space has the raw space's cosine neighbours), or None: it searches its own (always under the inner
    product, which the rows' lengths change)."""
    return SAME_NEIGHBOURS.get(space) if settings.knn_similarity == "cosine" else None


def summarise(x: np.ndarray | metrics.Features, c: Comparison, taken: ModelSummary | None = None) -> ModelSummary:
    """One model's ``ModelSummary`` of features ``x (n, d)`` in one space (an array or ``metrics.Features``).
    ``taken``: the summary of the space whose neighbour lists this space takes over (``neighbours_from``), whose
    unit rows are this space's too (``spaces.model_spaces``): its lists, and what is computed from them and the unit
    rows alone, are this space's (the TwoNN dimension between unit rows; CKNNA's own kernel is not needed, CKNNA
    being one of ``THROUGH_UNIT_ROWS``); else the lists are searched here."""
    fx = metrics.features(x)
    x = fx.x
    if taken is None:
        neighbours = summary_neighbours(x, c)
        dimension = summary_dimension(fx, neighbours, c)
        own = summary_own_kernel(fx, neighbours, c)
    else:
        neighbours, own = taken.neighbours, None
        same_rows = c.settings.twonn_distance == "unit"  # else TwoNN measures the rows as given, which differ
        dimension = taken.dimension if same_rows else summary_dimension(fx, neighbours, c)
    return ModelSummary(
        moments=summary_moments(x, c),
        split=summary_split(x, c),
        neighbours=neighbours,
        dimension=dimension,
        distances=summary_distances(x, c),
        replicates=summary_replicates(x, c),
        chance=summary_chance(x, c),
        own_kernel=own,
    )


@dataclass
class PairResult:
    """One pair's metrics in one space, ``{(metric, forward): ...}`` (``forward`` False: a directed metric from the
    pair's second model to its first): the ``values``, the bootstrap ``replicates (B,)`` (empty for a model with
    itself, whose interval is its value) and the ``chance`` levels ``(P,)``; ``atoms_used`` as
    ``Comparison.atoms_used``; the relative ``ridges`` GFRE and LFRE used, the ``ratios`` their estimators and
    SVCCA's depend on (``Comparison.width_ratios``) and the ``directions`` SVCCA needs in each of the two spaces
    (for 99 % of the variance, before its cap; 0 without SVCCA)."""

    values: dict
    replicates: dict
    chance: dict
    atoms_used: dict
    ridges: dict = field(default_factory=dict)
    ratios: dict = field(default_factory=dict)
    directions: tuple[int, int] = (0, 0)


def compare_pair(
    x, y, sx: ModelSummary, sy: ModelSummary, c: Comparison, same: bool = False, taken: PairResult | None = None
) -> PairResult:
    """Every wanted metric of features ``x`` and ``y`` (the same ``c.n`` atoms in the same order) with their
    summaries; ``same``: x and y are one model (only forward directions, no bootstrap). ``x`` and ``y`` are arrays
    or ``metrics.Features`` (what the metrics derive from all rows is then computed once per space). ``taken``: the
    pair's result in the space whose neighbour lists this space took over (``neighbours_from``), whose unit rows
    are this space's too (``spaces.model_spaces``); its ``THROUGH_UNIT_ROWS`` metrics are this space's, not
    computed again."""
    if taken is not None:
        result = compare_pair(x, y, sx, sy, replace(c, wanted=c.wanted - THROUGH_UNIT_ROWS), same)
        for got, given in ((result.values, taken.values), (result.replicates, taken.replicates),
                           (result.chance, taken.chance)):  # fmt: skip
            got.update({key: value for key, value in given.items() if key[0] in THROUGH_UNIT_ROWS})
        return result
    pair = Pair(x, y, sx, sy, c, same)
    chosen = c.implementations
    values: dict[tuple[str, bool], float] = {}
    for m in chosen:
        values.update(m.value(pair))
    replicates: dict[tuple[str, bool], np.ndarray] = {}
    chance: dict[tuple[str, bool], np.ndarray] = {}
    r = c.resampling
    if r is not None and r.n_replicates and not same:
        for m in chosen:
            replicates.update(m.replicates(pair))
        pair.forget("replicate_crosses", "replicate_cross", "replicate_centred")
    if r is not None and r.permutations:
        own = {m.name: m.chance(pair) for m in chosen}
        for p, permuted in enumerate(pair.permutations()):
            for m in chosen:
                if own[m.name] is None:
                    for key, value in m.permuted(permuted).items():
                        chance.setdefault(key, np.full(len(r.permutations), np.nan))[p] = value
        for got in own.values():
            chance.update(got or {})
    directions = (0, 0)
    if "svcca" in c.wanted:
        count = metrics.principal_directions_count
        directions = (count(sx.moments.centred_gram), count(sy.moments.centred_gram))
    ratios = c.width_ratios(pair.x.shape[1], pair.y.shape[1], directions)
    if same:
        ratios = {key: value for key, value in ratios.items() if key[1]}
    return PairResult(values, replicates, chance, c.atoms_used, pair.ridges, ratios, directions)


def directed_cells(key: tuple[str, bool]) -> list[tuple[int, int]]:
    """Where a pair result's ``(metric, forward)`` goes in the (model_a, model_b) table, as (row, column) of the
    pair's (first, second) = (0, 1): a symmetric metric in both cells, a directed one in its direction's."""
    metric, forward = key
    if metric not in DIRECTED:
        return [(0, 1), (1, 0)]
    return [(0, 1)] if forward else [(1, 0)]
