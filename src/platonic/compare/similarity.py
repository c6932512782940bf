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

from platonic.compare import metrics, registry
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
                tasks["mutual_knn", space, a, b] = delayed(_mutual_knn)(neighbours[a], neighbours[b], k)
            if "cknna" in wanted:
                tasks["cknna", space, a, b] = delayed(_cknna)(x, y, neighbours[a], neighbours[b], k)
            if "distance_correlation" in wanted:
                tasks["distance_correlation", space, a, b] = delayed(_on_rows)(
                    metrics.distance_correlation, x, y, subsample
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
                    tasks["lfre", space, source, target] = delayed(_lfre)(xs, xt, neighbours[source], lfre_k, queries)
                if "information_imbalance" in wanted:
                    tasks["information_imbalance", space, source, target] = delayed(metrics.information_imbalance)(
                        xs, xt, neighbours[source], queries, groups=excluded
                    )
    if not needs_neighbours:
        dimension_tasks = {}
    if client is not None:
        values, dimensions = client.gather(client.compute([tasks, dimension_tasks]))
    else:
        values, dimensions = dask.compute(
            tasks, dimension_tasks, scheduler="threads", num_workers=max(1, settings.threads)
        )
    names = [m for m in NAMES if m in wanted]
    table = np.full((len(names), len(space_names), len(models), len(models)), np.nan)
    for (metric, space, a, b), value in values.items():
        i, j, ia, ib = names.index(metric), space_names.index(space), models.index(a), models.index(b)
        table[i, j, ia, ib] = value
        if metric not in DIRECTED:
            table[i, j, ib, ia] = value
    dimension = np.full((len(space_names), len(models)), np.nan)
    for (space, model), value in dimensions.items():
        dimension[space_names.index(space), models.index(model)] = value
    ds = xr.Dataset(
        {
            "similarity": (("metric", "space", "model_a", "model_b"), table),
            "n_samples": (("metric",), np.array([atoms_used[METRICS[m].atoms] for m in names], dtype=np.int64)),
            "intrinsic_dimension": (("space", "model"), dimension),
        },
        coords={"metric": names, "space": space_names, "model_a": models, "model_b": models, "model": models},
    )
    ds["similarity"].attrs["description"] = (
        "metric(model_a, model_b); for directed metrics (information_imbalance, gfre, lfre) model_a is the "
        "source that predicts model_b"
    )
    recorded = {k: v for k, v in asdict(settings).items() if k not in ("metrics", "threads")}
    if weights is not None:
        recorded["n_weighted_atoms"] = float(np.sum(weights))
    ds.attrs.update(kind="similarity", n_atoms=n, directed_metrics=sorted(DIRECTED & wanted), **recorded)
    return ds


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


def _mutual_knn(neighbours_a, neighbours_b, k) -> float:
    return metrics.mutual_knn_alignment(neighbours_a[:, :k], neighbours_b[:, :k])


def _cknna(x, y, neighbours_a, neighbours_b, k) -> float:
    return metrics.cknna(x, y, neighbours_a[:, :k], neighbours_b[:, :k])


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


def _lfre(x, y, neighbours, k, queries) -> float:
    return metrics.lfre(x, y, neighbours[:, :k], queries)


def _twonn(x, neighbours) -> float:
    return metrics.twonn_dimension(x, neighbours)


def similarity_table(ds: xr.Dataset) -> list[dict]:
    """Tidy rows (one per metric, space and ordered pair) for the CSV next to the store."""
    rows = []
    values = ds["similarity"].values
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
                            "value": float(values[i, j, ia, ib]),
                            "n_samples": int(ds["n_samples"].values[i]),
                        }
                    )
    return rows
