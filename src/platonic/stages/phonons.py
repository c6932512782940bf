"""Stages of the phonon comparison (config ``phonons``): phonopy's displaced supercells of a few named structures of
the study, as a structure store that the embed stage computes each model's forces on (rule ``phonons_embed``); then
each model's phonons, their imaginary modes and cross-model spread, set against the structures' latent signals.

The structures are not relaxed with each model: the phonons are those of the study's (DFT-relaxed) geometry, with the
forces on the perfect supercell subtracted from those on the displaced ones (:mod:`platonic.analysis.phonons`).
"""

from __future__ import annotations

import json
import logging

import numpy as np

from platonic.settings import PhononSettings, PredictionFailureSettings
from platonic.stages.command import Controls, command
from platonic.stages.common import model_stores, write_rows

log = logging.getLogger("platonic")

# what makes the supercells: a store made with other values is refused by the phonons stage
SUPERCELL_KEYS = ("structures", "supercell_length", "distance")


def _study_structures(store, names: tuple[str, ...], path: str) -> list[int]:
    """The structure indices of the material_ids ``names`` in the structure store ``store`` (read from ``path``)."""
    ids = [str(i) for i in store["material_id"].values]
    missing = [name for name in names if name not in ids]
    if missing:
        raise ValueError(
            f"phonons.structures names {', '.join(missing)}, not in the structure store {path} ({len(ids)} structures,"
            f" e.g. {', '.join(ids[:3])}): name structures of the study (after dataset.limit)"
        )
    if not names:
        raise ValueError("phonons.structures is empty: name the material_ids whose phonons to compute")
    return [ids.index(name) for name in names]


def _supercells(atoms, settings: PhononSettings, symprec: float):
    from platonic.analysis.phonons import displacements, supercell_repeats

    repeats = supercell_repeats(atoms.cell.array, settings.supercell_length)
    phonon, cells = displacements(atoms, repeats, settings.distance, symprec)
    return repeats, phonon, cells


@command(help="phonopy's displaced supercells of the structures phonons.structures names, as a structure store")
def phonon_supercells(output: str, *, structures: str, settings: PhononSettings) -> None:
    """For each structure of the structure store ``structures`` that ``settings.structures`` names, its perfect
    supercell and phonopy's displaced ones -> the structure store ``output`` (ids ``<material_id>:<k>``, k = 0 the
    perfect one; per structure its ``parent`` material_id and ``displacement`` k)."""
    from platonic.store import dataset_to_atoms, open_store, structures_to_dataset, write_store
    from platonic.structures import StructureSet
    from platonic.symmetry import DEFAULT_SYMPREC

    store = open_store(structures, kind="structures")
    chosen = _study_structures(store, settings.structures, structures)
    atoms, ids = dataset_to_atoms(store)
    symprec = float(store.attrs.get("symprec", DEFAULT_SYMPREC))
    cells, names, parents, steps = [], [], [], []
    for s in chosen:
        repeats, phonon, supercells = _supercells(atoms[s], settings, symprec)
        log.info("%s (%s, %s): %d atoms in the primitive cell, supercell %s of %d atoms, %d displacements", ids[s],
                 atoms[s].get_chemical_formula(), phonon.symmetry.get_international_table(), len(phonon.primitive),
                 "x".join(map(str, repeats)), len(phonon.supercell), len(supercells) - 1)  # fmt: skip
        cells += supercells
        names += [f"{ids[s]}:{k}" for k in range(len(supercells))]
        parents += [ids[s]] * len(supercells)
        steps += list(range(len(supercells)))
    ds = structures_to_dataset(StructureSet(cells, names), source=structures, symprec=symprec)
    ds["parent"] = ("structure", np.array(parents, dtype=object))
    ds["displacement"] = ("structure", np.array(steps, dtype=np.int64))
    made_with = {key: value for key, value in settings.to_mapping().items() if key in SUPERCELL_KEYS}
    ds.attrs.update(parent_structure_set_hash=store.attrs["structure_set_hash"], phonons=json.dumps(made_with))
    write_store(ds, output)
    log.info("%d supercells of %d structures (%d atoms) -> %s", len(cells), len(chosen), ds.attrs["n_atoms"], output)


