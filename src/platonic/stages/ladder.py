"""Stage ``ladder``, the protocol ladder: linear CKA and mutual k-NN from the reference study's protocol to
platonic's, one choice at a time (``platonic.compare.ladder``), in every space -> CSV + figure."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from platonic.settings import SimilaritySettings
from platonic.stages.command import Also, Controls, command
from platonic.stages.common import compared_mask, model_stores, valid_mask, write_rows

log = logging.getLogger("platonic")


@command(
    help="linear CKA and mutual k-NN from the reference study's protocol to platonic's, one choice at a time,"
    " in every space"
)
def run(table: str, *, figure: str, structures: str, embeddings: list[str], projections: list[str], anchors: str,
        settings: SimilaritySettings, controls: Controls = (), also: Also = ()) -> None:  # fmt: skip
    """Every rung of the ladder on the models of ``embeddings``/``projections``: the group means of linear CKA and
    mutual k-NN over the headline's pair groups -> CSV ``table``, and their figure -> ``figure`` (and the same name
    with each suffix of ``also``); ``controls`` name the control representations. A rung with ``atoms`` as
    configured compares the anchor store's ``compared`` atoms (as the similarity store), the other atoms mode
    the structure store's orbits (``platonic.anchors.compared_atoms``) of the atoms every model embedded."""
    from platonic.anchors import compared_atoms
    from platonic.compare.ladder import COLUMNS, LADDER_METRICS, ladder_rows, rungs
    from platonic.compare.similarity import pairwise_similarity
    from platonic.figures import protocol_ladder, save_figure
    from platonic.stages.fan_in import check_controls, row_weights, structure_numbers
    from platonic.stages.similarity import by_space
    from platonic.store import check_same_structures, open_store

    anchor_store = open_store(anchors, dask=False, kind="anchors")
    raw_stores, projection_stores = model_stores(embeddings, "embedding"), model_stores(projections, "projection")
    structure_store = open_store(structures, kind="structures")
    check_same_structures(structure_store, anchor_store, *raw_stores.values(), *projection_stores.values())
    if list(raw_stores) != list(projection_stores):
        raise ValueError(f"embeddings {list(raw_stores)} and projections {list(projection_stores)} name other models")
    check_controls(controls, raw_stores)
    orbit = structure_store["orbit"].values
    first = next(iter(raw_stores.values()))
    families = np.array([str(s.attrs.get("model_family", "")) for s in raw_stores.values()])
    control = np.array([m in controls for m in raw_stores], dtype=bool)

    def atoms_of(mode: str) -> np.ndarray:
        if mode == anchor_store.attrs.get("atoms"):
            return compared_mask(anchor_store, raw_stores)
        return compared_atoms(valid_mask(raw_stores), orbit, mode)

    def compare(rung: SimilaritySettings, metrics: tuple[str, ...]):
        keep = atoms_of(rung.atoms)
        spaces = by_space(raw_stores, projection_stores, keep)
        weights = row_weights(anchor_store, keep, rung)
        ds = pairwise_similarity(
            spaces, structure_numbers(first, keep), dataclasses.replace(rung, metrics=metrics), weights=weights
        )
        ds["control"] = ("model", control)
        ds["family"] = ("model", families)
        return ds

    ladder, cka = [], {}
    for name, rung in rungs(settings):
        # linear CKA depends on the atoms (and their weights) only: computed once per atoms mode
        atoms_key = (rung.atoms, rung.weights)
        if atoms_key not in cka:
            cka[atoms_key] = compare(rung, ("linear_cka",))
        stores = {"linear_cka": cka[atoms_key], "mutual_knn": compare(rung, ("mutual_knn",))}
        assert set(stores) == set(LADDER_METRICS)
        ladder.append((name, rung, stores))
        log.info("rung %s: %d atoms", name, stores["mutual_knn"].attrs["n_atoms"])
    rows = ladder_rows(ladder, settings)
    write_rows(table, rows, COLUMNS)
    for row in rows:
        if row["space"] in ("raw", "anchor") and row["group"] == "within family":
            log.info("%s, %s, %s: %.3f [%.3f, %.3f]", row["step"], row["metric"], row["space"], row["mean"],
                     row["ci_low"], row["ci_high"])  # fmt: skip
    log.info("wrote %s", save_figure(protocol_ladder(rows), figure, also=tuple(f".{s}" for s in also)))
