"""Stage: does disagreement in the shared space flag prediction failures (issue 31)?

Reads the structure store, every model's embedding store (its predictions: ``energy_per_atom (structure)``,
``forces (atom, cartesian)``, listed in the store's ``predictions`` attribute), the projections (the shared space),
the audit store (cross-model disagreement per atom) and the symmetry audit's table (each model's scale), and writes
the rank-test table (:data:`platonic.analysis.prediction_failure.COLUMNS`), a summary of each model's formation-energy
error and symmetry-forbidden forces (:data:`~platonic.analysis.prediction_failure.SUMMARY_COLUMNS`) and a figure.
Controls and models without energies and forces are left out with a logged reason; with fewer than two predicting
models the tables are written row-less and the figure says why.
"""

from __future__ import annotations

import logging

import numpy as np

from platonic.settings import PredictionFailureSettings
from platonic.stages.command import Controls, command
from platonic.stages.common import write_rows
from platonic.stages.signals import latent_signals

log = logging.getLogger("platonic")

NEEDED = ("energy_per_atom", "forces")


def predicting_models(stores: dict, controls: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """The models of ``stores`` (embedding stores) with energies and forces, and ``{model: why not}`` for the rest."""
    predicting, skipped = [], {}
    for model, store in stores.items():
        listed = str(store.attrs.get("predictions", "")).split()
        missing = [name for name in NEEDED if name not in listed or name not in store]
        if model in controls:
            skipped[model] = "a control representation"
        elif missing:
            skipped[model] = f"its store holds no {' and no '.join(missing)}"
        else:
            predicting.append(model)
    return predicting, skipped


def _structure_atoms(structures, s: int):
    import ase

    first, n = int(structures["first_atom"].values[s]), int(structures["n_atoms"].values[s])
    return ase.Atoms(
        numbers=structures["Z"].values[first : first + n],
        positions=structures["positions"].values[first : first + n],
        cell=structures["cell"].values[s],
        pbc=structures["pbc"].values[s],
    )


@command(help="does disagreement in the shared space flag prediction failures? rank tests with controls")
def prediction_failure(
    table: str,
    *,
    summary_table: str,
    structures: str,
    embeddings: list[str],
    projections: list[str],
    anchors: str,
    audit: str,
    symmetry_table: str,
    settings: PredictionFailureSettings,
    figure: str | None = None,
    controls: Controls = (),
) -> None:
    """Rank tests of the latent signals against the prediction targets -> CSV ``table``, the per-model summary
    ``summary_table`` and ``figure``; ``controls`` (control representations) are neither signals nor targets."""
    from platonic.analysis import formation
    from platonic.analysis import prediction_failure as pf
    from platonic.figures import prediction_failure_figure, save_figure
    from platonic.site_symmetry import allowed_force_projectors, forbidden_force, orbit_maxima

    def finish(rows: list[dict], summary: list[dict], reason: str = "") -> None:
        write_rows(table, rows, pf.COLUMNS)
        write_rows(summary_table, summary, pf.SUMMARY_COLUMNS)
        if figure:
            save_figure(prediction_failure_figure(rows, reason), figure)

    signals = latent_signals(structures=structures, embeddings=embeddings, projections=projections,
                             anchors=anchors, audit=audit, symmetry_table=symmetry_table, k=settings.k,
                             controls=tuple(controls))  # fmt: skip
    stores, structure_store, atoms = signals.stores, signals.structure_store, signals.atoms
    predicting, skipped = predicting_models(stores, tuple(controls))
    for model, reason in skipped.items():
        log.info("%s: no prediction targets (%s)", model, reason)
    structure = structure_store["structure_index"].values
    n_structures = structure_store.sizes["structure"]
    if len(predicting) < 2:
        reason = (
            f"fewer than two trained models predict energies and forces ({', '.join(predicting) or 'none'});"
            " no test is possible"
        )
        log.warning("prediction failure: %s", reason)
        return finish([], [], reason)
    disagreement, distance, spread = signals.disagreement, signals.atypicality, signals.spread
    consensus_atypicality = signals.consensus_atypicality
    orbit, z = structure_store["orbit"].values, structure_store["Z"].values

    # prediction targets
    energy = np.array([stores[m]["energy_per_atom"].values for m in predicting], dtype=np.float64)  # (M, S)
    forces = np.array([stores[m]["forces"].values for m in predicting], dtype=np.float64)  # (M, N, 3)
    projectors = np.broadcast_to(np.eye(3), (len(structure), 3, 3)).copy()
    symprec = float(structure_store.attrs.get("symprec", 1e-3))
    for s in range(n_structures):
        first_atom, n = int(structure_store["first_atom"].values[s]), int(structure_store["n_atoms"].values[s])
        site = allowed_force_projectors(_structure_atoms(structure_store, s), symprec)
        projectors[first_atom : first_atom + n] = site
    constrained = np.trace(projectors, axis1=1, axis2=2) < 3 - 1e-6  # the site symmetry forbids some direction
    n_atoms = structure_store["n_atoms"].values.astype(np.float64)
    elements, fractions = formation.composition_fractions(
        [z[structure == s] for s in range(n_structures)]
    )  # fmt: skip
    groups_atom, groups_structure = structure[atoms], np.arange(n_structures)
    atom_controls = pf.element_size_controls(z[atoms], n_atoms[groups_atom])
    structure_controls = np.column_stack([fractions, n_atoms])
    consensus_signals = signals.consensus

    def per_structure(signals: dict) -> dict:
        return {name: pf.structure_means(v, groups_atom, n_structures) for name, v in signals.items()}

    run = {"replicates": settings.bootstrap, "permutations": settings.permutations, "seed": settings.seed}
    rows = pf.signal_tests(consensus_signals, pf.force_spread(forces[:, atoms]), groups_atom, atom_controls,
                           {"target": "force_spread", "model": "consensus", "level": "atom"}, **run)  # fmt: skip
    rows += pf.signal_tests(per_structure(consensus_signals), pf.energy_spread(energy), groups_structure,
                            structure_controls, {"target": "energy_spread", "model": "consensus",
                                                 "level": "structure"}, **run)  # fmt: skip
    summary = []
    train = pf.structure_split(n_structures, settings.train_fraction, settings.seed)
    has_dft = "formation_energy_per_atom" in structure_store
    dft = structure_store["formation_energy_per_atom"].values if has_dft else None
    if dft is None:
        log.info("the structure store has no formation_energy_per_atom: no formation-energy test")
    for i, model in enumerate(predicting):
        signals = {"disagreement": disagreement, "atypicality": distance[model],
                   "atypicality_consensus": consensus_atypicality, "symmetry_spread": spread[model]}  # fmt: skip
        magnitude = forbidden_force(np.nan_to_num(forces[i]), projectors)
        magnitude[~np.all(np.isfinite(forces[i]), axis=1) | ~constrained] = np.nan
        kept = np.isfinite(magnitude)
        labels, maxima = orbit_maxima(magnitude[kept], orbit[kept])
        orbit_max = np.full(len(atoms), np.nan)
        position = np.searchsorted(labels, orbit[atoms])
        hit = position < len(labels)
        hit[hit] &= labels[position[hit]] == orbit[atoms][hit]
        orbit_max[hit] = maxima[position[hit]]
        rows += pf.signal_tests(signals, orbit_max, groups_atom, atom_controls,
                                {"target": "forbidden_force", "model": model, "level": "atom"}, **run)  # fmt: skip
        summary.append({
            "kind": "forbidden_force", "model": model, "n": len(maxima),
            "median": float(np.median(maxima)) if len(maxima) else np.nan,
            "max": float(maxima.max()) if len(maxima) else np.nan,
            "n_above": int((maxima > settings.force_tolerance).sum()), "tolerance": settings.force_tolerance,
        })  # fmt: skip
        if dft is None:
            continue
        fit = formation.fit_references(energy[i], dft, elements, fractions, train)
        error = np.abs(formation.formation_errors(energy[i], dft, fractions, fit))
        error[train] = np.nan
        held = np.isfinite(error)
        rows += pf.signal_tests(per_structure(signals), error, groups_structure, structure_controls,
                                {"target": "formation_error", "model": model, "level": "structure"}, **run)  # fmt: skip
        summary.append({
            "kind": "formation_error", "model": model, "n": int(held.sum()), "n_train": fit.n_train,
            "train_rmse": fit.train_rmse, "mae": float(error[held].mean()) if held.any() else np.nan,
            "rmse": float(np.sqrt(np.mean(error[held] ** 2))) if held.any() else np.nan,
        })  # fmt: skip
        log.info("%s: formation-energy MAE %.4f eV/atom on %d held-out structures (references fitted on %d)",
                 model, summary[-1]["mae"], int(held.sum()), fit.n_train)  # fmt: skip
    finish(rows, summary)
    for row in rows:
        if row["control"] == "none":
            log.info("%s vs %s (%s, %s): rho %.3f [%.3f, %.3f], chance %.3f", row["signal"], row["target"],
                     row["model"], row["level"], row["value"], row["ci_low"], row["ci_high"],
                     row["chance"])  # fmt: skip
