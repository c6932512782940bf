"""Phonons by finite displacements (platonic.analysis.phonons) against closed forms: a simple cubic lattice of
nearest-neighbour springs, stable and unstable, and the cross-model spread of constructed frequencies."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import neighbor_list
from scipy import constants

from platonic.analysis import phonons

pytest.importorskip("phonopy")

A = 2.5  # Angstrom, the simple cubic lattice constant
MASS = 10.0  # amu
# THz per sqrt(eV / Angstrom^2 / amu) / (2 pi): an eigenvalue of the dynamical matrix in eV/Angstrom^2/amu -> THz
THZ = np.sqrt(constants.eV / constants.atomic_mass) / constants.angstrom / (2 * np.pi) / 1e12


class Springs(Calculator):
    """Central harmonic springs of stiffness ``k`` (eV/Angstrom^2) and rest length ``A`` between nearest
    neighbours of the simple cubic lattice (pairs closer than 1.2 A): E = sum over pairs of k / 2 (d - A)^2."""

    implemented_properties = ("energy", "forces")

    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        i, j, vector = neighbor_list("ijD", self.atoms, 1.2 * A)
        length = np.linalg.norm(vector, axis=1)
        stretch = length - A
        forces = np.zeros((len(self.atoms), 3))
        np.add.at(forces, i, (self.k * stretch / length)[:, None] * vector)
        self.results = {"energy": 0.25 * self.k * np.sum(stretch**2), "forces": forces}


def spring_modes(k: float, distance: float = 1e-4, mesh=(4, 4, 4)) -> phonons.PhononModes:
    """The springs' phonons. A displacement u across a spring stretches it by about u^2 / 2A, which gives the
    transverse branches (zero in the harmonic closed form) a frequency of order sqrt(k / m) u / A: 0.03 THz at
    phonopy's 0.01 Angstrom, under 1e-3 THz at the 1e-4 Angstrom used here. Along a spring the force is linear."""
    atoms = Atoms(numbers=[3], cell=np.eye(3) * A, pbc=True)
    atoms.set_masses([MASS])
    repeats = phonons.supercell_repeats(atoms.cell.array, 3 * A)
    phonon, supercells = phonons.displacements(atoms, repeats, distance, 1e-5)
    forces = []
    for cell in supercells:
        cell.calc = Springs(k)
        forces.append(cell.get_forces())
    return phonons.phonon_modes(phonon, np.array(forces), mesh)


def closed_form(k: float, qpoints: np.ndarray) -> np.ndarray:
    """Each axis's branch of the nearest-neighbour spring lattice: omega^2 = 2 k / m (1 - cos(2 pi q_i)), as THz
    (negative for an imaginary frequency), sorted per q-point."""
    squared = 2 * k / MASS * (1 - np.cos(2 * np.pi * qpoints))
    return np.sort(np.sign(squared) * np.sqrt(np.abs(squared)) * THZ, axis=1)


def test_supercell_repeats_reach_the_width_across_every_axis():
    assert phonons.supercell_repeats(np.eye(3) * 2.5, 7.5).tolist() == [3, 3, 3]
    assert phonons.supercell_repeats(np.diag([2.0, 4.0, 9.0]), 8.0).tolist() == [4, 2, 1]
    # fcc's primitive cell (a = 3.6): its faces are 3.6 / sqrt(3) = 2.078 A apart, so 9 A takes 5 repeats, not 4
    # (9 / |a_i| = 9 / 2.546 would give 4)
    assert phonons.supercell_repeats(bulk("Cu", "fcc", a=3.6).cell.array, 9.0).tolist() == [5, 5, 5]


def test_springs_give_the_closed_form_dispersion_and_no_imaginary_mode():
    modes = spring_modes(k=2.0)
    assert modes.weights.sum() == 64
    np.testing.assert_allclose(modes.frequencies, closed_form(2.0, modes.qpoints), atol=1e-3)
    # the largest frequency, at R = (1/2, 1/2, 1/2): sqrt(4 k / m) as THz
    assert modes.frequencies.max() == pytest.approx(np.sqrt(4 * 2.0 / MASS) * THZ, rel=1e-6)
    assert modes.gamma_residual < 1e-6
    assert modes.residual_force == 0.0
    assert phonons.imaginary_fraction(modes.frequencies, modes.weights, 0.1) == 0.0


