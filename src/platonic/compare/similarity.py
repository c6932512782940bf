"""The fan-in: every metric for every pair of models, in the raw and the anchor space, as dask tasks.

Per-model quantities (moments, neighbour lists) are tasks computed once and shared by every pair
that needs them; pairs and metrics are independent tasks, so a local thread pool or any dask
``Client`` (e.g. on a SLURM cluster) runs them in parallel.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict

import dask
import numpy as np
import xarray as xr

from platonic.compare import bootstrap, metrics, registry
from platonic.compare.neighbours import nearest_neighbours
from platonic.compare.registry import DIRECTED, METRICS, NAMES
from platonic.settings import SimilaritySettings

SPACES = ("raw", "anchor")


def pairwise_similarity(
    spaces: dict[str, dict[str, np.ndarray]],
    structure_index: np.ndarray | None = None,
    settings: SimilaritySettings | None = None,
    client=None,
    weights: np.ndarray | None = None,
) -> xr.Dataset:
    """Compare all model pairs in every space.

    ``spaces`` maps a space name (``raw``, ``anchor``) to ``{model: features (N, d)}``; all arrays
    hold the same N atoms in the same order. ``structure_index (N,)`` groups atoms by structure
    so that GFRE's train/test split never separates atoms of one structure (default: each atom
    its own group). ``settings.metrics`` are computed (registry names), on ``settings.threads`` threads or
    on a dask ``client``. ``weights (N,)`` weight the rows of the moment-based metrics (CKA, debiased CKA,
    SVCCA, Procrustes, GFRE), e.g. by the number of symmetry copies of each unique environment; with
    ``settings.neighbours == "other-structures"`` no atom's neighbours come from its own structure.
    Returns ``similarity (metric, space, model_a, model_b)``,
    ``n_samples (metric)`` and ``intrinsic_dimension (space, model)``.
    """
    settings = settings or SimilaritySettings()
    for name in settings.metrics:
        registry.metric(name)  # unknown names: a clear error
    space_names = list(spaces)
    models = list(next(iter(spaces.values())))
    for name, features in spaces.items():
        if list(features) != models:
            raise ValueError(f"space {name!r} has models {list(features)}, expected {models}")
    n = len(next(iter(spaces[space_names[0]].values())))
    if n < 4:
        raise ValueError(f"need at least 4 atoms to compare models, got {n}")
    k = min(settings.k, n - 1)
    lfre_k = min(settings.lfre_k, n - 1)
    rng = np.random.default_rng(settings.seed)
    subsample = np.sort(rng.choice(n, size=min(settings.subsample, n), replace=False))
    queries = np.sort(rng.choice(n, size=min(settings.queries, n), replace=False))
    groups = structure_index if structure_index is not None else np.arange(n)
    train = _structure_split(groups, settings)
    excluded = groups if settings.neighbours == "other-structures" else None
    atoms_used = {"all": n, "subsample": len(subsample), "queries": len(queries), "test": int(np.count_nonzero(~train))}
    wanted = set(settings.metrics)
    needs_neighbours = any(METRICS[m].neighbours for m in wanted)
    resampling = _resampling(groups, train, weights, settings)
    uncertainty: dict[tuple, object] = {}
    delayed = dask.delayed
    tasks: dict[tuple, object] = {}
    dimension_tasks: dict[tuple, object] = {}
    for space in space_names:
        # each array enters the graph once, under a fixed name: dask would otherwise hash hundreds of
        # MB again for every task that takes it
        data = {m: delayed(x, name=f"features-{space}-{m}") for m, x in spaces[space].items()}
        train_rows = delayed(train, name=f"train-{space}")
        w = None if weights is None else delayed(np.asarray(weights, np.float64), name=f"weights-{space}")
        full = {m: delayed(metrics.moments)(x, weights=w) for m, x in data.items()}
        split = {m: delayed(metrics.split_moments)(x, train_rows, w) for m, x in data.items()}
        k_max = max(k, lfre_k, 2)
        neighbours = {
            m: delayed(nearest_neighbours)(
                x, k_max, settings.neighbour_search, n_probe=settings.n_probe, seed=settings.seed, groups=excluded
            )
            for m, x in data.items()
        }
        for m, x in data.items():
            dimension_tasks[space, m] = delayed(_twonn)(x, neighbours[m])
        # the subsample's distance matrix of each model, once (distance correlation and its intervals)
        distances = (
            {m: delayed(_subsample_distances)(x, subsample) for m, x in data.items()}
            if "distance_correlation" in wanted
            else dict.fromkeys(data)
        )
        for a, b in itertools.combinations_with_replacement(models, 2):
            x, y = data[a], data[b]
            cross = delayed(metrics.cross_gram)(x, y, weights=w)
            cross_split = delayed(_split_cross)(x, y, train_rows, w) if "gfre" in wanted else None
            if wanted & {"linear_cka", "svcca", "procrustes"}:
                covariances = delayed(_centred_covariances)(cross, full[a], full[b])
            if "linear_cka" in wanted:
                tasks["linear_cka", space, a, b] = delayed(_cka)(covariances)
            if "debiased_cka" in wanted:
                tasks["debiased_cka", space, a, b] = delayed(metrics.debiased_cka_from_moments)(cross, full[a], full[b])
            if "svcca" in wanted:
                tasks["svcca", space, a, b] = delayed(_svcca)(covariances)
            if "procrustes" in wanted:
                tasks["procrustes", space, a, b] = delayed(_procrustes)(covariances)
            if "mutual_knn" in wanted:
                tasks["mutual_knn", space, a, b] = delayed(_shared)(neighbours[a], neighbours[b], k)
            if "cknna" in wanted:
                tasks["cknna", space, a, b] = delayed(_cknna)(x, y, neighbours[a], neighbours[b], k)
            if "distance_correlation" in wanted:
                tasks["distance_correlation", space, a, b] = delayed(metrics.distance_correlation_from_distances)(
                    distances[a], distances[b]
                )
            if "optimal_transport" in wanted:
                tasks["optimal_transport", space, a, b] = delayed(_on_rows)(
                    metrics.optimal_transport_distance, x, y, subsample
                )
            for source, target in {(a, b), (b, a)}:
                xs, xt = data[source], data[target]
                if "gfre" in wanted:
                    tasks["gfre", space, source, target] = delayed(_gfre)(
                        cross_split, source == a, split[source], split[target]
                    )
                if "lfre" in wanted:
                    tasks["lfre", space, source, target] = delayed(_lfre_errors)(
                        xs, xt, neighbours[source], lfre_k, queries
                    )
                if "information_imbalance" in wanted:
                    tasks["information_imbalance", space, source, target] = delayed(metrics.neighbour_ranks)(
                        xt, neighbours[source], queries, groups=excluded
                    )
        if resampling is not None:
            _uncertainty_tasks(
                uncertainty, space, data, full, neighbours if needs_neighbours else None, tasks, distances, resampling,
                wanted, train, k, lfre_k, queries, subsample, excluded, models,
            )  # fmt: skip
    if not needs_neighbours:
        dimension_tasks = {}
    if client is not None:
        values, dimensions, spread = client.gather(client.compute([tasks, dimension_tasks, uncertainty]))
    else:
        values, dimensions, spread = dask.compute(
            tasks, dimension_tasks, uncertainty, scheduler="threads", num_workers=max(1, settings.threads)
        )
    names = [m for m in NAMES if m in wanted]
    table = np.full((len(names), len(space_names), len(models), len(models)), np.nan)
    for (metric, space, a, b), value in values.items():
        i, j, ia, ib = names.index(metric), space_names.index(space), models.index(a), models.index(b)
        value = _from_terms(metric, value, n, k)
        table[i, j, ia, ib] = value
        if metric not in DIRECTED:
            table[i, j, ib, ia] = value
    dimension = np.full((len(space_names), len(models)), np.nan)
    for (space, model), value in dimensions.items():
        dimension[space_names.index(space), models.index(model)] = value
    dims = ("metric", "space", "model_a", "model_b")
    intervals, replicates = _intervals(spread, table, names, space_names, models, settings)
    ds = xr.Dataset(
        {
            "similarity": (dims, table),
            **{name: (dims, values) for name, values in intervals.items()},
            "bootstrap_replicates": ((*dims, "replicate"), replicates),
            "n_samples": (("metric",), np.array([atoms_used[METRICS[m].atoms] for m in names], dtype=np.int64)),
            "intrinsic_dimension": (("space", "model"), dimension),
        },
        coords={"metric": names, "space": space_names, "model_a": models, "model_b": models, "model": models},
    )
    ds["similarity"].attrs["description"] = (
        "metric(model_a, model_b); for directed metrics (information_imbalance, gfre, lfre) model_a is the "
        "source that predicts model_b"
    )
    for name, description in INTERVAL_DESCRIPTIONS.items():
        ds[name].attrs["description"] = description
    ds["bootstrap_replicates"].attrs["description"] = (
        "the metric in each structure-bootstrap replicate (the same draws for every pair and space, so means and"
        " differences over pairs get intervals too)"
    )
    recorded = {k: v for k, v in asdict(settings).items() if k not in ("metrics", "threads")}
    if weights is not None:
        recorded["n_weighted_atoms"] = float(np.sum(weights))
    ds.attrs.update(kind="similarity", n_atoms=n, directed_metrics=sorted(DIRECTED & wanted), **recorded)
    return ds


BOOTSTRAP_VARIABLES = ("standard_error", "ci_low", "ci_high", "bootstrap_bias")
INTERVAL_DESCRIPTIONS = {
    "standard_error": "standard deviation of the metric over the structure-bootstrap replicates (attrs bootstrap)",
    "ci_low": "2.5 % percentile of the structure bootstrap minus its bias (the lower end of a 95 % interval)",
    "ci_high": "97.5 % percentile of the structure bootstrap minus its bias (the upper end of a 95 % interval)",
    "bootstrap_bias": "mean of the bootstrap replicates minus the value; the interval is shifted back by it",
    "chance": "mean of the metric when model_b's rows are permuted by whole structures (attrs permutations)",
    "chance_sd": "standard deviation of the metric over those permutations",
}


def _resampling(groups, train, weights, settings: SimilaritySettings):
    """The bootstrap draws and permutations of this comparison (seeded by ``settings.seed``), or None when
    neither is asked for."""
    if settings.bootstrap == 0 and settings.permutations == 0:
        return None
    structures, dense = np.unique(groups, return_inverse=True)
    counts = bootstrap.structure_counts(len(structures), settings.bootstrap, settings.seed + 2)
    rng = np.random.default_rng(settings.seed + 3)
    permutations = [bootstrap.block_permutation(dense, rng) for _ in range(settings.permutations)]
    train_structures = np.zeros(len(structures), dtype=bool)
    train_structures[dense[train]] = True
    return bootstrap.Resampling(dense, counts, train_structures, weights, permutations)


def _uncertainty_tasks(out, space, data, full, neighbours, tasks, distances, resampling, wanted, train, k, lfre_k,
                       queries, subsample, excluded, models) -> None:  # fmt: skip
    """Dask tasks of the bootstrap replicates (off-diagonal pairs) and the chance levels (every pair) of one
    space, into ``out[("bootstrap" | "chance", space, a, b)]``."""
    delayed = dask.delayed
    moment_metrics = bool(wanted & bootstrap.MOMENT_METRICS)
    lists = neighbours or {m: None for m in models}
    if resampling.n_replicates:
        replicate_moments = {
            m: delayed(bootstrap.ReplicateMoments)(x, resampling, svcca="svcca" in wanted, gfre="gfre" in wanted)
            if moment_metrics
            else None
            for m, x in data.items()
        }
        for a, b in itertools.combinations(models, 2):
            terms = {
                (metric, forward): tasks[(metric, space, a, b) if forward else (metric, space, b, a)]
                for metric in wanted & bootstrap.TERMS
                for forward in ((True, False) if metric in DIRECTED else (True,))
            }
            out["bootstrap", space, a, b] = delayed(bootstrap.pair_replicates)(
                data[a], data[b], replicate_moments[a], replicate_moments[b], lists[a], lists[b], terms, resampling,
                wanted=wanted, k=k, queries=queries, subsample=subsample, distances=(distances[a], distances[b]),
            )  # fmt: skip
    if resampling.permutations:
        permuted = {
            m: delayed(bootstrap.chance_moments)(x, resampling, train, wanted, subsample) for m, x in data.items()
        }
        for a, b in itertools.combinations_with_replacement(models, 2):
            out["chance", space, a, b] = delayed(bootstrap.pair_chance)(
                data[a], data[b], full[a] if moment_metrics else None, permuted[b], lists[a], lists[b], resampling,
                wanted=wanted, train=train, k=k, lfre_k=lfre_k, queries=queries, distances=distances[a],
                excluded=excluded,
            )  # fmt: skip


def _intervals(spread: dict, table: np.ndarray, names, space_names, models, settings) -> dict[str, np.ndarray]:
    """``INTERVAL_DESCRIPTIONS``' arrays shaped like ``table`` from the bootstrap and chance task results (NaN where
    not computed; a model with itself: the value, error 0), and every replicate, ``table.shape + (B,)``."""
    out = {name: np.full(table.shape, np.nan) for name in INTERVAL_DESCRIPTIONS}
    replicates = np.full((*table.shape, settings.bootstrap), np.nan)
    if settings.bootstrap:
        diagonal = np.arange(len(models))
        replicates[:, :, diagonal, diagonal] = table[:, :, diagonal, diagonal, None]
        out["standard_error"][:, :, diagonal, diagonal] = 0.0
        out["bootstrap_bias"][:, :, diagonal, diagonal] = 0.0
        out["ci_low"][:, :, diagonal, diagonal] = table[:, :, diagonal, diagonal]
        out["ci_high"][:, :, diagonal, diagonal] = table[:, :, diagonal, diagonal]
    for (kind, space, a, b), results in spread.items():
        j, ia, ib = space_names.index(space), models.index(a), models.index(b)
        for (metric, forward), values in results.items():
            i = names.index(metric)
            cells = [(ia, ib)] if forward else [(ib, ia)]
            if metric not in DIRECTED:
                cells = [(ia, ib), (ib, ia)]
            for row, column in cells:
                if kind == "bootstrap":
                    replicates[i, j, row, column] = values
                    summary = bootstrap.summarise(values, table[i, j, row, column])
                    for name, value in zip(BOOTSTRAP_VARIABLES, summary, strict=True):
                        out[name][i, j, row, column] = value
                else:
                    finite = values[np.isfinite(values)]
                    out["chance"][i, j, row, column] = finite.mean() if finite.size else np.nan
                    out["chance_sd"][i, j, row, column] = finite.std(ddof=1) if finite.size > 1 else np.nan
    return out, replicates


def _structure_split(groups: np.ndarray, settings: SimilaritySettings) -> np.ndarray:
    """Boolean train mask: a seeded ``train_fraction`` of the groups (structures), whole."""
    unique = np.unique(groups)
    rng = np.random.default_rng(settings.seed + 1)
    n_train = int(round(settings.train_fraction * len(unique)))
    n_train = min(max(n_train, 1), len(unique) - 1) if len(unique) > 1 else 1
    chosen = rng.choice(unique, size=n_train, replace=False)
    return np.isin(groups, chosen)


def _centred_covariances(cross, mx: metrics.Moments, my: metrics.Moments):
    return metrics.centred_cross(cross, mx, my), mx.centred_gram, my.centred_gram


def _cka(covariances) -> float:
    return metrics.cka_from_covariances(*covariances)


def _svcca(covariances) -> float:
    return metrics.svcca_from_covariances(*covariances)


def _procrustes(covariances) -> float:
    return metrics.procrustes_from_covariances(*covariances)


def _shared(neighbours_a, neighbours_b, k) -> np.ndarray:
    return metrics.shared_neighbours(neighbours_a[:, :k], neighbours_b[:, :k])


def _from_terms(metric: str, value, n: int, k: int) -> float:
    """A metric's value from its task's result: the mean of the per-atom terms for ``bootstrap.TERMS``."""
    if metric == "mutual_knn":
        return int(value.sum()) / (len(value) * k)
    if metric == "information_imbalance":
        return float(2.0 / n * value.mean())
    if metric == "lfre":
        return float(np.sqrt(value.mean()))
    return value


def _cknna(x, y, neighbours_a, neighbours_b, k) -> float:
    return metrics.cknna(x, y, neighbours_a[:, :k], neighbours_b[:, :k])


def _subsample_distances(x, rows) -> np.ndarray:
    return metrics.distance_matrix(x[rows])


def _on_rows(metric, x, y, rows) -> float:
    return metric(x[rows], y[rows])


def _split_cross(x, y, train, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``X^T Y`` on the train and on the test rows (computed once per pair, used both ways)."""
    if weights is None:
        return metrics.cross_gram(x[train], y[train]), metrics.cross_gram(x[~train], y[~train])
    return (
        metrics.cross_gram(x[train], y[train], weights=weights[train]),
        metrics.cross_gram(x[~train], y[~train], weights=weights[~train]),
    )


