"""Stages of the shared-space analyses: zero-shot ``transfer``, the consistency ``audit``, embedding ``arithmetic``,
the ``symmetry`` audit."""

from __future__ import annotations

import logging

import numpy as np

from platonic.settings import ArithmeticSettings, AuditSettings, SymmetrySettings, TransferSettings
from platonic.stages.command import Controls, command
from platonic.stages.common import (
    Rows,
    atom_counts,
    model_stores,
    open_structures,
    shared_space,
    valid_mask,
    write_rows,
)

log = logging.getLogger("platonic")


def structure_labels(structures) -> list[str]:
    """Per-structure numeric labels of a structure store (bookkeeping variables left out)."""
    bookkeeping = {"n_atoms", "first_atom", "spacegroup_number"}
    return [
        str(name)
        for name, var in structures.data_vars.items()
        if var.dims == ("structure",) and var.dtype.kind == "f" and name not in bookkeeping
    ]


@command(help="zero-shot stitching: heads fitted on one model, scored on every other")
def transfer(
    output: str,
    table: str,
    *,
    structures: str,
    embeddings: list[str],
    projections: list[str],
    anchors: str,
    settings: TransferSettings,
    figure: str | None = None,
    controls: Controls = (),
) -> None:
    """Heads fitted on each model, scored on every model, each score with its structure-bootstrap interval
    (``settings.bootstrap`` replicates, seeded by ``settings.seed``): transfer store ``output``, CSV ``table``,
    ``figure``; ``controls`` name the control representations (marked in the store and the table)."""
    from platonic import elements
    from platonic.analysis import transfer as stitching
    from platonic.figures import save_figure, transfer_heatmaps
    from platonic.store import check_same_structures, write_store

    valid, projected, first, anchor_store = shared_space(anchors, projections)
    structure_store = open_structures(structures, first)
    raw_stores = model_stores(embeddings, "embedding")
    check_same_structures(anchor_store, *raw_stores.values())
    # read from the stores one model at a time (transfer_scores fits on each, then scores on each): out of core
    raw = {m: Rows(s["embedding"], valid) for m, s in raw_stores.items()}
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
    # the raw baseline against the shared space: the unit space keeps the raw columns (only the rows' lengths
    # change), so a head moves between its models no better than between the raw ones, and is not fitted
    ds = stitching.transfer_scores(
        {"raw": raw, "anchor": projected},
        structure_store["structure_index"].values[valid],
        structure_targets,
        atom_targets,
        settings,
        threads=settings.threads,
        controls=controls,
    )
    ds.attrs.update(
        structure_set_hash=first.attrs["structure_set_hash"],
        anchor_set_hash=first.attrs["anchor_set_hash"],
        **atom_counts(anchor_store, valid_mask(raw_stores)),
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
    log.info(
        "%d models (%d controls), %d atoms, targets %s, %d bootstrap replicates -> %s", len(raw), len(controls),
        int(valid.sum()), list(ds["target"].values), ds.attrs["bootstrap"], output,
    )  # fmt: skip


@command(help="where the models disagree in the shared space, and per-element bias")
def audit(
    output: str,
    *,
    projections: list[str],
    anchors: str,
    structures: str,
    elements_table: str,
    structures_table: str,
    bias_table: str,
    settings: AuditSettings,
    figure: str | None = None,
    controls: Controls = (),
) -> None:
    """Where the models disagree (audit store ``output`` and three CSV tables) and which model departs where; the
    ``controls`` (control representations) are left out: the consensus is that of the trained models."""
    from platonic.analysis import audit as consistency
    from platonic.figures import departure_heatmap, save_figure
    from platonic.store import write_store

    valid, projected, first, anchor_store = shared_space(anchors, projections)
    projected = {m: x for m, x in projected.items() if m not in controls}
    if len(projected) < 2:
        raise ValueError(f"the audit needs at least two models that are not controls; the controls are {controls}")
    structure_store = open_structures(structures, first)
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
        **atom_counts(anchor_store, valid_mask(model_stores(projections, "projection"))),
        training_element_counts=sorted(training),
        controls_left_out=sorted(controls),
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


@command(help="embedding arithmetic a - b + c on mean element vectors")
def arithmetic(table: str, *, projections: list[str], anchors: str, settings: ArithmeticSettings) -> None:
    """Embedding arithmetic ``a - b + c`` per model and analogy of ``settings.analogies`` -> CSV ``table``."""
    from platonic.analysis.arithmetic import analogy_table

    valid, projected, first, _ = shared_space(anchors, projections)
    rows = analogy_table(projected, first["Z"].values[valid], list(settings.analogies), top=settings.top)
    write_rows(table, rows)
    for row in rows:
        if row["rank"] == 1:
            log.info("%s: %s = %s (expected %s at rank %s)", row["model"], row["analogy"], row["element"],
                     row["expected"] or "-", row["expected_rank"])  # fmt: skip


SYMMETRY_COLUMNS = ["model", "orbits_with_copies", "scale", "median_relative_spread", "max_relative_spread",
                    "flagged_orbits", "flagged_structures", "threshold"]  # fmt: skip
FLAGGED_COLUMNS = ["model", "material_id", "atom", "element", "multiplicity", "relative_spread"]


@command(help="symmetry-breaking audit: how far each model spreads the copies of one environment")
def symmetry(table: str, *, flagged_table: str, structures: str, embeddings: list[str], anchors: str,
             settings: SymmetrySettings, figure: str | None = None) -> None:  # fmt: skip
    """Symmetry-breaking audit: per model the spread of its embeddings over the copies of each orbit relative to
    its typical distance between distinct environments (``platonic.symmetry.symmetry_breaking``), on the atoms
    every model embedded -> a per-model CSV ``table``, the flagged orbits ``flagged_table`` and ``figure``."""
    from ase.data import chemical_symbols

    from platonic.figures import save_figure, symmetry_breaking_figure
    from platonic.store import check_same_structures, open_store
    from platonic.symmetry import symmetry_breaking

    stores = model_stores(embeddings, "embedding")
    structure_store = open_structures(structures, next(iter(stores.values())))
    check_same_structures(structure_store, open_store(anchors, kind="anchors"))
    valid = valid_mask(stores)  # every copy of an orbit counts here: the atoms every model embedded
    orbit = structure_store["orbit"].values[valid]
    structure = structure_store["structure_index"].values[valid]
    z = structure_store["Z"].values[valid]
    ids = structure_store["material_id"].values
    results, rows, flagged = {}, [], []
    for model, store in stores.items():
        result = symmetry_breaking(
            store["embedding"].values[valid], orbit, structure, z, settings.threshold, random_state=settings.seed
        )
        results[model] = result
        copied = result.multiplicity > 1
        rows.append({
            "model": model, "orbits_with_copies": int(copied.sum()), "scale": result.scale,
            "median_relative_spread": float(np.median(result.relative[copied])) if copied.any() else float("nan"),
            "max_relative_spread": float(result.relative.max()) if result.relative.size else float("nan"),
            "flagged_orbits": int(result.flagged.sum()),
            "flagged_structures": int((result.structure_flagged > 0).sum()), "threshold": settings.threshold,
        })  # fmt: skip
        for i in np.flatnonzero(result.flagged):
            flagged.append({
                "model": model, "material_id": str(ids[result.structure[i]]), "atom": int(result.orbit[i]),
                "element": chemical_symbols[int(result.Z[i])], "multiplicity": int(result.multiplicity[i]),
                "relative_spread": float(result.relative[i]),
            })  # fmt: skip
        row = rows[-1]
        log.info("%s: %d of %d orbits with copies flagged (median relative spread %.2e)", model,
                 row["flagged_orbits"], row["orbits_with_copies"], row["median_relative_spread"])  # fmt: skip
    write_rows(table, rows, SYMMETRY_COLUMNS)
    flagged.sort(key=lambda r: -r["relative_spread"])
    write_rows(flagged_table, flagged, FLAGGED_COLUMNS)
    if figure:
        save_figure(symmetry_breaking_figure({m: r.relative[r.multiplicity > 1] for m, r in results.items()},
                                             settings.threshold), figure)  # fmt: skip