def test_a_negative_spring_gives_imaginary_modes_in_the_closed_form_share():
    """With k < 0 the branch along axis i is imaginary wherever q_i != 0: on a 4 x 4 x 4 mesh 3 of every 4 points,
    so 3/4 of the modes."""
    modes = spring_modes(k=-1.0)
    np.testing.assert_allclose(modes.frequencies, closed_form(-1.0, modes.qpoints), atol=1e-3)
    assert phonons.imaginary_fraction(modes.frequencies, modes.weights, 0.1) == pytest.approx(0.75)
    # a tolerance above the largest imaginary frequency counts none
    assert phonons.imaginary_fraction(modes.frequencies, modes.weights, 10.0) == 0.0


def test_a_residual_force_is_subtracted():
    """A uniform force on every atom of every supercell (one that no displacement caused) changes nothing."""
    atoms = Atoms(numbers=[3], cell=np.eye(3) * A, pbc=True)
    atoms.set_masses([MASS])
    phonon, supercells = phonons.displacements(atoms, np.array([3, 3, 3]), 0.01, 1e-5)
    forces = []
    for cell in supercells:
        cell.calc = Springs(2.0)
        forces.append(cell.get_forces())
    forces = np.array(forces)
    plain = phonons.phonon_modes(phonon, forces, (4, 4, 4))
    shifted = phonons.phonon_modes(phonon, forces + [0.3, -0.2, 0.1], (4, 4, 4))
    np.testing.assert_allclose(shifted.frequencies, plain.frequencies, atol=1e-6)
    assert shifted.residual_force == pytest.approx(np.sqrt(0.14))
    with pytest.raises(ValueError, match="the perfect supercell, then each displaced one"):
        phonons.phonon_modes(phonon, forces[1:], (4, 4, 4))


def test_imaginary_fraction_weights_each_q_point():
    frequencies = np.array([[-0.5, 1.0, 2.0], [-0.05, 3.0, 4.0]])
    # q-point 0 stands for 3 mesh points, q-point 1 for 1: one mode of 3 * 3 + 1 * 3 = 12 is below -0.1 three times
    assert phonons.imaginary_fraction(frequencies, np.array([3, 1]), 0.1) == pytest.approx(3 / 12)
    assert phonons.imaginary_fraction(frequencies, np.array([3, 1]), 0.01) == pytest.approx(4 / 12)


def test_frequency_spread_of_scaled_models_is_the_scales_spread():
    """Models whose frequencies are (1 + e_m) g of one g: the relative spread is std(e) / (1 + mean(e)) whatever g,
    and the RMS spread std(e) times the weighted root mean square of g."""
    rng = np.random.default_rng(0)
    g = rng.uniform(0.5, 9.0, size=(7, 6))
    weights = rng.integers(1, 9, size=7).astype(float)
    e = np.array([0.03, -0.02, 0.10, 0.0])
    relative, rms = phonons.frequency_spread((1 + e)[:, None, None] * g, weights)
    assert relative == pytest.approx(e.std() / (1 + e.mean()), rel=1e-12)
    assert rms == pytest.approx(e.std() * np.sqrt(weights @ (g**2).sum(axis=1) / (weights.sum() * 6)), rel=1e-12)
    identical = phonons.frequency_spread(np.stack([g, g, g]), weights)
    assert identical == pytest.approx((0.0, 0.0), abs=1e-15)


class Bonds(Calculator):
    """Harmonic springs of stiffness ``k`` on the bonds of a reference cell (pairs closer than ``cutoff``), at their
    reference lengths: any crystal, at rest in its reference geometry. A model whose ``k`` is s times another's has
    force constants s times as large, so frequencies sqrt(s) times as large."""

    implemented_properties = ("energy", "forces")

    def __init__(self, k: float, reference: Atoms, cutoff: float):
        super().__init__()
        self.k = k
        self.i, self.j, shifts = neighbor_list("ijS", reference, cutoff)
        self.offsets = shifts @ reference.cell.array
        self.rest = np.linalg.norm(reference.positions[self.j] - reference.positions[self.i] + self.offsets, axis=1)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        positions = self.atoms.positions
        vector = positions[self.j] - positions[self.i] + self.offsets
        length = np.linalg.norm(vector, axis=1)
        stretch = length - self.rest
        forces = np.zeros((len(self.atoms), 3))
        np.add.at(forces, self.i, (self.k * stretch / length)[:, None] * vector)
        self.results = {"energy": 0.25 * self.k * np.sum(stretch**2), "forces": forces}