def _gfre(cross_split, forward: bool, split_source, split_target) -> float:
    cross_train, cross_test = cross_split if forward else (cross_split[0].T, cross_split[1].T)
    return metrics.gfre_from_moments(cross_train, cross_test, split_source, split_target)


def _lfre_errors(x, y, neighbours, k, queries) -> np.ndarray:
    return metrics.lfre_errors(x, y, neighbours[:, :k], queries)


def _twonn(x, neighbours) -> float:
    return metrics.twonn_dimension(x, neighbours)


def similarity_table(ds: xr.Dataset) -> list[dict]:
    """Tidy rows (one per metric, space and ordered pair) for the CSV next to the store."""
    rows = []
    values = ds["similarity"].values
    extra = [name for name in INTERVAL_DESCRIPTIONS if name in ds]
    control = dict(zip(map(str, ds.model.values), ds["control"].values, strict=True)) if "control" in ds else {}
    for i, metric in enumerate(ds.metric.values):
        for j, space in enumerate(ds.space.values):
            for ia, a in enumerate(ds.model_a.values):
                for ib, b in enumerate(ds.model_b.values):
                    rows.append(
                        {
                            "metric": str(metric),
                            "space": str(space),
                            "model_a": str(a),
                            "model_b": str(b),
                            **(
                                {"control_a": bool(control[str(a)]), "control_b": bool(control[str(b)])}
                                if control
                                else {}
                            ),
                            "value": float(values[i, j, ia, ib]),
                            **{name: float(ds[name].values[i, j, ia, ib]) for name in extra},
                            "n_samples": int(ds["n_samples"].values[i]),
                        }
                    )
    return rows
