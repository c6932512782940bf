"""The fan-in: every metric for every pair of models, in every space (``platonic.spaces``).

The work is a summary per model (``platonic.compare.fan_in.summarise``), a comparison per pair
(``fan_in.compare_pair``) and their assembly into one store (``assemble``). The workflow runs them as separate jobs
(``platonic.stages.fan_in``); ``pairwise_similarity`` runs them in one process, as dask tasks on a local thread pool
or any dask ``Client``, with the same functions and therefore the same numbers.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict

import dask
import numpy as np
import xarray as xr

from platonic.compare import bootstrap, fan_in, metrics
from platonic.compare.fan_in import Comparison, ModelSummary, PairResult, pair_key
from platonic.compare.registry import DIRECTED, METRICS, NAMES
from platonic.settings import SimilaritySettings

__all__ = ["assemble", "pairwise_similarity", "similarity_table"]


def pairwise_similarity(
    spaces: dict[str, dict[str, np.ndarray]],
    structure_index: np.ndarray | None = None,
    settings: SimilaritySettings | None = None,
    client=None,
    weights: np.ndarray | None = None,
) -> xr.Dataset:
    """Compare all model pairs in every space, in this process.

    ``spaces`` maps a space name (``platonic.spaces.SPACES``) to ``{model: features (N, d)}`` (arrays or
    ``metrics.Features``, e.g. from ``spaces.model_spaces``); all hold the same N atoms in the same order. A space
    that takes its neighbour lists from another (``fan_in.neighbours_from``) takes them when that space comes
    earlier in ``spaces``. ``structure_index (N,)`` groups atoms by structure
    so that GFRE's train/test split never separates atoms of one structure (default: each atom
    its own group). ``settings.metrics`` are computed (registry names), on ``settings.threads`` threads or
    on a dask ``client``. ``weights (N,)`` weight the rows of the moment-based metrics (CKA, debiased CKA,
    SVCCA, Procrustes, GFRE), e.g. by the number of symmetry copies of each unique environment; with
    ``settings.neighbours == "other-structures"`` no atom's neighbours come from its own structure.
    Returns ``similarity (metric, space, model_a, model_b)``,
    ``n_samples (metric)`` and ``intrinsic_dimension (space, model)`` (``assemble``).
    """
    settings = settings or SimilaritySettings()
    space_names = list(spaces)
    models = list(next(iter(spaces.values())))
    for name, features in spaces.items():
        if list(features) != models:
            raise ValueError(f"space {name!r} has models {list(features)}, expected {models}")
    n = len(next(iter(spaces[space_names[0]].values())))
    c = Comparison.build(n, structure_index, weights, settings)
    delayed = dask.delayed
    tasks: dict[tuple, object] = {}
    searched: dict[tuple[str, str], object] = {}  # (space, model) -> its neighbour lists, for a later space
    for space in space_names:
        # each array enters the graph once, under a fixed name: dask would otherwise hash hundreds of
        # MB again for every task that takes it
        # (the rows for a summary's pieces; the metrics.Features, whose derived arrays a model's tasks share,
        # for the dimension and the pairs)
        features = {m: metrics.features(x) for m, x in spaces[space].items()}
        data = {m: delayed(f, name=f"features-{space}-{m}") for m, f in features.items()}
        rows = {m: delayed(f.x, name=f"rows-{space}-{m}") for m, f in features.items()}
        comparison = delayed(c, name=f"comparison-{space}")
        summaries = {}
        source = fan_in.neighbours_from(space, c.settings)
        for m, x in rows.items():
            if (source, m) in searched:  # taken over, with what depends on the lists alone (fan_in.summarise)
                neighbours, own = searched[source, m], None
            else:
                neighbours = delayed(fan_in.summary_neighbours)(x, comparison)
                own = delayed(fan_in.summary_own_kernel)(data[m], neighbours, comparison)
            searched[space, m] = neighbours
            summaries[m] = delayed(ModelSummary)(
                moments=delayed(fan_in.summary_moments)(x, comparison),
                split=delayed(fan_in.summary_split)(x, comparison),
                neighbours=neighbours,
                dimension=delayed(fan_in.summary_dimension)(data[m], neighbours, comparison),
                distances=delayed(fan_in.summary_distances)(x, comparison),
                replicates=delayed(fan_in.summary_replicates)(x, comparison),
                chance=delayed(fan_in.summary_chance)(x, comparison),
                own_kernel=own,
            )
            tasks["dimension", space, m, m] = delayed(_dimension)(summaries[m])
        for a, b in itertools.combinations_with_replacement(models, 2):
            a, b = pair_key(a, b)
            taken = tasks.get(("pair", source, a, b))  # the pair in the space whose neighbour lists it took
            tasks["pair", space, a, b] = delayed(fan_in.compare_pair)(
                data[a], data[b], summaries[a], summaries[b], comparison, same=a == b, taken=taken
            )
    if client is not None:
        results = client.gather(client.compute(tasks))
    else:
        (results,) = dask.compute(tasks, scheduler="threads", num_workers=max(1, settings.threads))
    pairs = {key[1:]: value for key, value in results.items() if key[0] == "pair"}
    dimensions = {key[1:3]: value for key, value in results.items() if key[0] == "dimension"}
    return assemble(models, space_names, pairs, dimensions, settings, weights)


def _dimension(summary: ModelSummary) -> float:
    return summary.dimension


def assemble(
    models: list[str],
    space_names: list[str],
    pairs: dict[tuple[str, str, str], PairResult],
    dimensions: dict[tuple[str, str], float],
    settings: SimilaritySettings,
    weights: np.ndarray | None = None,
) -> xr.Dataset:
    """The similarity store from every pair's result, ``pairs[(space, a, b)]`` with ``(a, b) = pair_key(a, b)``,
    a model with itself included, and every model's intrinsic dimension ``dimensions[(space, model)]``; ``models``
    in the store's order. ``weights``: the row weights of the moment metrics (recorded as ``n_weighted_atoms``).
    A pair compared on fewer atoms than others (a model could not embed some) says so in ``pair_atoms``."""
    names = [m for m in NAMES if m in settings.metrics]
    index = {m: i for i, m in enumerate(models)}
    shape = (len(names), len(space_names), len(models), len(models))
    table = np.full(shape, np.nan)
    spread = {name: np.full(shape, np.nan) for name in INTERVAL_DESCRIPTIONS}
    replicates = np.full((*shape, settings.bootstrap), np.nan)
    estimator = {"ridge": np.full(shape, np.nan), "width_ratio": np.full(shape, np.nan)}
    directions = np.zeros((len(space_names), len(models)), dtype=np.int64)
    pair_atoms = np.zeros((len(models), len(models)), dtype=np.int64)
    used: dict[str, set] = {}
    for (space, a, b), result in pairs.items():
        j = space_names.index(space)
        ends = (index[a], index[b])
        pair_atoms[ends[0], ends[1]] = pair_atoms[ends[1], ends[0]] = result.atoms_used["all"]
        for kind, count in result.atoms_used.items():
            used.setdefault(kind, set()).add(count)
        for key, value in result.values.items():
            i = names.index(key[0])
            for row, column in _cells(key, a == b):
                table[i, j, ends[row], ends[column]] = value
        for name, got in (("ridge", result.ridges), ("width_ratio", result.ratios)):
            for key, value in got.items():
                for row, column in _cells(key, a == b):
                    estimator[name][names.index(key[0]), j, ends[row], ends[column]] = value
        if a == b:
            directions[j, ends[0]] = result.directions[0]
        for key, values in result.replicates.items():
            i = names.index(key[0])
            for row, column in _cells(key, a == b):
                cell = (i, j, ends[row], ends[column])
                replicates[cell] = values
                summary = bootstrap.summarise(values, table[cell])
                for name, value in zip(BOOTSTRAP_VARIABLES, summary, strict=True):
                    spread[name][cell] = value
        for key, values in result.chance.items():
            i = names.index(key[0])
            finite = values[np.isfinite(values)]
            for row, column in _cells(key, a == b):
                cell = (i, j, ends[row], ends[column])
                spread["chance"][cell] = finite.mean() if finite.size else np.nan
                spread["chance_sd"][cell] = finite.std(ddof=1) if finite.size > 1 else np.nan
    if settings.bootstrap:  # a model with itself does not move with the draw: its interval is its value
        diagonal = np.arange(len(models))
        replicates[:, :, diagonal, diagonal] = table[:, :, diagonal, diagonal, None]
        spread["standard_error"][:, :, diagonal, diagonal] = 0.0
        spread["bootstrap_bias"][:, :, diagonal, diagonal] = 0.0
        spread["ci_low"][:, :, diagonal, diagonal] = table[:, :, diagonal, diagonal]
        spread["ci_high"][:, :, diagonal, diagonal] = table[:, :, diagonal, diagonal]
    dimension = np.full((len(space_names), len(models)), np.nan)
    for (space, model), value in dimensions.items():
        dimension[space_names.index(space), index[model]] = value
    # the atoms each metric used: the same for every pair unless a model left some out (then the fewest)
    n_samples = [min(used[METRICS[m].atoms]) for m in names]
    dims = ("metric", "space", "model_a", "model_b")
    ds = xr.Dataset(
        {
            "similarity": (dims, table),
            **{name: (dims, values) for name, values in spread.items()},
            "bootstrap_replicates": ((*dims, "replicate"), replicates),
            "n_samples": (("metric",), np.array(n_samples, dtype=np.int64)),
            "pair_atoms": (("model_a", "model_b"), pair_atoms),
            "intrinsic_dimension": (("space", "model"), dimension),
            **{name: (dims, values) for name, values in estimator.items()},
            **({"svcca_directions": (("space", "model"), directions)} if "svcca" in names else {}),
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
    ds["n_samples"].attrs["description"] = (
        "atoms each metric used (all, its subsample, its queries or GFRE's test atoms), the fewest over the pairs"
    )
    ds["pair_atoms"].attrs["description"] = "atoms the pair was compared on: those both models embedded"
    for name, description in ESTIMATOR_DESCRIPTIONS.items():
        if name in ds:
            ds[name].attrs["description"] = description
    recorded = {k: v for k, v in asdict(settings).items() if k not in ("metrics", "threads")}
    if weights is not None:
        recorded["n_weighted_atoms"] = float(np.sum(weights))
    wanted = set(settings.metrics)
    ds.attrs.update(kind="similarity", n_atoms=min(used["all"]), directed_metrics=sorted(DIRECTED & wanted), **recorded)
    if "svcca" in names:
        ds.attrs["svcca_max_directions"] = metrics.svcca_max_directions(min(used["all"]), settings.svcca_max_fraction)
    return ds


def _cells(key: tuple[str, bool], same: bool) -> list[tuple[int, int]]:
    return [(0, 0)] if same else fan_in.directed_cells(key)


BOOTSTRAP_VARIABLES = ("standard_error", "ci_low", "ci_high", "bootstrap_bias")
INTERVAL_DESCRIPTIONS = {
    "standard_error": "standard deviation of the metric over the structure-bootstrap replicates (attrs bootstrap)",
    "ci_low": "2.5 % percentile of the structure bootstrap minus its bias (the lower end of a 95 % interval)",
    "ci_high": "97.5 % percentile of the structure bootstrap minus its bias (the upper end of a 95 % interval)",
    "bootstrap_bias": "mean of the bootstrap replicates minus the value; the interval is shifted back by it",
    "chance": (
        "mean of the metric when one model's rows (of the pair's later model by name) are permuted by whole"
        " structures (attrs permutations)"
    ),
    "chance_sd": "standard deviation of the metric over those permutations",
}


ESTIMATOR_DESCRIPTIONS = {
    "ridge": (
        "the relative ridge GFRE and LFRE used (attrs ridge: cv = chosen from ridge_grid by two-fold cross-validation"
        " on the training side, per pair, direction and space, and kept in every bootstrap replicate); NaN for the"
        " other metrics"
    ),
    "width_ratio": (
        "the ratio the estimator depends on: GFRE's source width over its training atoms, LFRE's over its"
        " neighbours (lfre_k), SVCCA's directions for 99 % of the variance (the larger space's) over the compared"
        " atoms; above attrs width_ratio_threshold a table or figure cell is marked; NaN for the other metrics"
    ),
    "svcca_directions": (
        "the principal directions covering 99 % of the space's variance; SVCCA keeps at most attrs"
        " svcca_max_directions of them (similarity.svcca_max_fraction of the compared atoms)"
    ),
}


def wide(ds: xr.Dataset) -> xr.DataArray:
    """Where a value's ``width_ratio`` exceeds the store's ``width_ratio_threshold`` (False without them), like
    ``ds.similarity``."""
    if "width_ratio" not in ds or "width_ratio_threshold" not in ds.attrs:
        return xr.zeros_like(ds["similarity"], dtype=bool)
    return ds["width_ratio"] > ds.attrs["width_ratio_threshold"]


def similarity_table(ds: xr.Dataset) -> list[dict]:
    """Tidy rows (one per metric, space and ordered pair) for the CSV next to the store."""
    rows = []
    values = ds["similarity"].values
    extra = [name for name in (*INTERVAL_DESCRIPTIONS, "ridge", "width_ratio") if name in ds]
    marked = wide(ds).values
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
                            **({"wide": bool(marked[i, j, ia, ib])} if "width_ratio" in ds else {}),
                            "n_samples": int(ds["n_samples"].values[i]),
                            **({"pair_atoms": int(ds["pair_atoms"].values[ia, ib])} if "pair_atoms" in ds else {}),
                        }
                    )
    return rows