def _force_store(cells_path, model: str, k: float, skip: str | None, root) -> str:
    """What the embed stage writes for a potential on the supercells (embedding, valid, exclusion reasons, forces):
    springs of stiffness ``k`` on each supercell's nearest-neighbour bonds; the supercells of parent ``skip`` left
    out as an embed job leaves out a structure with an element its model does not know."""
    import xarray as xr

    from platonic.store import dataset_to_atoms, open_store, write_store

    cells = open_store(cells_path, kind="structures")
    atoms, _ = dataset_to_atoms(cells)
    parent = np.array([str(p) for p in cells["parent"].values])
    forces, valid, reasons = [], [], []
    for s, cell in enumerate(atoms):
        perfect = atoms[s - int(cells["displacement"].values[s])]
        nearest = perfect.get_all_distances(mic=True)[np.triu_indices(len(perfect), 1)].min()
        left_out = parent[s] == skip
        cell.calc = Bonds(k, perfect, 1.1 * nearest)
        forces.append(np.full((len(cell), 3), np.nan) if left_out else cell.get_forces())
        valid.append(np.full(len(cell), not left_out))
        reasons.append("elements the model does not know: Cs" if left_out else "")
    n = int(cells.attrs["n_atoms"])
    store = xr.Dataset(
        {"embedding": (("atom", "feature"), np.zeros((n, 2), np.float32)), "valid": ("atom", np.concatenate(valid)),
         "exclusion_reason": ("structure", np.array(reasons, dtype=object)),
         "forces": (("atom", "cartesian"), np.concatenate(forces))},
        coords={"atom": np.arange(n), "cartesian": ["x", "y", "z"]},
        attrs={"kind": "embedding", "model": model, "structure_set_hash": cells.attrs["structure_set_hash"],
               "predictions": "forces"},
    )  # fmt: skip
    return str(write_store(store, root / f"forces/{model}.zarr"))


def test_the_phonons_stage_on_spring_models_of_a_synthetic_study(tmp_path):
    """Three named structures of a synthetic study (rock salt, CsCl, fcc Cu), three spring models: b four times as
    stiff as a (its frequencies twice a's, so the relative spread of the two is std(1, 2) / mean(1, 2) = 1/3), c
    unstable (k < 0: every fcc mode but Gamma's imaginary) and without the CsCl structure, so left out of the spread.
    The latent signals are the structures' means of the study's audit disagreement."""
    import csv

    import xarray as xr
    from scipy.stats import spearmanr
    from test_prediction_failure import _study

    from platonic.settings import PhononSettings, PredictionFailureSettings
    from platonic.stages.phonons import phonon_supercells
    from platonic.stages.phonons import phonons as phonon_stage

    paths, _ = _study(tmp_path)
    named = ("syn-0", "syn-1", "syn-5")
    settings = PhononSettings.from_mapping({"structures": list(named), "supercell_length": 5.0, "mesh": [8, 8, 8]})
    cells = str(tmp_path / "supercells.zarr")
    phonon_supercells(cells, structures=paths["structures"], settings=settings)
    forces = [_force_store(cells, "a", 1.0, None, tmp_path), _force_store(cells, "b", 4.0, None, tmp_path),
              _force_store(cells, "c", -1.0, "syn-1", tmp_path)]  # fmt: skip
    table, correlations, figure = (str(tmp_path / name) for name in ("phonons.csv", "tests.csv", "phonons.png"))
    signals = PredictionFailureSettings.from_mapping({"k": 3, "bootstrap": 30, "permutations": 30})
    phonon_stage(table, correlations=correlations, structures=paths["structures"], supercells=cells, forces=forces,
                 embeddings=paths["embeddings"], projections=paths["projections"], anchors=paths["anchors"],
                 audit=paths["audit"], symmetry_table=paths["symmetry_table"], settings=settings, signals=signals,
                 figure=figure)  # fmt: skip
    with open(table, newline="") as handle:
        rows = {(r["material_id"], r["model"]): r for r in csv.DictReader(handle)}
    assert set(rows) == {(s, m) for s in named for m in "abc"}
    assert [rows[s, "a"]["formula"] for s in named] == ["ClNa", "ClCs", "Cu"]
    for s in named:
        assert float(rows[s, "a"]["frequency_spread"]) == pytest.approx(1 / 3, rel=1e-6)
        assert int(rows[s, "a"]["n_models_compared"]) == 2
        assert float(rows[s, "b"]["max_frequency"]) == pytest.approx(2 * float(rows[s, "a"]["max_frequency"]))
        assert float(rows[s, "a"]["imaginary_fraction"]) == float(rows[s, "b"]["imaginary_fraction"]) == 0.0
        assert float(rows[s, "a"]["residual_force"]) < 1e-12  # the springs rest in the study's geometry
    assert "elements the model does not know: Cs" in rows["syn-1", "c"]["excluded"]
    assert rows["syn-1", "c"]["imaginary_fraction"] == "nan" or rows["syn-1", "c"]["imaginary_fraction"] == ""
    # fcc with k < 0: three imaginary branches at every point of the 8 x 8 x 8 mesh but Gamma
    assert float(rows["syn-5", "c"]["imaginary_fraction"]) == pytest.approx(1 - 1 / 512)
    # the latent signals: each structure's mean over its compared atoms of the audit's disagreement
    audit = xr.open_zarr(paths["audit"])
    structure = xr.open_zarr(paths["structures"])["structure_index"].values[audit["atom"].values]
    for s in named:
        expected = float(audit["disagreement"].values[structure == int(s.split("-")[1])].mean())
        assert float(rows[s, "a"]["disagreement"]) == pytest.approx(expected, rel=1e-9)
    with open(correlations, newline="") as handle:
        tests = {(r["signal"], r["target"]): r for r in csv.DictReader(handle)}
    assert set(tests) == {(g, t) for g in ("disagreement", "atypicality", "symmetry_spread")
                          for t in ("frequency_spread", "imaginary_fraction")}  # fmt: skip
    x = [float(rows[s, "a"]["disagreement"]) for s in named]
    y = [float(rows[s, "a"]["frequency_spread"]) for s in named]
    test = tests["disagreement", "frequency_spread"]
    assert int(test["n"]) == 3 and int(test["n_structures"]) == 3
    value = float(test["value"])
    assert value == pytest.approx(spearmanr(x, y).statistic, nan_ok=True)
    assert (tmp_path / "phonons.png").stat().st_size > 0


