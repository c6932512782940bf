import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from platonic.store import open_store, structures_to_dataset, write_store
from platonic.structures import StructureSet, structure_set_hash
from platonic.symmetry import DEFAULT_SYMPREC, crystal_orbits, structure_set_orbits, symmetry_breaking


def independent_hash(atoms, ids) -> str:
    """sha256 over each structure's id, atomic numbers (int64), cell and positions (float64) and pbc, in order:
    what the structure-set hash is documented to cover, computed here without platonic's code."""
    import hashlib

    digest = hashlib.sha256()
    for structure_id, structure in zip(ids, atoms, strict=True):
        digest.update(structure_id.encode())
        digest.update(np.asarray(structure.numbers, dtype=np.int64).tobytes())
        digest.update(np.asarray(structure.cell[:], dtype=np.float64).tobytes())
        digest.update(np.asarray(structure.positions, dtype=np.float64).tobytes())
        digest.update(np.asarray(structure.pbc, dtype=bool).tobytes())
    return digest.hexdigest()


def rocksalt() -> Atoms:
    return bulk("NaCl", "rocksalt", a=5.64, cubic=True)  # Na Cl Na Cl ... on two fcc lattices


def perovskite() -> Atoms:
    fractional = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return Atoms("SrTiO3", scaled_positions=fractional, cell=np.eye(3) * 3.905, pbc=True)


def random_p1(seed: int = 3) -> Atoms:
    rng = np.random.default_rng(seed)
    cell = np.array([[5.1, 0.3, 0.0], [0.7, 5.9, 0.0], [0.4, 0.2, 6.7]])
    return Atoms("Si6", scaled_positions=rng.random((6, 3)), cell=cell, pbc=True)


