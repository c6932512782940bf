"""The fan-in: every metric for every pair of models, in the raw and the anchor space, as dask tasks."""

from __future__ import annotations

import itertools

import dask
import numpy as np
import xarray as xr

from platonic import metrics

METRICS = ("linear_cka", "mutual_knn")
SPACES = ("raw", "anchor")


def pairwise_similarity(spaces: dict[str, dict[str, np.ndarray]], k: int = 10, threads: int = 1) -> xr.Dataset:
    """Compare all model pairs.

    ``spaces`` maps a space name (``raw``, ``anchor``) to ``{model: features (N, d)}``; all arrays
    hold the same N atoms in the same order. Per-model quantities (self-covariances, neighbour
    lists) are computed once and shared by all pairs. Returns ``similarity (metric, space,
    model_a, model_b)``, symmetric, with the diagonal computed like any other pair.
    """
    space_names = list(spaces)
    models = list(next(iter(spaces.values())))
    for name, features in spaces.items():
        if list(features) != models:
            raise ValueError(f"space {name!r} has models {list(features)}, expected {models}")
    tasks = {}
    for space in space_names:
        per_model = spaces[space]
        self_cov = {m: dask.delayed(metrics.centred_cross_covariance)(x, x) for m, x in per_model.items()}
        neighbours = {m: dask.delayed(metrics.knn_indices)(x, k) for m, x in per_model.items()}
        for a, b in itertools.combinations_with_replacement(models, 2):
            cross = (
                self_cov[a] if a == b else dask.delayed(metrics.centred_cross_covariance)(per_model[a], per_model[b])
            )
            tasks["linear_cka", space, a, b] = dask.delayed(metrics.cka_from_covariances)(
                cross, self_cov[a], self_cov[b]
            )
            tasks["mutual_knn", space, a, b] = dask.delayed(metrics.mutual_knn_alignment)(neighbours[a], neighbours[b])
    (values,) = dask.compute(tasks, scheduler="threads", num_workers=max(1, threads))
    table = np.full((len(METRICS), len(space_names), len(models), len(models)), np.nan)
    for (metric, space, a, b), value in values.items():
        i, j, ia, ib = METRICS.index(metric), space_names.index(space), models.index(a), models.index(b)
        table[i, j, ia, ib] = table[i, j, ib, ia] = value
    n_atoms = len(next(iter(spaces[space_names[0]].values())))
    ds = xr.Dataset(
        {"similarity": (("metric", "space", "model_a", "model_b"), table)},
        coords={"metric": list(METRICS), "space": space_names, "model_a": models, "model_b": models},
    )
    ds.attrs.update(kind="similarity", k=k, n_atoms=n_atoms)
    return ds


def similarity_table(ds: xr.Dataset) -> list[dict]:
    """Tidy rows (one per metric, space and ordered pair) for the CSV next to the store."""
    rows = []
    for metric in ds.metric.values:
        for space in ds.space.values:
            for a in ds.model_a.values:
                for b in ds.model_b.values:
                    value = float(ds.similarity.sel(metric=metric, space=space, model_a=a, model_b=b))
                    rows.append(
                        {
                            "metric": str(metric),
                            "space": str(space),
                            "model_a": str(a),
                            "model_b": str(b),
                            "value": value,
                            "n_atoms": int(ds.attrs["n_atoms"]),
                        }
                    )
    return rows
