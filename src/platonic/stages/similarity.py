"""Stage ``similarity``: every metric for every model pair, in every space -> similarity store + CSV."""

from __future__ import annotations

import logging

import numpy as np

from platonic.settings import DaskSettings, SimilaritySettings
from platonic.stages.common import compared_mask, model_stores, valid_mask, write_rows

log = logging.getLogger("platonic")


def run(
    embeddings: list[str],
    projections: list[str],
    anchors: str,
    output: str,
    table: str,
    settings: SimilaritySettings,
    dask: DaskSettings,
    scheduler: str | None = None,
    controls: tuple[str, ...] = (),
) -> None:
    """Compare the models of ``embeddings``/``projections`` on the anchor store's ``compared`` atoms (every model
    embedded them; one per symmetry orbit with ``settings.atoms == "unique"``); the tasks run where ``dask``
    says (or on the running dask scheduler at address ``scheduler``); ``controls`` name the control representations
    (stored as ``control (model)``)."""
    from platonic.compare.dask_cluster import make_cluster
    from platonic.compare.similarity import pairwise_similarity
    from platonic.stages.fan_in import check_controls, finish, open_anchors, row_weights, structure_numbers

    anchor_store = open_anchors(anchors, settings)
    stores = model_stores(embeddings)
    valid = compared_mask(anchor_store, stores)
    check_controls(controls, stores)
    projection_stores = model_stores(projections)
    if list(stores) != list(projection_stores):
        raise ValueError(f"embeddings {list(stores)} and projections {list(projection_stores)} name different models")
    spaces = by_space(stores, projection_stores, valid)
    structure_index = structure_numbers(next(iter(stores.values())), valid)
    cluster = make_cluster(dask, threads=settings.threads)
    client = None
    if scheduler or cluster is not None:
        from distributed import Client

        client = Client(scheduler or cluster)
        log.info("dask dashboard/scheduler: %s", client.scheduler.address if client.scheduler else scheduler)
    try:
        ds = pairwise_similarity(
            spaces,
            structure_index=structure_index,
            settings=settings,
            client=client,
            weights=row_weights(anchor_store, valid, settings),
        )
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    families = {m: str(s.attrs.get("model_family", "")) for m, s in stores.items()}
    finish(ds, anchor_store, valid_mask(stores), families, controls, settings, output, table)
    log.info("%d models, %d atoms -> %s", len(stores), int(valid.sum()), output)


def by_space(embeddings: dict, projections: dict, keep: np.ndarray) -> dict[str, dict]:
    """Every model's features on the atoms of ``keep`` in every space, ``{space: {model: metrics.Features}}``
    (``spaces.model_spaces``), from its embedding and projection stores."""
    from platonic.spaces import SPACES, model_spaces

    per_model = {
        m: model_spaces(store["embedding"].values[keep], projections[m]["coordinate"].values[keep])
        for m, store in embeddings.items()
    }
    return {space: {m: features[space] for m, features in per_model.items()} for space in SPACES}


def headline(similarity: str, table: str, text: str) -> None:
    """The run's headline from the similarity store: the CSV ``table`` (``platonic.compare.headline``) and the
    reStructuredText ``text`` the report's first page includes."""
    from pathlib import Path

    from platonic.compare.headline import COLUMNS, headline_rows, headline_text
    from platonic.store import open_store

    ds = open_store(similarity).load()
    rows = headline_rows(ds)
    write_rows(table, rows, COLUMNS)
    Path(text).write_text(headline_text(rows, ds))
    for row in rows:
        log.info("%s %s %s: %.3f [%.3f, %.3f]", row["metric"], row["space"], row["group"], row["mean"],
                 row["ci_low"], row["ci_high"])  # fmt: skip


