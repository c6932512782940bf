"""The embed stage's bookkeeping, with a tiny closed-form adapter (features computed from Z)."""

from pathlib import Path

import ase
import numpy as np
import pytest

from platonic.embedding import embed_structures, embedding_dataset
from platonic.models.base import Adapter
from platonic.store import structures_to_dataset


class ElementAdapter(Adapter):
    """features = [Z, Z^2, n_atoms]; knows elements up to Ne; poisons structures containing O;
    refuses (raises for the whole batch) structures containing He."""

    family = "test"
    package = "numpy"

    def _load(self):
        return Path(__file__), frozenset(range(1, 11)), "closed form"

    def _embed_batch(self, structures):
        out = []
        if any(2 in atoms.numbers for atoms in structures):
            raise ValueError("helium is isolated")
        for atoms in structures:
            z = atoms.numbers.astype(float)
            x = np.stack([z, z**2, np.full_like(z, len(atoms))], axis=1)
            if 8 in atoms.numbers:
                x[0, 0] = np.nan
            out.append(x)
        return out


def _cubic(formula):
    atoms = ase.Atoms(formula, cell=[10, 10, 10], pbc=True)
    atoms.positions = np.arange(len(atoms))[:, None] * [1.5, 0, 0]
    return atoms


def test_unsupported_and_non_finite_structures_are_excluded_not_fatal():
    structures = [_cubic("LiF"), _cubic("NaCl"), _cubic("CO"), _cubic("BeH2")]
    features, valid, reasons = embed_structures(ElementAdapter(batch_size=3), structures, progress=False)
    assert features.shape == (9, 3)
    np.testing.assert_array_equal(valid, [1, 1, 0, 0, 0, 0, 1, 1, 1])
    assert reasons[0] == reasons[3] == ""
    assert "Na, Cl" in reasons[1]
    assert "not finite" in reasons[2]
    np.testing.assert_array_equal(features[[0, 1]], [[3, 9, 2], [9, 81, 2]])
    np.testing.assert_array_equal(features[6:], [[4, 16, 3], [1, 1, 3], [1, 1, 3]])
    assert np.isnan(features[~valid]).all()


def test_a_structure_the_model_rejects_excludes_only_itself():
    structures = [_cubic("LiF"), _cubic("HeH"), _cubic("BeH2")]
    features, valid, reasons = embed_structures(ElementAdapter(batch_size=3), structures, progress=False)
    np.testing.assert_array_equal(valid, [1, 1, 0, 0, 1, 1, 1])
    assert reasons == ["", "model failed: ValueError: helium is isolated", ""]
    np.testing.assert_array_equal(features[4:], [[4, 16, 3], [1, 1, 3], [1, 1, 3]])


def test_nothing_embeddable_is_an_error():
    with pytest.raises(ValueError, match="could not embed any structure"):
        embed_structures(ElementAdapter(), [_cubic("NaCl")], progress=False)


def test_embedding_store_carries_the_structure_index_and_provenance(few_structures):
    from platonic.structures import StructureSet

    light = StructureSet(atoms=[_cubic("LiF"), _cubic("BeH2")], ids=["a", "b"])
    structure_store = structures_to_dataset(light)
    adapter = ElementAdapter()
    features, valid, reasons = embed_structures(adapter, light.atoms, progress=False)
    ds = embedding_dataset(structure_store, features, valid, reasons, "elements", adapter.provenance())
    np.testing.assert_array_equal(ds["Z"].values, [3, 9, 4, 1, 1])
    np.testing.assert_array_equal(ds["structure_id"].values, ["a", "a", "b", "b", "b"])
    np.testing.assert_array_equal(ds["site"].values, [0, 1, 0, 1, 2])
    assert ds.attrs["model"] == "elements"
    assert ds.attrs["structure_set_hash"] == structure_store.attrs["structure_set_hash"]
    assert len(ds.attrs["model_checkpoint_sha256"]) == 64
