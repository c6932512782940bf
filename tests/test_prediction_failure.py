"""The prediction-failure stage on a small synthetic study: symmetric crystals (rock salt, CsCl, wurtzite, ...) and
low-symmetry cells, two models whose second one departs from the first by a planted amount ``t`` per atom, in its
embeddings, its forces (including forces on inversion centres, which their symmetry forbids) and its energies."""

import csv

import numpy as np
import pytest
import xarray as xr
from ase import Atoms
from ase.build import bulk

from platonic.analysis import prediction_failure as pf
from platonic.projection import anchor_projection
from platonic.settings import AuditSettings, PredictionFailureSettings, SymmetrySettings
from platonic.site_symmetry import allowed_force_projectors
from platonic.stages import analysis
from platonic.stages.prediction_failure import prediction_failure
from platonic.store import structures_to_dataset, write_store
from platonic.structures import StructureSet

MU = {11: -1.3, 17: -1.8, 30: -1.1, 8: -4.9, 55: -0.9, 12: -1.6, 14: -5.4, 29: -3.7}


def test_force_and_energy_spread_closed_forms():
    """Two models: the RMS deviation from the mean force is half their difference's length; the population standard
    deviation of two energies is half their difference."""
    forces = np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], [[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]]])
    np.testing.assert_allclose(pf.force_spread(forces), [2.5, 0.0])
    np.testing.assert_allclose(pf.energy_spread(np.array([[-3.0, 1.0], [-2.0, 1.0]])), [0.5, 0.0])
    np.testing.assert_allclose(pf.structure_means(np.array([1.0, 3.0, np.nan, 5.0]), np.array([0, 0, 1, 2]), 4),
                               [2.0, np.nan, 5.0, np.nan])  # fmt: skip
    split = pf.structure_split(10, 0.7, seed=4)
    assert split.sum() == 7 and np.array_equal(split, pf.structure_split(10, 0.7, seed=4))


def _structures(rng) -> list[Atoms]:
    symmetric = [
        bulk("NaCl", "rocksalt", a=5.64),
        bulk("CsCl", "cesiumchloride", a=4.12),
        bulk("ZnO", "wurtzite", a=3.25, c=5.2, u=0.382),
        bulk("MgO", "rocksalt", a=4.21),
        bulk("Si", "diamond", a=5.43),
        bulk("Cu", "fcc", a=3.61),
        bulk("NaCl", "rocksalt", a=5.64, cubic=True),
    ]
    low = []
    while len(low) < 23:
        numbers = rng.choice(list(MU), size=int(rng.integers(2, 5)))
        cell = np.diag(rng.uniform(3.6, 4.6, 3)) + rng.uniform(-0.4, 0.4, (3, 3))
        atoms = Atoms(numbers=numbers, scaled_positions=rng.random((len(numbers), 3)), cell=cell, pbc=True)
        if len(atoms) == 1 or atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)].min() > 1.6:
            low.append(atoms)
    return symmetric + low


