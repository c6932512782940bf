"""Stages ``summarise``, ``compare-pair`` and ``gather``: the fan-in as one job per model, one per pair, one to gather.

Each comparison uses the atoms its models embedded: the anchor store's ``compared`` atoms (one per symmetry orbit
with ``similarity.atoms: unique``; they do not depend on the models) that are valid in the model (a summary) or in
both models (a pair). When a pair's atoms are not those of a model's summary (one of the two left out atoms the
other embedded), the pair job summarises that model again on the pair's atoms, and says so in its log. A pair's
result therefore depends only on its two models, and adding a model to a finished study runs only that model's
summary and its pairs.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xarray as xr

from platonic.process import limit_openmp, limit_threads
from platonic.settings import SimilaritySettings, without_later_defaults
from platonic.spaces import SPACES, in_dependency_order, model_spaces
from platonic.stages.command import Controls, command
from platonic.stages.common import atom_counts, compared_mask, write_rows

log = logging.getLogger("platonic")


@command(help="the fan-in's summary of one model (moments, neighbours, resampling), with itself")
def summarise(output: str, *, embedding: str, projection: str, anchors: str, settings: SimilaritySettings) -> None:
    """Summary store ``output`` of one model (``platonic.compare.fan_in.summarise``, in every space of
    ``platonic.spaces``) on the anchor store's compared atoms it embedded, with its comparison with itself (the
    diagonal)."""
    from platonic.compare import fan_in, result_store

    anchor_store = open_anchors(anchors, settings)
    stores = _model_stores(embedding, projection, anchor_store)
    mask = compared_mask(anchor_store, {"model": stores[0]})
    comparison = _comparison(anchor_store, stores[0], mask, settings)
    spaces = _features(stores, mask)
    valid = stores[0]["valid"].values.astype(bool)
    # the gather reads only "valid", "dimension" and "self", not the (large) summaries
    out: dict = {"atoms": np.flatnonzero(mask), "valid": valid, "dimension": {}, "summary": {}, "self": {}}

    def one(space):
        x = spaces[space]  # unit rows and centring shared by the summary and the diagonal
        source = fan_in.neighbours_from(space, settings)
        summary = fan_in.summarise(x, comparison, out["summary"][source] if source else None)
        taken = out["self"][source] if source else None
        return space, summary, fan_in.compare_pair(x, x, summary, summary, comparison, same=True, taken=taken)

    for batch in in_dependency_order(SPACES):
        for space, summary, itself in _threads(one, batch, settings.threads):
            out["summary"][space], out["self"][space] = summary, itself
            out["dimension"][space] = summary.dimension
    model = stores[0].attrs["model"]
    result_store.save(out, output, kind="model summary", **_provenance(stores[0], anchor_store, mask, settings))
    log.info("%s: summarised on %d atoms -> %s", model, int(mask.sum()), output)


@command(help="every metric for one pair of models, in every space, from their summaries")
def compare_pair(
    output: str, *, embeddings: tuple[str, str], projections: tuple[str, str], summaries: tuple[str, str],
    anchors: str, settings: SimilaritySettings,
) -> None:  # fmt: skip
    """Pair store ``output``: every metric of the two models of ``embeddings``/``projections`` (every space,
    both directions of the directed ones) with their ``summaries``, on the compared atoms both embedded."""
    from platonic.compare import fan_in, result_store

    if not len(embeddings) == len(projections) == len(summaries) == 2:
        raise ValueError("a pair takes two embedding, two projection and two summary stores")
    anchor_store = open_anchors(anchors, settings)
    pairs = [_model_stores(e, p, anchor_store) for e, p in zip(embeddings, projections, strict=True)]
    names = [s[0].attrs["model"] for s in pairs]
    if names[0] == names[1]:
        raise ValueError(f"a pair needs two models, got {names[0]} twice")
    order = [0, 1] if fan_in.pair_key(*names) == tuple(names) else [1, 0]
    pairs, names, summaries = [pairs[i] for i in order], [names[i] for i in order], [summaries[i] for i in order]
    mask = compared_mask(anchor_store, {name: store[0] for name, store in zip(names, pairs, strict=True)})
    comparison = _comparison(anchor_store, pairs[0][0], mask, settings)
    first, second = _features(pairs[0], mask), _features(pairs[1], mask)
    # each space's summaries are read when that space is compared and dropped after it, with its features (the
    # unit space keeps the raw space's unit rows, which are its own): at MP-20 scale a 256-wide model's summary is
    # some 0.15 GB per space, and its features 0.3 GB
    loaded, stored = [], []
    for name, path in zip(names, summaries, strict=True):
        result_attributes(path, "model summary", anchor_store)
        summary, attrs = result_store.load(path, comparison.resampling, keys=("atoms",))
        if attrs.get("model") != name:
            raise ValueError(f"{path} summarises {attrs.get('model')!r}, not {name!r}")
        if attrs.get("settings_hash") != _settings_hash(settings):
            raise ValueError(f"{path} was summarised with other similarity settings; re-run summarise for {name}")
        same_atoms = np.array_equal(summary["atoms"], np.flatnonzero(mask))
        if not same_atoms:
            log.warning("%s: the pair compares %d atoms, its summary %d; summarising it again on the pair's atoms",
                        name, int(mask.sum()), len(summary["atoms"]))  # fmt: skip
        loaded.append({})
        stored.append(path if same_atoms else None)

    def summary_of(i: int, features, space: str):
        if space not in loaded[i] and stored[i] is not None:
            loaded[i][space] = result_store.load_item(stored[i], ("summary", space), comparison.resampling)
        elif space not in loaded[i]:  # summarised again on the pair's atoms (or taken over from an earlier space)
            source = fan_in.neighbours_from(space, settings)
            loaded[i][space] = fan_in.summarise(features, comparison, loaded[i][source] if source else None)
        return loaded[i][space]

    def one(space):
        x, y = first[space], second[space]
        source = fan_in.neighbours_from(space, settings)
        sx, sy = summary_of(0, x, space), summary_of(1, y, space)
        return space, fan_in.compare_pair(x, y, sx, sy, comparison, taken=result[source] if source else None)

    result = {}
    for batch in in_dependency_order(SPACES):
        result.update(_threads(one, batch, settings.threads))
        for space in batch:
            del first[space], second[space]
            for i in (0, 1):
                if stored[i] is not None:  # read again from the store if a later space needs it
                    loaded[i].pop(space, None)
    attrs = _provenance(pairs[0][0], anchor_store, mask, settings)
    attrs.update(model=None, model_a=names[0], model_b=names[1])
    result_store.save({"result": result}, output, kind="pair result", **attrs)
    log.info("%s vs %s: %d atoms -> %s", *names, int(mask.sum()), output)


@command(help="the similarity store and CSV from every model's summary and every pair's result")
def gather(
    output: str, table: str, *, summaries: list[str], pairs: tuple[str, ...] = (), anchors: str,
    settings: SimilaritySettings, controls: Controls = (),
) -> None:  # fmt: skip
    """The similarity store ``output`` and its CSV ``table`` from every model's summary (in the store's model order)
    and every pair's result; ``controls`` name the control representations (``control (model)``)."""
    from platonic.compare import fan_in, result_store
    from platonic.compare.similarity import assemble

    anchor_store = open_anchors(anchors, settings)
    results, dimensions, families, models = {}, {}, {}, []
    valid = None
    for path in [*summaries, *pairs]:  # every input checked before the first is read
        result_attributes(path, "pair result" if path in pairs else "model summary", anchor_store)
    for path in summaries:
        value, attrs = result_store.load(path, keys=("valid", "dimension", "self"))
        _check(path, attrs, anchor_store, settings)
        model = attrs["model"]
        models.append(model)
        families[model] = attrs.get("model_family", "")
        for space in SPACES:
            results[space, model, model] = value["self"][space]
            dimensions[space, model] = value["dimension"][space]
        valid = value["valid"] if valid is None else valid & value["valid"]
    check_controls(controls, models)
    expected = {fan_in.pair_key(a, b) for i, a in enumerate(models) for b in models[i + 1 :]}
    for path in pairs:
        value, attrs = result_store.load(path)
        _check(path, attrs, anchor_store, settings)
        key = (attrs["model_a"], attrs["model_b"])
        if key not in expected:
            raise ValueError(f"{path} compares {key}, which is not a pair of the models {models}")
        expected.discard(key)
        for space in SPACES:
            results[(space, *key)] = value["result"][space]
    if expected:
        raise ValueError(f"no pair result for {sorted(expected)}; run compare-pair for them")
    weights = row_weights(anchor_store, anchor_store["compared"].values.astype(bool) & valid, settings)
    ds = assemble(models, list(SPACES), results, dimensions, settings, weights)
    finish(ds, anchor_store, valid, families, controls, settings, output, table)
    log.info("%d models, %d pairs -> %s", len(models), len(pairs), output)


