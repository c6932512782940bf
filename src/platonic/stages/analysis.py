"""Stages of the shared-space analyses: zero-shot transfer, the consistency audit, embedding arithmetic."""

from __future__ import annotations

import logging

import numpy as np

from platonic.settings import ArithmeticSettings, AuditSettings, TransferSettings
from platonic.stages.common import check_structure_store, model_stores, shared_space, write_rows

log = logging.getLogger("platonic")


def structure_labels(structures) -> list[str]:
    """Per-structure numeric labels of a structure store (bookkeeping variables left out)."""
    bookkeeping = {"n_atoms", "first_atom", "spacegroup_number"}
    return [
        str(name)
        for name, var in structures.data_vars.items()
        if var.dims == ("structure",) and var.dtype.kind == "f" and name not in bookkeeping
    ]


def transfer(
    structures: str,
    embeddings: list[str],
    projections: list[str],
    anchors: str,
    output: str,
    table: str,
    settings: TransferSettings,
    figure: str | None = None,
) -> None:
    """Heads fitted on each model, scored on every model: transfer store ``output``, CSV ``table``, ``figure``."""
    from platonic import elements
    from platonic.analysis import transfer as stitching
    from platonic.figures import save_figure, transfer_heatmaps
    from platonic.store import open_store, write_store

    valid, projected, first = shared_space(anchors, projections)
    structure_store = open_store(structures)
    check_structure_store(structure_store, structures, first)
    raw = {m: s["embedding"].values[valid] for m, s in model_stores(embeddings).items()}
    if list(raw) != list(projected):
        raise ValueError(f"embeddings {list(raw)} and projections {list(projected)} name different models")
    z = first["Z"].values[valid]
    labels = structure_labels(structure_store)
    structure_targets, atom_targets = {}, {}
    for name in settings.targets or [*labels, *stitching.ATOM_TARGETS]:
        if name == "element":
            atom_targets[name] = z
        elif name == "group":
            atom_targets[name] = elements.periodic_group(z, f_block=3)
        elif name in labels:
            structure_targets[name] = structure_store[name].values.astype(np.float64)
        else:
            raise ValueError(
                f"transfer target {name!r} (config analysis.transfer.targets) is neither element,"
                f" group nor a per-structure label of {structures}; it has {labels or 'no labels'}"
            )
    ds = stitching.transfer_scores(
        {"raw": raw, "anchor": projected},
        structure_store["structure_index"].values[valid],
        structure_targets,
        atom_targets,
        settings,
        threads=settings.threads,
    )
    ds.attrs.update(
        structure_set_hash=first.attrs["structure_set_hash"],
        anchor_set_hash=first.attrs["anchor_set_hash"],
        n_excluded_atoms=int((~valid).sum()),
    )
    write_store(ds, output)
    write_rows(table, stitching.transfer_table(ds))
    if figure:
        save_figure(transfer_heatmaps(ds, head=settings.heads[0]), figure)
    anchor = ds["score"].sel(space="anchor", head=settings.heads[0])
    for name in ds["target"].values:
        metric = "accuracy" if name in atom_targets else "r2"
        values = anchor.sel(target=name, metric=metric).values
        off_diagonal = values[~np.eye(len(values), dtype=bool)]
        log.info(
            "%s (%s, anchor space): A->A mean %.3f, A->B mean %.3f",
            name,
            metric,
            float(np.mean(np.diag(values))),
            float(np.mean(off_diagonal)) if off_diagonal.size else float("nan"),
        )
    log.info("%d models, %d atoms, targets %s -> %s", len(raw), int(valid.sum()), list(ds["target"].values), output)


def audit(
    structures: str,
    projections: list[str],
    anchors: str,
    output: str,
    elements_table: str,
    structures_table: str,
    bias_table: str,
    settings: AuditSettings,
    figure: str | None = None,
) -> None:
    """Where the models disagree (audit store ``output`` and three CSV tables) and which model departs where."""
    from platonic.analysis import audit as consistency
    from platonic.figures import departure_heatmap, save_figure
    from platonic.store import open_store, write_store

    valid, projected, first = shared_space(anchors, projections)
    structure_store = open_store(structures)
    check_structure_store(structure_store, structures, first)
    training = {}
    for model, path in settings.training_element_counts.items():
        if model not in projected:
            raise ValueError(
                f"training element counts (analysis.audit.training_element_counts) name {model!r}, "
                f"which is not one of the models {list(projected)}"
            )
        training[model] = consistency.read_training_counts(path)
    ds = consistency.consistency_audit(
        projected,
        first["Z"].values[valid],
        structure_store["structure_index"].values[valid],
        structure_store["material_id"].values.astype(object),
        settings,
    )
    ds = ds.assign_coords(atom=np.flatnonzero(valid))
    correlation = consistency.training_count_correlation(ds, training)
    ds["training_count_correlation"] = ("model", [correlation.get(str(m), np.nan) for m in ds.model.values])
    ds.attrs.update(
        structure_set_hash=first.attrs["structure_set_hash"],
        anchor_set_hash=first.attrs["anchor_set_hash"],
        n_excluded_atoms=int((~valid).sum()),
        training_element_counts=sorted(training),
    )
    write_store(ds, output)
    contested = consistency.contested_elements(ds)
    write_rows(elements_table, contested, consistency.ELEMENT_COLUMNS)
    write_rows(
        structures_table,
        consistency.contested_structures(ds, settings.top_structures),
        consistency.STRUCTURE_COLUMNS,
    )
    bias = consistency.bias_table(ds, training)
    write_rows(bias_table, bias, consistency.BIAS_COLUMNS)
    if figure:
        save_figure(departure_heatmap(ds), figure)
    log.info(
        "most contested elements: %s", ", ".join(f"{r['element']} ({r['disagreement']:.3f})" for r in contested[:5])
    )
    flagged = [f"{r['model']}:{r['element']} (z={r['departure']:.1f})" for r in bias if r["flagged"]]
    log.info("flagged departures: %s", ", ".join(flagged) or "none")
    for model, rho in correlation.items():
        log.info("%s: Spearman(log training count, distance to consensus) = %.3f", model, rho)


def analogies(projections: list[str], anchors: str, table: str, settings: ArithmeticSettings) -> None:
    """Embedding arithmetic ``a - b + c`` per model and analogy of ``settings.analogies`` -> CSV ``table``."""
    from platonic.analysis.arithmetic import analogy_table

    valid, projected, first = shared_space(anchors, projections)
    rows = analogy_table(projected, first["Z"].values[valid], list(settings.analogies), top=settings.top)
    write_rows(table, rows)
    for row in rows:
        if row["rank"] == 1:
            log.info("%s: %s = %s (expected %s at rank %s)", row["model"], row["analogy"], row["element"],
                     row["expected"] or "-", row["expected_rank"])  # fmt: skip