def _study(tmp_path, predictions: bool = True) -> dict:
    """Write every store the stage reads; return the paths and the planted values."""
    rng = np.random.default_rng(0)
    atoms = _structures(rng)
    n_structures = len(atoms)
    formation = rng.uniform(-2.0, 0.0, n_structures)
    structures = structures_to_dataset(
        StructureSet(atoms, [f"syn-{i}" for i in range(n_structures)], {"formation_energy_per_atom": formation}),
        symprec=1e-3,
    )
    paths = {"structures": write_store(structures, tmp_path / "structures.zarr")}
    z, orbit = structures["Z"].values, structures["orbit"].values
    structure = structures["structure_index"].values
    n = len(z)
    t_structure = rng.uniform(0.0, 1.0, n_structures)
    t_structure[0] = 1.5  # the rock-salt cell: the second model departs most there
    t = t_structure[structure] * rng.uniform(0.8, 1.2, n)
    width = 16
    centres = {e: rng.normal(size=width) for e in MU}
    environment = {o: 0.5 * rng.normal(size=width) for o in np.unique(orbit)}  # symmetry copies share theirs
    features_a = np.stack([centres[e] + environment[o] for e, o in zip(z, orbit, strict=True)])
    away = rng.normal(size=(n, width))
    away *= (np.linalg.norm(features_a, axis=1) / np.linalg.norm(away, axis=1))[:, None]
    features_b = features_a + 0.5 * t[:, None] * away
    projectors = np.concatenate([allowed_force_projectors(a) for a in atoms])
    base = np.einsum("nij,nj->ni", projectors, rng.normal(size=(n, 3)))  # forces the site symmetry allows
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    forces = {"a": base, "b": base + t[:, None] * direction}
    x = np.array([[np.sum(a.numbers == e) / len(a) for e in MU] for a in atoms])
    energy_a = x @ np.array(list(MU.values())) + formation
    energy = {"a": energy_a, "b": energy_a + t_structure}
    compared = orbit == np.arange(n)
    anchor_rows = np.flatnonzero(compared)[::3]
    anchors = xr.Dataset(
        {"anchor_atom": ("anchor", anchor_rows), "compared": ("atom", compared),
         "reference_valid": ("atom", np.ones(n, bool))},
        attrs={"kind": "anchors", "anchor_set_hash": "syn-anchors",
               "structure_set_hash": structures.attrs["structure_set_hash"]},
    )  # fmt: skip
    paths["anchors"] = write_store(anchors, tmp_path / "anchors.zarr")
    paths["embeddings"], paths["projections"] = [], []
    coords = {"atom": np.arange(n), "Z": ("atom", z)}
    for model, features in (("a", features_a), ("b", features_b)):
        attrs = {"model": model, "structure_set_hash": structures.attrs["structure_set_hash"]}
        store = xr.Dataset({"embedding": (("atom", "feature"), features), "valid": ("atom", np.ones(n, bool))},
                           coords=coords, attrs={**attrs, "kind": "embedding"})  # fmt: skip
        if predictions:
            store = store.assign(energy_per_atom=("structure", energy[model]),
                                 forces=(("atom", "cartesian"), forces[model])).assign_coords(
                cartesian=["x", "y", "z"])  # fmt: skip
            store.attrs["predictions"] = "energy_per_atom forces"
        paths["embeddings"].append(write_store(store, tmp_path / f"embeddings/{model}.zarr"))
        projection = xr.Dataset(
            {"coordinate": (("atom", "anchor"), anchor_projection(features, features[anchor_rows])),
             "valid": ("atom", np.ones(n, bool))},
            coords=coords, attrs={**attrs, "kind": "projection", "anchor_set_hash": "syn-anchors"},
        )  # fmt: skip
        paths["projections"].append(write_store(projection, tmp_path / f"platonic/{model}.zarr"))
    out = tmp_path / "analysis"
    analysis.audit(str(out / "audit.zarr"), projections=paths["projections"], anchors=paths["anchors"],
                   structures=paths["structures"], elements_table=str(out / "elements.csv"),
                   structures_table=str(out / "structures.csv"), bias_table=str(out / "bias.csv"),
                   settings=AuditSettings.from_mapping({"k": 5, "neighbour_search": "exact"}))  # fmt: skip
    analysis.symmetry(str(out / "symmetry.csv"), flagged_table=str(out / "flagged.csv"), structures=paths["structures"],
                      embeddings=paths["embeddings"], anchors=paths["anchors"],
                      settings=SymmetrySettings.from_mapping({}))  # fmt: skip
    paths.update(audit=str(out / "audit.zarr"), symmetry_table=str(out / "symmetry.csv"))
    planted = {"t": t, "t_structure": t_structure, "direction": direction, "projectors": projectors, "orbit": orbit,
               "compared": compared}  # fmt: skip
    return paths, planted