def open_anchors(path: str, settings: SimilaritySettings) -> xr.Dataset:
    """The anchor store at ``path``, checked to compare the atoms ``settings.atoms`` says."""
    from platonic.store import open_store

    anchor_store = open_store(path, dask=False, kind="anchors")
    if anchor_store.attrs.get("atoms") != settings.atoms:
        raise ValueError(
            f"{path} compares {anchor_store.attrs.get('atoms')!r} atoms, similarity.atoms is {settings.atoms!r};"
            " re-run anchors with anchors.atoms = similarity.atoms"
        )
    return anchor_store


def result_attributes(path: str, kind: str, anchor_store: xr.Dataset) -> dict:
    """The attributes of the result store ``path`` (`platonic.compare.result_store`), checked to exist, to be a
    ``kind`` ("model summary" or "pair result") and to come from the structure set of ``anchor_store``."""
    from platonic.compare import result_store
    from platonic.store import KINDS, StoreError, check_kind, check_same_structures

    if not Path(path).exists():
        raise StoreError(f"store {path} does not exist; give the store that `platonic {KINDS[kind][1]}` writes", path)
    try:
        attrs = result_store.attributes(path)
    except (OSError, ValueError, KeyError) as err:
        raise StoreError(f"{path} is not a store of platonic ({type(err).__name__}: {err})", path) from err
    check_kind({"kind": attrs.get("kind", "another kind")}, path, kind)
    if attrs.get("structure_set_hash") != anchor_store.attrs.get("structure_set_hash"):
        summary = xr.Dataset(attrs={"structure_set_hash": attrs.get("structure_set_hash")})
        summary.encoding["source"] = path
        check_same_structures(anchor_store, summary)
    return attrs


