"""Predictions beside embeddings: each potential's energy per atom, forces and stress from the forward pass its
features come from equal its upstream ASE calculator's, the features stay bit for bit those of a pass without
predictions, and the store carries them (with units) through shards and the one-by-one fallback; controls have none.
"""

from __future__ import annotations

import importlib.util

import ase
import numpy as np
import pytest
from test_embedding import LayeredAdapter, _cubic

from platonic.embedding import PREDICTIONS, embed_sharded, embed_structures, embedding_dataset
from platonic.models.base import Prediction
from platonic.settings import EmbedSettings, ModelSpec
from platonic.store import structures_to_dataset


def _chgnet_calculator():
    from chgnet.model.dynamics import CHGNetCalculator

    return CHGNetCalculator(use_device="cpu")  # CHGNet 0.3.0, stress converted from GPa with ase.units.GPa


def _sevenn_calculator(checkpoint, modal=None):
    def build():
        from sevenn.calculator import SevenNetCalculator

        return SevenNetCalculator(checkpoint, device="cpu", modal=modal)

    return build


def _diep_calculator():
    from diep.pretrained import make_calculator

    return make_calculator(device="cpu")  # DIEPCalculator, stress in eV/A^3


# (family, adapter arguments, upstream ASE calculator): the checkpoints the default study configures
POTENTIALS = {
    "chgnet-0.3.0": ("chgnet", {"checkpoint": "0.3.0", "layers": "all"}, _chgnet_calculator),
    "sevennet-0-11jul2024": (
        "sevenn",
        {"checkpoint": "7net-0_11Jul2024", "layers": "all"},
        _sevenn_calculator("7net-0_11Jul2024"),
    ),
    "sevennet-mf-0": ("sevenn", {"checkpoint": "7net-mf-0", "modal": "PBE"}, _sevenn_calculator("7net-mf-0", "PBE")),
    "diep": ("diep", {"checkpoint": "diep_fold1", "layers": "all"}, _diep_calculator),
}


