"""Stages of the report's figures: the per-metric heatmaps, the multi-model overview figures, the provenance page."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from platonic.settings import FigureSettings, SimilaritySettings
from platonic.stages.common import compared_mask, model_stores, same_models, valid_mask

log = logging.getLogger("platonic")

OVERVIEW_FIGURES = ("agreement", "shared_space", "periodic_trends", "model_statistics", "model_tree")


def heatmaps(
    similarity: str,
    out_dir: str | None = None,
    output: str | None = None,
    metric: str | None = None,
    also: tuple[str, ...] = (),
) -> None:
    """One model x model heatmap per metric (``out_dir/<metric>.png``), or only ``metric``'s, to ``output``."""
    from platonic.figures import save_figure, similarity_heatmaps
    from platonic.store import open_store

    ds = open_store(similarity).load()
    metrics = [str(m) for m in ds.metric.values]
    if metric is not None and metric not in metrics:
        raise ValueError(f"metric {metric!r} is not in {similarity} (it has {metrics})")
    if output is not None and metric is None:
        raise ValueError("a single output file needs its metric")
    for name in [metric] if metric else metrics:
        target = output or Path(out_dir) / f"{name}.png"
        log.info("wrote %s", save_figure(similarity_heatmaps(ds, name), target, also=tuple(f".{s}" for s in also)))


def overview(
    figure: str,
    similarity: str,
    output: str,
    settings: FigureSettings,
    also: tuple[str, ...] = (),
    embeddings: list[str] = (),
    projections: list[str] = (),
    anchors: str | None = None,
    metadata: str | None = None,
) -> None:
    """One of ``OVERVIEW_FIGURES``; ``embeddings``/``projections`` where the figure draws atoms, on the anchor
    store's ``compared`` atoms that every drawn model embedded; ``metadata`` (JSON,
    ``platonic.compare.lineage.read_metadata``): the model tree's colours by architecture and markers by training
    data."""
    from platonic import atom_maps, elements, figures
    from platonic.compare import model_space
    from platonic.store import open_store

    ds = open_store(similarity).load()
    models = [str(m) for m in ds.model_a.values]
    anchor_store = open_store(anchors) if anchors else None

    def kept(stores: dict) -> np.ndarray:  # the anchor store's compared atoms these models embedded
        return valid_mask(stores) if anchor_store is None else compared_mask(anchor_store, stores)

    control = dict(zip(models, ds["control"].values, strict=True)) if "control" in ds else {}

    def labelled(per_model: dict) -> dict:  # the per-model panels name the controls as such
        return {f"{m}{figures.CONTROL_SUFFIX}" if control.get(m) else m: v for m, v in per_model.items()}

    def by_model(paths, what: str) -> dict:
        if not paths:
            raise ValueError(f"the {figure} figure needs the {what} stores")
        return same_models(model_stores(paths), models, what)

    if figure == "agreement":
        from platonic.compare.agreement import all_space_pairs

        fig = figures.agreement_scatter(ds, all_space_pairs(ds))
    elif figure == "model_tree":
        metrics = [str(m) for m in ds.metric.values]
        if settings.tree_metric not in metrics:
            raise ValueError(f"metric {settings.tree_metric!r} is not in {similarity} (it has {metrics})")
        from platonic.compare.lineage import read_metadata

        fig = figures.model_tree(model_space.linkage_and_mds(ds, settings.tree_metric), read_metadata(metadata))
    elif figure == "shared_space":
        stores = by_model(projections, "projection")
        first = next(iter(stores.values()))
        keep = kept(stores)
        # null: the similarity stage's seed (validate_config writes that in; by hand, its schema default)
        seed = settings.seed if settings.seed is not None else SimilaritySettings().seed
        rows = model_space.shared_sample(keep, settings.map_sample, seed)
        coordinates = {m: s["coordinate"].isel(atom=rows).values for m, s in stores.items()}  # the sample only
        maps = atom_maps.joint_maps(labelled(coordinates), atom_maps.available_reductions(), seed)
        fig = figures.shared_space_maps(maps, first["Z"].values[rows])
    elif figure == "periodic_trends":
        stores = by_model(embeddings, "embedding")
        first = next(iter(stores.values()))
        keep = kept(stores)
        # null: the similarity stage's bootstrap and seed (validate_config writes them in; by hand, their defaults)
        n_replicates = settings.bootstrap if settings.bootstrap is not None else SimilaritySettings().bootstrap
        seed = settings.seed if settings.seed is not None else SimilaritySettings().seed
        z, means, counts, intervals = elements.periodic_trend_bootstrap(
            {m: s["embedding"].data for m, s in stores.items()}, first["Z"].values, first["structure_id"].values,
            keep, settings.trend_min_atoms, n_replicates, seed,
        )  # fmt: skip
        trends = elements.trend_matrices(z, labelled(means))
        fig = figures.periodic_trends(trends, counts, intervals and labelled(intervals))
    elif figure == "model_statistics":
        stores = by_model(embeddings, "embedding")
        keep = kept(stores)
        norms = {m: model_space.embedding_norms(s["embedding"].data, keep) for m, s in stores.items()}
        dimension = ds["intrinsic_dimension"].assign_coords(model=list(labelled(dict.fromkeys(models))))
        fig = figures.model_statistics(dimension, labelled(norms))
    else:
        raise ValueError(f"unknown overview figure {figure!r}; choose one of {', '.join(OVERVIEW_FIGURES)}")
    log.info("wrote %s", figures.save_figure(fig, output, also=tuple(f".{s}" for s in also)))


def provenance(
    output: str, embeddings: list[str], structures: str, anchors: str, similarity: str, parameters: str | None = None
) -> None:
    """The report's provenance page (HTML); ``parameters``: a JSON file of the run's configuration."""
    import json

    from platonic.report import provenance_html
    from platonic.store import open_store

    page = provenance_html(
        list(model_stores(embeddings).values()),
        open_store(structures),
        open_store(anchors),
        open_store(similarity),
        json.loads(Path(parameters).read_text()) if parameters else {},
    )
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(page)
    log.info("wrote %s", output)