def _model_stores(embedding: str, projection: str, anchor_store: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    from platonic.store import check_same_structures, open_store

    raw = open_store(embedding, dask=False, kind="embedding")
    projected = open_store(projection, dask=False, kind="projection")
    check_same_structures(anchor_store, raw, projected)
    if raw.attrs["model"] != projected.attrs["model"]:
        raise ValueError(f"{embedding} embeds {raw.attrs['model']}, {projection} projects {projected.attrs['model']}")
    if projected.attrs.get("anchor_set_hash") != anchor_store.attrs["anchor_set_hash"]:
        raise ValueError(f"{projection} was projected on other anchors; re-run project for {raw.attrs['model']}")
    return raw, projected


def _comparison(anchor_store, store, mask, settings):
    """The ``Comparison`` on the atoms of ``mask``, its structures numbered from a model ``store``'s ids."""
    from platonic.compare.fan_in import Comparison

    weights = row_weights(anchor_store, mask, settings)
    return Comparison.build(int(mask.sum()), structure_numbers(store, mask), weights, settings)


def _features(stores, mask) -> dict:
    """A model's features on the atoms of ``mask`` in every space, ``{space: metrics.Features (n, d)}``
    (``spaces.model_spaces``); only those rows are read."""
    rows = np.flatnonzero(mask)
    raw, projected = stores
    return model_spaces(raw["embedding"].isel(atom=rows).values, projected["coordinate"].isel(atom=rows).values)


def structure_numbers(store: xr.Dataset, mask: np.ndarray) -> np.ndarray:
    """Each atom of ``mask``'s structure as 0..S-1, numbered in the order of the structure ids."""
    ids = np.array([str(i) for i in store["structure_id"].values[mask]], dtype=object)
    return np.unique(ids, return_inverse=True)[1]


def row_weights(anchor_store: xr.Dataset, mask: np.ndarray, settings: SimilaritySettings) -> np.ndarray | None:
    """The moment metrics' row weights on the atoms of ``mask``: each unique environment's multiplicity with
    ``atoms: unique`` and ``weights: multiplicity``, else None (uniform)."""
    if settings.atoms == "unique" and settings.weights == "multiplicity":
        return anchor_store["multiplicity"].values[mask]
    return None


def check_controls(controls, models) -> None:
    unknown = sorted(set(controls) - set(models))
    if unknown:
        raise ValueError(f"controls {unknown} are not among the compared models {list(models)}")


def finish(ds: xr.Dataset, anchor_store: xr.Dataset, valid: np.ndarray, families: dict[str, str], controls,
           settings: SimilaritySettings, output: str, table: str) -> None:  # fmt: skip
    """Mark the controls and families of the similarity store ``ds``, record its anchors and atoms (``valid``:
    the atoms every model embedded), write it to ``output`` and its CSV to ``table``."""
    from platonic.compare.similarity import similarity_table
    from platonic.store import write_store

    models = [str(m) for m in ds["model"].values]
    ds["control"] = ("model", np.array([m in controls for m in models], dtype=bool))
    ds["control"].attrs["description"] = "True for a control representation (config: models.<name>.control)"
    ds["family"] = ("model", np.array([str(families[m]) for m in models]))
    ds["family"].attrs["description"] = "the model's adapter family (architecture)"
    ds.attrs.update(
        anchor_set_hash=anchor_store.attrs["anchor_set_hash"],
        structure_set_hash=anchor_store.attrs["structure_set_hash"],
        n_anchors=int(anchor_store.sizes["anchor"]),
        **atom_counts(anchor_store, valid),
        atoms=settings.atoms,
        weights=settings.weights if settings.atoms == "unique" else "uniform",
        neighbours=settings.neighbours,
    )
    write_store(ds, output)
    write_rows(table, similarity_table(ds))


def _settings_hash(settings: SimilaritySettings) -> str:
    """What a summary's and a pair's numbers depend on: every similarity setting but the thread count (less the keys
    added later, at their default: ``settings.without_later_defaults``), and the spaces (a store made before a space
    was added lacks it)."""
    from dataclasses import asdict

    recorded = {k: v for k, v in asdict(settings).items() if k != "threads"}
    recorded = without_later_defaults(settings.section, recorded) | {"spaces": SPACES}
    return hashlib.sha256(repr(sorted(recorded.items())).encode()).hexdigest()


def _provenance(store: xr.Dataset, anchor_store: xr.Dataset, mask: np.ndarray, settings) -> dict:
    return {
        "model": store.attrs["model"],
        "model_family": store.attrs.get("model_family", ""),
        "anchor_set_hash": anchor_store.attrs["anchor_set_hash"],
        "structure_set_hash": anchor_store.attrs["structure_set_hash"],
        "atom_set_hash": hashlib.sha256(np.flatnonzero(mask).astype(np.int64).tobytes()).hexdigest(),
        "n_atoms": int(mask.sum()),
        "settings_hash": _settings_hash(settings),
    }


def _check(path: str, attrs: dict, anchor_store: xr.Dataset, settings: SimilaritySettings) -> None:
    if attrs.get("anchor_set_hash") != anchor_store.attrs["anchor_set_hash"]:
        raise ValueError(f"{path} was computed with other anchors; re-run it")
    if attrs.get("settings_hash") != _settings_hash(settings):
        raise ValueError(f"{path} was computed with other similarity settings; re-run it")


def _threads(function, items, threads: int):
    """``function`` over ``items`` on up to ``threads`` threads, results in order; each worker's BLAS and OpenMP
    get an equal share of ``threads`` (one worker: in this thread, with all of them)."""
    workers = max(1, min(threads, len(items)))
    if workers == 1:
        return [function(item) for item in items]
    share = max(1, threads // workers)

    def worker(item):
        with limit_openmp(share):  # OpenMP's thread count is each thread's own (BLAS's is the process's)
            return function(item)

    with limit_threads(share), ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(worker, items))