def _model_forces(store, rows: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The forces ``(len(cells), n, 3)`` a model's store holds on the atoms ``rows`` of the supercells ``cells``
    (structure indices; rows cell after cell), or ``None`` and why not."""
    if "forces" not in store:
        return None, "its store holds no forces (embed.predictions false, or a family that predicts none)"
    valid = store["valid"].values[rows]
    forces = store["forces"].values[rows]
    if not valid.all() or not np.isfinite(forces).all():
        reasons = {str(store["exclusion_reason"].values[s]) for s in cells} - {""}
        return None, f"it did not compute every supercell ({'; '.join(sorted(reasons)) or 'non-finite forces'})"
    return forces.reshape(len(cells), -1, 3), ""


@command(help="phonons of the named structures with every model: imaginary modes and cross-model spread against"
         " the structures' latent signals")  # fmt: skip
def phonons(
    table: str,
    *,
    correlations: str,
    structures: str,
    supercells: str,
    forces: list[str],
    embeddings: list[str],
    projections: list[str],
    anchors: str,
    audit: str,
    symmetry_table: str,
    settings: PhononSettings,
    signals: PredictionFailureSettings,
    figure: str | None = None,
    controls: Controls = (),
) -> None:
    """Each model's phonons of each structure of ``supercells`` from its ``forces`` (embedding stores of the
    supercells) -> CSV ``table`` (one row per structure and model, :data:`platonic.analysis.phonons.COLUMNS`), the
    rank tests of the study's latent signals against the cross-model frequency spread and the imaginary share ->
    ``correlations`` (:data:`~platonic.analysis.phonons.TEST_COLUMNS`) and ``figure``. ``signals`` sets the
    atypicality's k and the tests' bootstrap, permutations and seed, as for the prediction-failure test."""
    from platonic.analysis import phonons as ph
    from platonic.analysis.prediction_failure import structure_means
    from platonic.analysis.rank_correlation import rank_test
    from platonic.figures import phonons_figure, save_figure
    from platonic.stages.signals import latent_signals
    from platonic.store import check_same_structures, dataset_to_atoms, open_store

    # every store opened and checked before the supercells' phonons are computed
    study = open_store(structures, kind="structures")
    cells_store = open_store(supercells, kind="structures")
    stores = model_stores(forces, "embedding")
    check_same_structures(cells_store, *stores.values())
    latent = latent_signals(structures=structures, embeddings=embeddings, projections=projections,
                            anchors=anchors, audit=audit, symmetry_table=symmetry_table, k=signals.k,
                            controls=tuple(controls))  # fmt: skip
    if cells_store.attrs.get("parent_structure_set_hash") != study.attrs["structure_set_hash"]:
        raise ValueError(f"{supercells} was made from another structure store than {structures}; re-run"
                         " phonon_supercells on it")  # fmt: skip
    made_with = {key: value for key, value in settings.to_mapping().items() if key in SUPERCELL_KEYS}
    if json.loads(cells_store.attrs.get("phonons", "{}")) != made_with:
        raise ValueError(f"{supercells} was made with phonons settings {cells_store.attrs.get('phonons')}, not"
                         f" {json.dumps(made_with)}; re-run phonon_supercells")  # fmt: skip
    symprec = float(study.attrs["symprec"])
    study_atoms, study_ids = dataset_to_atoms(study)
    cell_atoms, _ = dataset_to_atoms(cells_store)
    parent = np.array([str(p) for p in cells_store["parent"].values])
    first, counts = cells_store["first_atom"].values, cells_store["n_atoms"].values
    chosen = _study_structures(study, settings.structures, structures)

    modes, facts = {}, {}
    for s in chosen:
        name = study_ids[s]
        repeats, phonon, expected = _supercells(study_atoms[s], settings, symprec)
        mine = np.flatnonzero(parent == name)
        if len(mine) != len(expected) or any(not np.allclose(cell_atoms[i].positions, cell.positions, atol=1e-8)
                                             for i, cell in zip(mine, expected, strict=True)):  # fmt: skip
            raise ValueError(f"the supercells of {name} in {supercells} are not phonopy's for these settings;"
                             " re-run phonon_supercells")  # fmt: skip
        rows = np.concatenate([np.arange(first[i], first[i] + counts[i]) for i in mine])
        facts[name] = {
            "material_id": name, "formula": study_atoms[s].get_chemical_formula(),
            "spacegroup": phonon.symmetry.get_international_table(), "n_primitive_atoms": len(phonon.primitive),
            "supercell": "x".join(map(str, repeats)), "n_supercell_atoms": len(phonon.supercell),
            "n_displacements": len(expected) - 1,
        }  # fmt: skip
        for model, store in stores.items():
            values, why = _model_forces(store, rows, mine)
            if values is None:
                log.warning("%s: no phonons of %s: %s", model, name, why)
                facts[name][f"excluded:{model}"] = why
                continue
            modes[name, model] = ph.phonon_modes(phonon, values, settings.mesh)

    names = [study_ids[s] for s in chosen]
    compared = [m for m in stores if all((name, m) in modes for name in names)]
    for model in stores:
        if model not in compared:
            log.warning("%s is left out of the cross-model spread: it has no phonons of every structure", model)
    per_structure = {key: structure_means(values, latent.structure, study.sizes["structure"])[chosen]
                     for key, values in latent.consensus.items()}  # fmt: skip
    targets = {"frequency_spread": [], "imaginary_fraction": []}
    out = []
    for j, name in enumerate(names):
        if len(compared) >= 2:
            spread, spread_thz = ph.frequency_spread(np.stack([modes[name, m].frequencies for m in compared]),
                                                     modes[name, compared[0]].weights)  # fmt: skip
        else:
            spread = spread_thz = np.nan
        fractions = {m: ph.imaginary_fraction(x.frequencies, x.weights, settings.imaginary_tolerance)
                     for (n, m), x in modes.items() if n == name}  # fmt: skip
        mean_fraction = float(np.mean([fractions[m] for m in compared])) if compared else np.nan
        targets["frequency_spread"].append(spread)
        targets["imaginary_fraction"].append(mean_fraction)
        shared = {**{k: v for k, v in facts[name].items() if not k.startswith("excluded:")},
                  "frequency_spread": spread, "frequency_spread_thz": spread_thz,
                  "imaginary_fraction_mean": mean_fraction, "n_models_compared": len(compared),
                  **{key: float(values[j]) for key, values in per_structure.items()}}  # fmt: skip
        for model in stores:
            found = modes.get((name, model))
            out.append({
                **shared, "model": model,
                "imaginary_fraction": fractions.get(model, np.nan),
                "min_frequency": float(found.frequencies.min()) if found else np.nan,
                "max_frequency": float(found.frequencies.max()) if found else np.nan,
                "gamma_residual": found.gamma_residual if found else np.nan,
                "residual_force": found.residual_force if found else np.nan,
                "excluded": facts[name].get(f"excluded:{model}", ""),
            })  # fmt: skip
    tests = []
    items = np.arange(len(names))
    for target, values in targets.items():
        for signal, x in per_structure.items():
            test = rank_test(x, np.array(values), items, signals.bootstrap, signals.permutations, signals.seed)
            tests.append({"signal": signal, "target": target, **test.row()})
            log.info("%s vs %s over %d structures: rho %.3f [%.3f, %.3f], chance %.3f [%.3f, %.3f], p %.3f", signal,
                     target, test.n, test.value, test.ci_low, test.ci_high, test.chance, test.chance_low,
                     test.chance_high, test.p_value)  # fmt: skip
    write_rows(table, out, ph.COLUMNS)
    write_rows(correlations, tests, ph.TEST_COLUMNS)
    if figure:
        save_figure(phonons_figure(out, tests, settings.imaginary_tolerance), figure)
    for j, name in enumerate(names):
        shares = ", ".join(f"{r['model']} {r['imaginary_fraction']:.3f}" for r in out if r["material_id"] == name)
        log.info("%s: frequency spread %.4f over %d models; imaginary share %s", name,
                 targets["frequency_spread"][j], len(compared), shares)  # fmt: skip
