"""Stage ``anchor-sensitivity``: the anchor space's headline agreement against the number of anchors and how they
are chosen, beside the unit space (``platonic.compare.anchor_sensitivity``) -> CSV + figure."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from platonic.settings import AnchorSensitivitySettings, AnchorSettings, SimilaritySettings
from platonic.stages.command import Also, Controls, command
from platonic.stages.common import model_stores, valid_mask, write_rows
from platonic.store import check_same_structures

log = logging.getLogger("platonic")


@command(help="the anchor space's headline agreement against the number of anchors and their choice")
def run(
    table: str,
    *,
    structures: str,
    embeddings: list[str],
    anchors: str,
    settings: AnchorSensitivitySettings,
    selection: AnchorSettings,
    similarity: SimilaritySettings,
    figure: str | None = None,
    also: Also = (),
    controls: Controls = (),
) -> None:
    """The CSV ``table`` (``anchor_sensitivity.COLUMNS``) and its ``figure`` (and the same name with each suffix
    of ``also``): the headline metrics of the models of ``embeddings`` (the configured order), each pair on the anchor
    store ``anchors``'s compared atoms both its models embedded (as in the similarity store), in the unit space and in
    the anchor space of each anchor set, chosen as the anchors stage chooses them (``selection``: the config section
    ``anchors``) on the structure store ``structures`` among the candidate atoms every model embedded; the
    configured set is the anchor store's (with ``selection.method`` indices, the given anchors: method ``indices``,
    beside DIRECT, random and farthest-point chosen from ``selection.threshold_init`` and ``selection.seed`` at every
    K). ``similarity``'s settings but for its metrics."""
    from platonic.compare import anchor_sensitivity as sensitivity
    from platonic.compare.headline import HEADLINE_METRICS
    from platonic.stages.align import anchor_candidates, choose_anchors
    from platonic.stages.fan_in import check_controls, open_anchors, row_weights

    anchor_store = open_anchors(anchors, similarity)
    stores = model_stores(embeddings, "embedding")
    check_same_structures(anchor_store, *stores.values())
    check_controls(controls, stores)
    reference_model = selection.reference_model or next(iter(stores))
    if reference_model not in stores:
        raise ValueError(f"the reference model {reference_model!r} (anchors.reference_model) is not in {list(stores)}")
    reference = stores[reference_model]
    pool = anchor_candidates(structures, reference, selection, embeddings if selection.candidates == "common" else ())
    if not np.array_equal(pool.compared, anchor_store["compared"].values.astype(bool)):
        raise ValueError(f"{anchors} compares other atoms than the anchors section chooses among; re-run anchors")
    every = valid_mask(stores)  # atoms every model embedded: only they can be anchors of every model
    rows = np.flatnonzero(pool.compared)
    reference_features = reference["embedding"].values  # one read: it chooses every anchor set and is compared
    raw = {m: reference_features[rows] if m == reference_model else s["embedding"].values[rows] for m, s in
           stores.items()}  # fmt: skip
    candidates = pool.candidates & every
    if candidates.sum() < pool.candidates.sum():
        log.info("%d of the %d candidate atoms are left out: some model did not embed them",
                 int(pool.candidates.sum() - candidates.sum()), int(pool.candidates.sum()))  # fmt: skip
    counts = sensitivity.anchor_counts(settings.n_anchors, selection.n, int(candidates.sum()))
    draws = sensitivity.anchor_draws(settings.methods, counts, selection.seed, settings.random_seeds)
    # the anchor store's set: DIRECT and the given indices draw nothing (seed None)
    configured = (selection.method, selection.n, None if selection.method in ("direct", "indices") else selection.seed)
    if configured not in draws:
        draws.append(configured)
    anchor_sets = {}
    for method, k, seed in draws:
        if (method, k, seed) == configured:
            chosen = _configured(anchor_store, anchors, reference_features, selection, pool, candidates)
        else:
            draw_seed = selection.seed if seed is None else seed  # DIRECT draws nothing
            chosen = choose_anchors(reference_features, k, method, draw_seed, candidates, selection.threshold_init)
        anchor_sets[method, k, seed] = np.searchsorted(rows, chosen)
    compare = dataclasses.replace(similarity, metrics=HEADLINE_METRICS, threads=settings.threads)
    multiplicity = row_weights(anchor_store, pool.compared, compare)
    table_rows = sensitivity.sensitivity_rows(
        raw,
        {m: s["valid"].values[rows].astype(bool) for m, s in stores.items()},
        anchor_sets,
        reference["structure_id"].values[rows],
        compare,
        weights=multiplicity,
        control=np.array([m in controls for m in stores]),
        family=np.array([str(s.attrs.get("model_family", "")) for s in stores.values()]),
        configured=configured,
    )
    write_rows(table, table_rows, sensitivity.COLUMNS)
    line = sensitivity.reading(table_rows)
    n_atoms = int(every[rows].sum())
    log.info("%d models, %d atoms every model embedded, %d anchor sets (K = %s) -> %s", len(stores), n_atoms,
             len(anchor_sets), ", ".join(map(str, counts)), table)  # fmt: skip
    log.info("%s", line)
    if figure:
        from platonic.figures import anchor_sensitivity_figure, save_figure

        title = f"{len(stores)} models, {n_atoms} atoms every model embedded; anchors on {reference_model}"
        drawn = anchor_sensitivity_figure(table_rows, line, title)
        log.info("wrote %s", save_figure(drawn, figure, also=tuple(f".{s}" for s in also)))


def _configured(anchor_store, path: str, features: np.ndarray, selection: AnchorSettings, pool, candidates):
    """The configured anchor set: the anchor store's own atoms, in its order. Given anchors (method indices) must come
    from the index list configured (its sha256); chosen ones, where every model embedded every candidate atom of the
    anchors stage, are chosen again here and must be the same (else the store is out of date)."""
    from platonic.anchor_indices import indices_sha256, read_indices
    from platonic.stages.align import choose_anchors

    stored = anchor_store["anchor_atom"].values
    if selection.method == "indices":
        if anchor_store.attrs.get("indices_sha256") != indices_sha256(read_indices(selection.indices)):
            raise ValueError(f"{path} holds other anchors than anchors.indices gives; re-run anchors")
    elif np.array_equal(candidates, pool.candidates):
        chosen = choose_anchors(features, selection.n, selection.method, selection.seed, candidates,
                                selection.threshold_init)  # fmt: skip
        if not np.array_equal(np.sort(stored), chosen):
            raise ValueError(f"{path} holds other anchors than the anchors section chooses; re-run anchors")
    return stored