def training_vs_architecture(similarity: str, table: str, figure: str, metadata: str, also: tuple[str, ...] = ()):
    """Training data vs architecture (``platonic.compare.lineage``): the table of pair groups and their differences
    -> CSV ``table``, and its figure -> ``figure`` (and the same name with each suffix of ``also``); ``metadata``:
    the JSON ``{model: {"architecture", "training_data", "control", ...}}`` of the configured models."""
    from platonic.compare.lineage import COLUMNS, lineage_rows, pair_rows, read_metadata
    from platonic.figures import save_figure
    from platonic.figures import training_vs_architecture as draw
    from platonic.store import open_store

    ds = open_store(similarity).load()
    lineage = read_metadata(metadata)
    rows = lineage_rows(ds, lineage)
    write_rows(table, rows, COLUMNS)
    for row in rows:
        if row["kind"] == "difference" and row["group"] == "training data only - architecture only":
            log.info("%s %s: %s %.3f [%.3f, %.3f]", row["metric"], row["space"], row["group"], row["mean"],
                     row["ci_low"], row["ci_high"])  # fmt: skip
        elif row["kind"] == "left out" and row["n_pairs"]:
            log.info("left out, %s: %d pairs", row["group"], row["n_pairs"])
    fig = draw(rows, pair_rows(ds, lineage), ds.attrs)
    log.info("wrote %s", save_figure(fig, figure, also=tuple(f".{s}" for s in also)))


ATOM_MODES = {  # name -> (atoms, neighbours)
    "all atoms": ("all", "all"),
    "unique environments": ("unique", "all"),
    "unique, other-structure neighbours": ("unique", "other-structures"),
}
MODE_METRICS = ("linear_cka", "mutual_knn")
MODE_COLUMNS = ["metric", "space", "atoms", "n_atoms", "mean", "min", "max", "pairs"]


def atom_modes(structures: str, embeddings: list[str], projections: list[str], anchors: str, table: str,
               settings: SimilaritySettings, controls: tuple[str, ...] = ()) -> None:  # fmt: skip
    """What counts as an atom, in numbers: linear CKA and mutual k-NN over every pair of trained models (mean, min,
    max of the off-diagonal values; ``controls`` left out) with all atoms, unique environments, and unique
    environments with other-structure neighbours; the rest of ``settings`` as configured (uniform weights) -> CSV
    ``table``."""
    import dataclasses

    from platonic.anchors import compared_atoms
    from platonic.compare.similarity import pairwise_similarity
    from platonic.store import open_store

    orbit = open_store(structures)["orbit"].values
    raw_stores, projection_stores = model_stores(embeddings), model_stores(projections)
    valid = valid_mask(raw_stores)  # the atoms every compared model embedded; each mode keeps some of them
    first = next(iter(raw_stores.values()))
    rows = []
    for label, (atoms, neighbours) in ATOM_MODES.items():
        keep = compared_atoms(valid, orbit, atoms)
        spaces = by_space(raw_stores, projection_stores, keep)
        ids = np.array([str(i) for i in first["structure_id"].values[keep]], dtype=object)
        # the table gives means and ranges, not intervals: no bootstrap or permutations here
        mode = dataclasses.replace(settings, metrics=MODE_METRICS, atoms=atoms, weights="uniform",
                                   neighbours=neighbours, bootstrap=0, permutations=0)  # fmt: skip
        ds = pairwise_similarity(spaces, structure_index=np.unique(ids, return_inverse=True)[1], settings=mode)
        trained = np.array([m not in controls for m in ds.model_a.values])
        off_diagonal = ~np.eye(ds.sizes["model_a"], dtype=bool) & trained[:, None] & trained[None, :]
        for metric in MODE_METRICS:
            for space in ds.space.values:
                values = ds["similarity"].sel(metric=metric, space=space).values[off_diagonal]
                rows.append({"metric": metric, "space": str(space), "atoms": label, "n_atoms": int(keep.sum()),
                             "mean": float(values.mean()), "min": float(values.min()), "max": float(values.max()),
                             "pairs": int(values.size // 2)})  # fmt: skip
                log.info(
                    "%s, %s, %s: mean %.3f over %d pairs", metric, space, label, rows[-1]["mean"], rows[-1]["pairs"]
                )
    write_rows(table, rows, MODE_COLUMNS)