def test_rocksalt_conventional_cell_has_two_orbits_of_four():
    orbits = crystal_orbits(rocksalt())
    np.testing.assert_array_equal(orbits.representative, [0, 1, 0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(orbits.multiplicity, [4] * 8)
    assert (orbits.n_orbits, orbits.spacegroup, orbits.reason) == (2, 225, "")


def test_cubic_perovskite_has_orbits_of_one_one_and_three():
    orbits = crystal_orbits(perovskite())
    np.testing.assert_array_equal(orbits.representative, [0, 1, 2, 2, 2])
    np.testing.assert_array_equal(orbits.multiplicity, [1, 1, 3, 3, 3])
    assert orbits.spacegroup == 221  # Pm-3m


def test_representative_is_the_lowest_index_whatever_the_order():
    atoms = perovskite()[[3, 0, 4, 1, 2]]  # O Sr O Ti O
    orbits = crystal_orbits(atoms)
    np.testing.assert_array_equal(orbits.representative, [0, 1, 0, 3, 0])
    np.testing.assert_array_equal(orbits.multiplicity, [3, 1, 3, 1, 3])


def test_random_p1_cell_keeps_every_atom_distinct():
    orbits = crystal_orbits(random_p1())
    np.testing.assert_array_equal(orbits.representative, np.arange(6))
    np.testing.assert_array_equal(orbits.multiplicity, np.ones(6))
    assert orbits.spacegroup == 1


def test_small_distortion_merges_at_loose_symprec_and_splits_at_tight():
    atoms = rocksalt()
    atoms.positions[2, 0] += 0.005  # one Na moved by 0.005 A
    loose, tight = crystal_orbits(atoms, symprec=0.01), crystal_orbits(atoms, symprec=1e-3)
    np.testing.assert_array_equal(loose.representative, [0, 1, 0, 1, 0, 1, 0, 1])
    assert loose.spacegroup == 225
    # at 1e-3 A the moved Na is alone; the other three Na and the Cl split by the lowered symmetry
    assert tight.representative[2] == 2 and tight.multiplicity[2] == 1
    assert tight.n_orbits > 2 and tight.spacegroup < 225
    assert tight.multiplicity.sum() == sum(np.bincount(tight.representative)[tight.representative])


def test_unanalysable_structures_get_one_orbit_per_atom_and_a_reason():
    molecule = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    orbits = crystal_orbits(molecule)
    np.testing.assert_array_equal(orbits.representative, [0, 1, 2])
    np.testing.assert_array_equal(orbits.multiplicity, [1, 1, 1])
    assert orbits.spacegroup == 0 and "periodic" in orbits.reason
    # two atoms closer than symprec: spglib itself gives up
    close = Atoms("Si2", positions=[[0, 0, 0], [0.05, 0, 0]], cell=np.eye(3) * 5.0, pbc=True)
    failed = crystal_orbits(close, symprec=0.1)
    np.testing.assert_array_equal(failed.representative, [0, 1])
    assert failed.spacegroup == 0 and "spglib" in failed.reason
    # at a tolerance below their distance the pair is an inversion-related orbit of two (P4/mmm)
    assert crystal_orbits(close, symprec=1e-3).multiplicity.tolist() == [2, 2]
    with pytest.raises(ValueError, match="symprec"):
        crystal_orbits(rocksalt(), symprec=0.0)


def test_structure_set_orbits_use_global_atom_indices():
    orbits = structure_set_orbits([perovskite(), rocksalt(), Atoms("He", positions=[[0, 0, 0]])])
    np.testing.assert_array_equal(orbits.orbit, [0, 1, 2, 2, 2, *([5, 6] * 4), 13])
    np.testing.assert_array_equal(orbits.multiplicity, [1, 1, 3, 3, 3, *[4] * 8, 1])
    np.testing.assert_array_equal(orbits.spacegroup, [221, 225, 0])
    assert orbits.reasons[:2] == ["", ""] and "periodic" in orbits.reasons[2]
    assert orbits.n_orbits == 3 + 2 + 1


def test_structure_store_carries_orbits_and_keeps_its_hash(tmp_path, few_structures):
    path = write_store(structures_to_dataset(few_structures, source="sample"), tmp_path / "s.zarr")
    ds = open_store(path)
    # the orbits do not enter the hash: it covers the structures alone (a hash pinned to a constant would also pin
    # the float bits of this environment's CIF parsing, which changed with the packages between sessions)
    assert ds.attrs["structure_set_hash"] == independent_hash(few_structures.atoms, few_structures.ids)
    assert ds.attrs["structure_set_hash"] == structure_set_hash(few_structures.atoms, few_structures.ids)
    expected = structure_set_orbits(few_structures.atoms, DEFAULT_SYMPREC)
    np.testing.assert_array_equal(ds["orbit"].values, expected.orbit)
    np.testing.assert_array_equal(ds["multiplicity"].values, expected.multiplicity)
    assert ds.attrs["n_atoms"] == 85 and ds.attrs["symprec"] == DEFAULT_SYMPREC
    assert ds.attrs["n_orbits"] == np.unique(ds["orbit"].values).size
    # independently: an orbit's multiplicity is how many atoms name it; all lie in one structure, one element
    orbit = ds["orbit"].values
    np.testing.assert_array_equal(ds["multiplicity"].values, np.bincount(orbit)[orbit])
    np.testing.assert_array_equal(ds["structure_index"].values[orbit], ds["structure_index"].values)
    np.testing.assert_array_equal(ds["Z"].values[orbit], ds["Z"].values)
    assert (orbit <= ds["atom"].values).all()
    assert list(ds["symmetry_reason"].values) == [""] * 6
    # spglib at 1e-3 A agrees with the space groups Materials Project lists, except for mp-1218148
    # (Sr2La2Fe2V2O12, listed as F-43m), whose 20 atoms sit up to ~0.01 (fractional) off any symmetric site
    np.testing.assert_array_equal(ds["symmetry_spacegroup"].values, [139, 2, 166, 1, 160, 139])
    np.testing.assert_array_equal(ds["spacegroup_number"].values, [139, 2, 166, 216, 160, 139])
    assert ds["material_id"].values[3] == "mp-1218148"
    assert ds["multiplicity"].values[ds["structure_index"].values == 3].max() == 1


def test_store_records_unanalysable_structures():
    structures = StructureSet(atoms=[rocksalt(), Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])], ids=["a", "b"])
    ds = structures_to_dataset(structures, symprec=0.01)
    np.testing.assert_array_equal(ds["orbit"].values, [0, 1, 0, 1, 0, 1, 0, 1, 8, 9])
    assert ds.attrs["n_orbits"] == 4 and ds.attrs["symprec"] == 0.01
    assert ds.attrs["n_symmetry_unanalysed"] == 1
    assert ds["symmetry_reason"].values[0] == "" and "periodic" in ds["symmetry_reason"].values[1]