def _run(tmp_path, paths):
    out = tmp_path / "out"
    settings = PredictionFailureSettings.from_mapping({"k": 3, "bootstrap": 60, "permutations": 60})
    prediction_failure(str(out / "table.csv"), summary_table=str(out / "summary.csv"), structures=paths["structures"],
                       embeddings=paths["embeddings"], projections=paths["projections"], anchors=paths["anchors"],
                       audit=paths["audit"], symmetry_table=paths["symmetry_table"], settings=settings,
                       figure=str(out / "figure.png"))  # fmt: skip
    with open(out / "table.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(out / "summary.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    return out, rows, summary


def test_planted_disagreement_flags_planted_failures(tmp_path):
    """The second model departs by ``t`` per atom in its embeddings and forces and by the structure's ``t`` in its
    energy per atom: disagreement tracks force spread and energy spread (intervals above the chance range), the
    first model's formation energies are exact, and only the second model's forces break site symmetry, by the
    closed-form amount."""
    paths, planted = _study(tmp_path)
    out, rows, summary = _run(tmp_path, paths)
    assert (out / "figure.png").stat().st_size > 0
    assert set(rows[0]) == set(pf.COLUMNS)

    def row(signal, target, model="consensus", control="none"):
        (found,) = [r for r in rows if (r["signal"], r["target"], r["model"], r["control"]) ==
                    (signal, target, model, control)]  # fmt: skip
        return {k: float(v) if k not in ("signal", "target", "model", "level", "control") else v
                for k, v in found.items()}  # fmt: skip

    for target in ("force_spread", "energy_spread"):
        test = row("disagreement", target)
        assert test["value"] > 0.3 and test["ci_low"] > test["chance"] and test["p_value"] < 0.05, (target, test)
        assert abs(test["chance"]) < 0.1
        # given element and size (which also move the anchor-space distances), the planted relation is clearer
        partial = row("disagreement", target, control="element+size")
        assert partial["value"] > 0.6 and partial["ci_low"] > partial["chance_high"], (target, partial)
    n_compared = int(planted["compared"].sum())
    assert row("disagreement", "force_spread")["n"] == n_compared
    assert row("disagreement", "energy_spread")["n_structures"] == len(planted["t_structure"])

    by_kind = {(r["kind"], r["model"]): r for r in summary}
    assert float(by_kind["formation_error", "a"]["mae"]) < 1e-9  # references recovered exactly
    assert float(by_kind["formation_error", "b"]["mae"]) > 0.05
    n_train = int(round(0.7 * len(planted["t_structure"])))
    assert int(by_kind["formation_error", "a"]["n_train"]) == n_train
    # forbidden force, independently: the part of t * direction outside the allowed subspace, largest per orbit
    projectors, t, direction = planted["projectors"], planted["t"], planted["direction"]
    constrained = np.trace(projectors, axis1=1, axis2=2) < 2.5
    forbidden = t * np.linalg.norm(direction - np.einsum("nij,nj->ni", projectors, direction), axis=1)
    orbits = np.unique(planted["orbit"][constrained])
    expected = np.array([forbidden[planted["orbit"] == o].max() for o in orbits])
    assert int(by_kind["forbidden_force", "a"]["n"]) == len(orbits) == int(by_kind["forbidden_force", "b"]["n"])
    assert float(by_kind["forbidden_force", "a"]["max"]) < 1e-9
    assert int(by_kind["forbidden_force", "a"]["n_above"]) == 0
    assert float(by_kind["forbidden_force", "b"]["max"]) == pytest.approx(expected.max(), rel=1e-9)
    assert float(by_kind["forbidden_force", "b"]["median"]) == pytest.approx(np.median(expected), rel=1e-9)
    assert int(by_kind["forbidden_force", "b"]["n_above"]) == int((expected > 1e-3).sum())


def test_without_predictions_the_tables_are_empty_and_the_figure_says_why(tmp_path):
    paths, _ = _study(tmp_path, predictions=False)
    out, rows, summary = _run(tmp_path, paths)
    assert rows == [] and summary == []
    with open(out / "table.csv") as handle:
        assert handle.readline().strip().split(",") == pf.COLUMNS
    assert (out / "figure.png").stat().st_size > 0


def test_the_baseline_is_the_controls_own_ranking_and_undefined_when_they_fit_everything():
    """Per-element target means rank a target made of them perfectly (the baseline is 1 with one item per element
    short of saturation), and as many covariates as items give no baseline at all."""
    rng = np.random.default_rng(1)
    z = np.repeat([3, 8, 26], 10)
    target = np.select([z == 3, z == 8], [1.0, 2.0], 3.0) + 1e-3 * rng.normal(size=30)
    groups = np.arange(30)
    controls = pf.element_size_controls(z, np.ones(30))
    rows = pf.signal_tests({"s": rng.normal(size=30)}, target, groups, controls, {"target": "t", "model": "m",
                           "level": "atom"}, replicates=20, permutations=20, seed=0)  # fmt: skip
    baseline = next(r for r in rows if r["control"] == "baseline")
    # ranks of an element-driven target: within-element noise only breaks ties inside each element's block
    predicted = np.select([z == 3, z == 8], [5.5, 15.5], 25.5)
    from scipy.stats import spearmanr

    assert baseline["value"] == pytest.approx(spearmanr(predicted, target).statistic, rel=1e-9)
    saturated = pf.signal_tests({"s": rng.normal(size=4)}, rng.normal(size=4), np.arange(4), rng.normal(size=(4, 3)),
                                {"target": "t", "model": "m", "level": "atom"}, 5, 5, 0)  # fmt: skip
    assert all(np.isnan(r["value"]) for r in saturated if r["control"] != "none")
