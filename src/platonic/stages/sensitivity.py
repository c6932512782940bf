"""Stage ``anchor-sensitivity``: the anchor space's headline agreement against the number of anchors and how they
are chosen, beside the unit space (``platonic.compare.anchor_sensitivity``) -> CSV + figure."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from platonic.settings import AnchorSensitivitySettings, AnchorSettings, SimilaritySettings
from platonic.stages.common import check_same_structures, compared_mask, model_stores, write_rows

log = logging.getLogger("platonic")


def anchor_sensitivity(
    table: str,
    structures: str,
    embeddings: list[str],
    anchors: str,
    settings: AnchorSensitivitySettings,
    selection: AnchorSettings,
    similarity: SimilaritySettings,
    figure: str | None = None,
    also: tuple[str, ...] = (),
    controls: tuple[str, ...] = (),
) -> None:
    """The CSV ``table`` (``anchor_sensitivity.COLUMNS``) and its ``figure`` (and the same name with each suffix
    of ``also``): the headline metrics of every model of ``embeddings`` (the configured order) on the atoms of the
    similarity store (the anchor store ``anchors``'s compared atoms every model embedded), in the unit space and in
    the anchor space of each anchor set, chosen as the anchors stage chooses them (``selection``: the config section
    ``anchors``) on the structure store ``structures``; ``similarity``'s settings but for its metrics."""
    from platonic.compare import anchor_sensitivity as sensitivity
    from platonic.compare.headline import HEADLINE_METRICS
    from platonic.stages.align import anchor_candidates, choose_anchors
    from platonic.stages.fan_in import check_controls, open_anchors, row_weights, structure_numbers

    anchor_store = open_anchors(anchors, similarity)
    stores = model_stores(embeddings)
    check_same_structures(stores)
    check_controls(controls, stores)
    reference_model = selection.reference_model or next(iter(stores))
    if reference_model not in stores:
        raise ValueError(f"the reference model {reference_model!r} (anchors.reference_model) is not in {list(stores)}")
    reference = stores[reference_model]
    pool = anchor_candidates(structures, reference, selection, embeddings if selection.candidates == "common" else ())
    if not np.array_equal(pool.compared, anchor_store["compared"].values.astype(bool)):
        raise ValueError(f"{anchors} compares other atoms than the anchors section chooses among; re-run anchors")
    mask = compared_mask(anchor_store, stores)
    rows = np.flatnonzero(mask)
    reference_features = reference["embedding"].values  # one read: it chooses every anchor set and is compared
    raw = {m: reference_features[rows] if m == reference_model else s["embedding"].values[rows] for m, s in
           stores.items()}  # fmt: skip
    counts = sensitivity.anchor_counts(settings.n_anchors, selection.n, int(pool.candidates.sum()))
    draws = sensitivity.anchor_draws(settings.methods, counts, selection.seed, settings.random_seeds)
    configured = (selection.method, selection.n, None if selection.method == "direct" else selection.seed)
    if configured not in draws:
        draws.append(configured)
    anchor_sets = {}
    for method, k, seed in draws:
        draw_seed = selection.seed if seed is None else seed  # DIRECT draws nothing
        chosen = choose_anchors(reference_features, k, method, draw_seed, pool.candidates)
        if (method, k, seed) == configured:
            _check_configured(chosen, anchor_store, anchors)
        if not mask[chosen].all():
            raise ValueError(
                f"{int((~mask[chosen]).sum())} of the {k} {method} anchors (seed {seed}) are atoms some model did not"
                " embed; set anchors.candidates: common to choose among the atoms every model embedded"
            )
        anchor_sets[method, k, seed] = np.searchsorted(rows, chosen)
    compare = dataclasses.replace(similarity, metrics=HEADLINE_METRICS, threads=settings.threads)
    table_rows = sensitivity.sensitivity_rows(
        raw,
        anchor_sets,
        structure_numbers(reference, mask),
        compare,
        weights=row_weights(anchor_store, mask, compare),
        control=np.array([m in controls for m in stores]),
        family=np.array([str(s.attrs.get("model_family", "")) for s in stores.values()]),
        configured=configured,
    )
    write_rows(table, table_rows, sensitivity.COLUMNS)
    line = sensitivity.reading(table_rows)
    log.info("%d models, %d atoms, %d anchor sets (K = %s) -> %s", len(stores), len(rows), len(anchor_sets),
             ", ".join(map(str, counts)), table)  # fmt: skip
    log.info("%s", line)
    if figure:
        from platonic.figures import anchor_sensitivity_figure, save_figure

        title = f"{len(stores)} models, {len(rows)} atoms; anchors on {reference_model}"
        drawn = anchor_sensitivity_figure(table_rows, line, title)
        log.info("wrote %s", save_figure(drawn, figure, also=tuple(f".{s}" for s in also)))


def _check_configured(chosen: np.ndarray, anchor_store, path: str) -> None:
    """The configured anchor set chosen here is the anchor store's: else the store is out of date."""
    stored = anchor_store["anchor_atom"].values
    if not np.array_equal(np.sort(stored), chosen):
        raise ValueError(f"{path} holds other anchors than the anchors section chooses; re-run anchors")