@pytest.mark.slow
def test_bundled_sample_orbit_counts_by_symprec(sample_csv):
    from platonic.structures import read_structures

    atoms = read_structures(sample_csv).atoms
    counts = {symprec: structure_set_orbits(atoms, symprec).n_orbits for symprec in (1e-5, 1e-3)}
    assert counts == {1e-5: 4501, 1e-3: 4242}  # 1e-2: 4102, 0.1: 4044 (see platonic.symmetry)


def _invariant_embeddings(orbit, Z, d=8, seed=0):
    """A model that gives every orbit its own random vector and each copy exactly that vector."""
    rng = np.random.default_rng(seed)
    per_orbit = rng.normal(size=(orbit.max() + 1, d))
    return per_orbit[orbit] + 0.1 * Z[:, None]


def test_symmetry_breaking_flags_exactly_the_perturbed_orbit():
    orbits = structure_set_orbits([perovskite(), rocksalt(), rocksalt(), perovskite()])
    Z = np.concatenate([perovskite().numbers, rocksalt().numbers, rocksalt().numbers, perovskite().numbers])
    structure = np.repeat(np.arange(4), [5, 8, 8, 5])
    X = _invariant_embeddings(orbits.orbit, Z)
    clean = symmetry_breaking(X, orbits.orbit, structure, Z)
    assert not clean.flagged.any()
    np.testing.assert_allclose(clean.spread, 0.0, atol=1e-12)
    # perturb the copies of one orbit only: the Cl of the second rocksalt cell (global representative 14)
    members = np.flatnonzero(orbits.orbit == 14)
    assert members.size == 4
    broken = X.copy()
    offsets = np.zeros((4, X.shape[1]))
    offsets[:, 0] = [0.3, -0.1, -0.1, -0.1]  # mean offset 0: the farthest copy is 0.3 from the mean
    broken[members] += offsets
    result = symmetry_breaking(broken, orbits.orbit, structure, Z)
    np.testing.assert_array_equal(result.orbit[result.flagged], [14])
    np.testing.assert_allclose(result.spread[result.orbit == 14], 0.3)
    np.testing.assert_allclose(result.relative[result.orbit == 14], 0.3 / result.scale)
    np.testing.assert_array_equal(result.structure_flagged, [0, 0, 1, 0])
    np.testing.assert_array_equal(result.elements, [8, 11, 17, 22, 38])
    np.testing.assert_array_equal(result.element_flagged, [0, 0, 1, 0, 0])
    np.testing.assert_allclose(result.element_max[result.elements == 17], 0.3 / result.scale)
    assert np.isnan(result.element_median[result.elements == 38])  # Sr: every orbit a single atom
    np.testing.assert_array_equal(result.multiplicity[result.orbit == 14], [4])


def test_symmetry_breaking_scale_is_the_median_nearest_other_orbit_distance():
    # three single-atom orbits on a line at 0, 1 and 3, plus a duplicate of the first in another structure
    X = np.array([[0.0], [1.0], [3.0], [0.0]])
    orbit = np.array([0, 1, 2, 3])
    structure = np.array([0, 0, 0, 1])
    result = symmetry_breaking(X + 10.0, orbit, structure, np.array([1, 1, 1, 1]))
    # nearest distinct means: 1 (from 0), 1 (from 1), 2 (from 3), 1 (from the duplicate): median 1
    assert result.scale == pytest.approx(1.0)
    assert symmetry_breaking(X, orbit, structure, np.ones(4), scale=2.5).scale == 2.5


def test_symmetry_breaking_refuses_orbits_across_structures():
    with pytest.raises(ValueError, match="more than one structure"):
        symmetry_breaking(np.zeros((2, 3)), np.array([0, 0]), np.array([0, 1]), np.array([1, 1]), scale=1.0)
    with pytest.raises(ValueError, match="n_atoms"):
        symmetry_breaking(np.zeros((3, 3)), np.array([0, 0]), np.array([0, 1]), np.array([1, 1]))
