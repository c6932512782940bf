"""The embed stage's bookkeeping, with a tiny closed-form adapter (features computed from Z)."""

from pathlib import Path

import ase
import numpy as np
import pytest

from platonic.embedding import embed_structures, embedding_dataset
from platonic.models.base import Adapter, Loaded
from platonic.store import structures_to_dataset


class ElementAdapter(Adapter):
    """features = [Z, Z^2, n_atoms]; knows elements up to Ne; poisons structures containing O;
    refuses (raises for the whole batch) structures containing He."""

    family = "test"
    package = "numpy"

    def _load(self):
        return Loaded(Path(__file__), frozenset(range(1, 11)), "closed form")

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


class LayeredAdapter(ElementAdapter):
    """Two layers of different widths from one pass: layer 0 ``z`` = [Z], layer 1 = ElementAdapter's [Z, Z^2,
    n_atoms] (also the default features, "closed form"). O poisons layer 0 only; He fails the batch."""

    family = "test-layers"

    def _layer_names(self):
        return ["z", "closed form"]

    def _embed_batch_layers(self, structures, names):
        full = [np.nan_to_num(x, nan=8.0) for x in self._embed_batch(structures)]  # NaN in layer 0 instead
        layer0 = [np.where(atoms.numbers[:, None] == 8, np.nan, atoms.numbers[:, None] * 1.0) for atoms in structures]
        return [{"z": a, "closed form": b} for a, b in zip(layer0, full, strict=True)]


def test_a_layer_store_holds_every_layer_at_its_own_width(tmp_path):
    """Each layer its own variable and feature dimension; a structure non-finite in one layer is excluded from
    all; the store reads back through ``xr.open_zarr`` and `layer_embedding` gives each layer as (atom, feature)."""
    import xarray as xr

    from platonic.embedding import embed_sharded, layer_embedding
    from platonic.store import write_store
    from platonic.structures import StructureSet

    light = StructureSet(atoms=[_cubic("LiF"), _cubic("NaCl"), _cubic("CO"), _cubic("HeH"), _cubic("BeH2")],
                         ids=list("abcde"))  # fmt: skip
    adapter = LayeredAdapter(layers="all", batch_size=2)
    features, valid, reasons = embed_structures(adapter, light.atoms, progress=False)
    assert sorted(features) == ["embedding", "embedding_layer_0", "embedding_layer_1"]
    assert features["embedding_layer_0"].shape == (11, 1) and features["embedding_layer_1"].shape == (11, 3)
    np.testing.assert_array_equal(valid, [1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1])
    assert reasons[1].startswith("elements not supported") and "not finite" in reasons[2]
    assert reasons[3] == "model failed: ValueError: helium is isolated"
    np.testing.assert_array_equal(features["embedding_layer_0"][valid], [[3], [9], [4], [1], [1]])
    np.testing.assert_array_equal(features["embedding"], features["embedding_layer_1"])
    # resumable shards of one structure each give the same numbers
    sharded = embed_sharded(adapter, light.atoms, tmp_path / "shards", 1, "f", progress=False)
    again = embed_sharded(adapter, light.atoms, tmp_path / "shards", 1, "f", progress=False)  # read back
    for result in (sharded, again):
        for name, values in features.items():
            np.testing.assert_array_equal(result[0][name], values)
    ds = embedding_dataset(structures_to_dataset(light), features, valid, reasons, "layered", adapter.provenance(),
                           layers=adapter.selected_layers)  # fmt: skip
    write_store(ds, tmp_path / "layered.zarr")
    back = xr.open_zarr(tmp_path / "layered.zarr", consolidated=False)
    assert back["embedding_layer_0"].dims == ("atom", "feature_layer_0") and back.sizes["feature_layer_0"] == 1
    assert back["embedding_layer_1"].dims == ("atom", "feature_layer_1") and back.sizes["feature_layer_1"] == 3
    assert back["layer"].values.tolist() == [0, 1] and back["layer_name"].values.tolist() == ["z", "closed form"]
    assert back.attrs["model_layers"] == ["z", "closed form"] and back.attrs["model_layer"] == "closed form"
    for layer, expected in ((0, features["embedding_layer_0"]), ("closed form", features["embedding_layer_1"])):
        one = layer_embedding(back, layer)
        assert one.dims == ("atom", "feature")
        np.testing.assert_array_equal(one.values, expected)
        np.testing.assert_array_equal(one["feature"].values, np.arange(expected.shape[1]))
    np.testing.assert_array_equal(layer_embedding(back).values, features["embedding"])
    with pytest.raises(ValueError, match="features hold"):
        embedding_dataset(structures_to_dataset(light), features, valid, reasons, "x", {}, layers=((0, "z"),))