@pytest.mark.parametrize("model", list(POTENTIALS))
def test_predictions_equal_the_upstream_calculator_and_leave_the_features_alone(model, few_structures):
    """Four MP-20 structures in one batch of four. The calculator runs one structure at a time, so sums over the
    batch's atoms are ordered differently in float32: the tolerance is float32 rounding of those sums (relative
    1e-5 of the energy, 1e-5 eV/A of forces and 1e-6 eV/A^3 (0.16 MPa) of stress), far below any physical signal.
    """
    family, arguments, calculator = POTENTIALS[model]
    if importlib.util.find_spec(family) is None:
        pytest.skip(f"{family} is an optional model package; install platonic[{family}]")
    from platonic.models import load_adapter

    structures = few_structures.atoms[:4]
    adapter = load_adapter(family, device="cpu", batch_size=4, **arguments)
    features, valid, reasons = embed_structures(adapter, structures, progress=False, predict=True)
    plain = embed_structures(adapter, structures, progress=False)[0]
    plain = plain if isinstance(plain, dict) else {"embedding": plain}
    assert valid.all() and not any(reasons)
    for variable, values in plain.items():  # the predicting pass's features, bit for bit
        np.testing.assert_array_equal(features[variable], values)
    upstream = calculator()
    counts = [len(atoms) for atoms in structures]
    forces = np.split(features["forces"], np.cumsum(counts)[:-1])
    predicted = zip(structures, features["energy_per_atom"], forces, features["stress"], strict=True)
    for atoms, energy, force, stress in predicted:
        atoms = atoms.copy()
        atoms.calc = upstream
        np.testing.assert_allclose(energy, atoms.get_potential_energy() / len(atoms), rtol=1e-5)
        np.testing.assert_allclose(force, atoms.get_forces(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(stress, atoms.get_stress(voigt=True), rtol=0, atol=1e-6)
    assert features["energy_per_atom"].dtype == features["forces"].dtype == features["stress"].dtype == np.float64


class PredictingAdapter(LayeredAdapter):
    """`LayeredAdapter` as a potential with closed-form predictions: energy per atom = -mean Z, forces = positions
    minus their mean, stress = (Z sum, 0, 0, 0, 0, n_atoms)."""

    family = "test-predicting"
    predicts = True

    def _embed_predict_batch(self, structures, names):
        features = self._embed_batch_layers(structures, names)
        for atoms in structures:
            if "He" in atoms.get_chemical_symbols():
                raise ValueError("helium is isolated")
        return [(item, _closed_form(atoms)) for item, atoms in zip(features, structures, strict=True)]


def _closed_form(atoms: ase.Atoms) -> Prediction:
    z = atoms.numbers
    return Prediction(-z.mean(), atoms.positions - atoms.positions.mean(0), np.array([z.sum(), 0, 0, 0, 0, len(z)]))


def test_the_store_holds_predictions_with_units_through_fallback_and_shards(tmp_path):
    """A batch with helium fails and is redone one by one; NaCl has an element the model lacks and CO a non-finite
    layer: all three get NaN predictions. Shards of one structure each give the same numbers, read back."""
    import xarray as xr

    from platonic.store import write_store
    from platonic.structures import StructureSet

    light = StructureSet(atoms=[_cubic("LiF"), _cubic("NaCl"), _cubic("CO"), _cubic("HeH"), _cubic("BeH2")],
                         ids=list("abcde"))  # fmt: skip
    adapter = PredictingAdapter(layers="all", batch_size=2)
    features, valid, reasons = embed_structures(adapter, light.atoms, progress=False, predict=True)
    plain = embed_structures(adapter, light.atoms, progress=False)[0]
    for variable, values in plain.items():
        np.testing.assert_array_equal(features[variable], values)
    kept = [0, 4]
    expected = [_closed_form(light.atoms[i]) for i in kept]
    np.testing.assert_array_equal(features["energy_per_atom"][kept], [p.energy_per_atom for p in expected])
    assert np.isnan(features["energy_per_atom"][[1, 2, 3]]).all()
    np.testing.assert_array_equal(features["stress"][kept], [p.stress for p in expected])
    np.testing.assert_array_equal(features["forces"][valid], np.concatenate([p.forces for p in expected]))
    assert np.isnan(features["forces"][~valid]).all() and features["forces"].shape == (11, 3)
    for result in (
        embed_sharded(adapter, light.atoms, tmp_path / "shards", 1, "f", progress=False, predict=True),
        embed_sharded(adapter, light.atoms, tmp_path / "shards", 1, "f", progress=False, predict=True),  # read back
    ):
        assert sorted(result[0]) == sorted(features)
        for name, values in features.items():
            np.testing.assert_array_equal(result[0][name], values)
    ds = embedding_dataset(structures_to_dataset(light), features, valid, reasons, "predicting", adapter.provenance(),
                           layers=adapter.selected_layers)  # fmt: skip
    write_store(ds, tmp_path / "predicting.zarr")
    back = xr.open_zarr(tmp_path / "predicting.zarr", consolidated=False)
    assert back.attrs["predictions"] == "energy_per_atom forces stress"
    assert back["energy_per_atom"].dims == ("structure",) and back["forces"].dims == ("atom", "cartesian")
    assert back["stress"].dims == ("structure", "voigt")
    assert back["cartesian"].values.tolist() == ["x", "y", "z"]
    assert back["voigt"].values.tolist() == ["xx", "yy", "zz", "yz", "xz", "xy"]
    assert {name: back[name].attrs["units"] for name in PREDICTIONS} == PREDICTIONS
    assert all(back[name].dtype == np.float64 for name in PREDICTIONS)
    np.testing.assert_array_equal(back["stress"].values, features["stress"])


def test_a_store_without_predictions_has_none():
    from platonic.models.element import ElementAdapter
    from platonic.structures import StructureSet

    light = StructureSet(atoms=[_cubic("LiF"), _cubic("BeH2")], ids=["a", "b"])
    adapter = ElementAdapter()
    features, valid, reasons = embed_structures(adapter, light.atoms, progress=False)
    ds = embedding_dataset(structures_to_dataset(light), features, valid, reasons, "element", adapter.provenance())
    assert not set(PREDICTIONS) & set(ds.variables) and "predictions" not in ds.attrs
    assert "voigt" not in ds.coords and "cartesian" not in ds.coords


def test_only_trained_potentials_predict_and_only_when_asked():
    """Controls (weight-free recipes, untrained weights, any model marked control) predict nothing; with
    embed.predictions false nothing does."""
    from platonic.models.chgnet import CHGNetAdapter
    from platonic.models.element import ElementAdapter
    from platonic.stages.embed import predicts

    on, off = EmbedSettings.from_mapping({}), EmbedSettings.from_mapping({"predictions": False})
    assert on.predictions is True
    model, control = ModelSpec.from_mapping({"family": "chgnet"}), ModelSpec.from_mapping({"control": True})
    trained, untrained = CHGNetAdapter(device="cpu"), CHGNetAdapter(device="cpu", weights="random")
    assert predicts(trained, model, on)
    assert not predicts(trained, model, off)
    assert not predicts(trained, control, on)
    assert not predicts(untrained, model, on)
    assert not predicts(ElementAdapter(), model, on)
    with pytest.raises(Exception, match="predict no energy"):
        ElementAdapter().embed_predict([_cubic("LiF")])
    from platonic.models import FAMILIES

    assert FAMILIES["chgnet"].predicts and not FAMILIES["element"].predicts and not FAMILIES["soap"].predicts


def test_the_embed_stage_stores_predictions_of_a_potential_and_none_of_a_control(tmp_path, few_structures):
    """Through `platonic.stages.embed.run` in shards of two: CHGNet 0.3.0's store holds predictions and the same
    embedding as with embed.predictions false; its untrained control's store holds none."""
    import xarray as xr

    from platonic.stages import embed as embed_stage
    from platonic.store import write_store
    from platonic.structures import StructureSet

    if importlib.util.find_spec("chgnet") is None:
        pytest.skip("chgnet is an optional model package; install platonic[chgnet]")
    structures = StructureSet(atoms=few_structures.atoms[:3], ids=few_structures.ids[:3])
    write_store(structures_to_dataset(structures), tmp_path / "structures.zarr")

    def embed(name, predictions, **entry):
        settings = EmbedSettings.from_mapping(
            {"device": "cpu", "batch_size": 2, "shard_size": 2, "threads": 1, "predictions": predictions}
        )
        spec = ModelSpec.from_mapping({"family": "chgnet", "checkpoint": "0.3.0", **entry})
        embed_stage.run(str(tmp_path / "structures.zarr"), str(tmp_path / f"{name}.zarr"), model=name, spec=spec,
                        settings=settings, progress=False)  # fmt: skip
        return xr.open_zarr(tmp_path / f"{name}.zarr", consolidated=False)

    on, off = embed("on", True), embed("off", False)
    control = embed("untrained", True, options={"weights": "random"}, control=True)
    assert on.attrs["predictions"] == "energy_per_atom forces stress" and on.sizes["structure"] == 3
    np.testing.assert_array_equal(on["embedding"].values, off["embedding"].values)
    assert np.isfinite(on["forces"].values).all() and on["forces"].shape == (on.sizes["atom"], 3)
    for ds in (off, control):
        assert "predictions" not in ds.attrs and not set(PREDICTIONS) & set(ds.variables)