def test_the_phonons_stage_says_what_is_wrong(tmp_path):
    from test_prediction_failure import _study

    from platonic.settings import PhononSettings
    from platonic.stages.phonons import phonon_supercells

    paths, _ = _study(tmp_path)
    with pytest.raises(ValueError, match=r"phonons.structures names mp-149, not in the structure store .* name"):
        phonon_supercells(str(tmp_path / "cells.zarr"), structures=paths["structures"],
                          settings=PhononSettings.from_mapping({"structures": ["syn-0", "mp-149"]}))  # fmt: skip
    with pytest.raises(ValueError, match="phonons.structures is empty"):
        phonon_supercells(str(tmp_path / "cells.zarr"), structures=paths["structures"],
                          settings=PhononSettings.from_mapping({}))  # fmt: skip


def test_the_phonons_section_is_off_by_default_and_config_phonons_extends_the_default_study():
    """No structures by default (nothing runs); config/phonons.yaml merged over config/config.yaml (as Snakemake
    merges two --configfiles) validates, names ten study structures and resolves phonons.models to the nine trained
    potentials; a control or an unknown model in phonons.models is refused with the key named."""
    from pathlib import Path

    import yaml

    from platonic.config import ConfigError, validate_config
    from platonic.settings import PhononSettings
    from platonic.structures import read_structures

    root = Path(__file__).resolve().parents[1]
    default = yaml.safe_load((root / "config/config.yaml").read_text())
    assert "phonons" not in default
    assert validate_config(default)["phonons"]["structures"] == []
    assert PhononSettings().structures == () and PhononSettings().distance == 0.01
    merged = yaml.safe_load((root / "config/config.yaml").read_text())
    merged["phonons"] = yaml.safe_load((root / "config/phonons.yaml").read_text())["phonons"]
    resolved = validate_config(merged)["phonons"]
    assert resolved["models"] == [m for m, spec in default["models"].items() if not spec.get("control")]
    assert len(resolved["models"]) == 9 and len(resolved["structures"]) == 10
    study = read_structures(root / default["dataset"]["path"], limit=default["dataset"]["limit"])
    assert set(resolved["structures"]) <= set(study.ids)
    refused = {"soap": "phonons.models names 'soap', which computes no forces",
               "chgnet-3.0": "phonons.models names 'chgnet-3.0', which is not one of"}  # fmt: skip
    for model, message in refused.items():
        models = ["diep", model]
        broken = yaml.safe_load((root / "config/config.yaml").read_text())
        broken["phonons"] = {"models": models}
        with pytest.raises(ConfigError, match=message):
            validate_config(broken)
