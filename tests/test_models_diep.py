"""DIEP adapter on the real diep_fold1 weights shipped in the diep wheel."""

from __future__ import annotations

import numpy as np
import pytest
from adapter_checks import check_batching, check_invariance, check_provenance

pytest.importorskip("diep.pretrained", reason="diep >= 2 is an optional model package; install it (envs/diep.yaml)")

import torch  # noqa: E402

from platonic.models.base import ModelError, file_sha256  # noqa: E402
from platonic.models.diep import DIEPAdapter  # noqa: E402


@pytest.fixture(scope="module")
def adapter():
    return DIEPAdapter(device="cpu", batch_size=4)


def test_rotation_translation_permutation_invariance(adapter, few_structures):
    check_invariance(adapter, few_structures.atoms[:4])


def test_batched_equals_one_by_one_and_repeats_are_identical(adapter, few_structures):
    check_batching(adapter, few_structures.atoms)


def test_provenance_names_the_packaged_weights(adapter):
    from diep.pretrained import DEFAULT_MODEL_DIR

    check_provenance(adapter)
    info = adapter.provenance()
    assert adapter.checkpoint_path == DEFAULT_MODEL_DIR / "state.pt"
    assert info["checkpoint"] == "diep_fold1" and info["layer"] == "gc_3.node_feat"
    assert info["checkpoint_sha256"] == file_sha256(DEFAULT_MODEL_DIR / "state.pt")
    # 89 elements: H..Bi and Ac..Pu (Po, At, Rn, Fr, Ra are left out)
    assert adapter.supported_numbers == frozenset(range(1, 84)) | frozenset(range(89, 95))


def test_features_equal_diep_own_layer_outputs(adapter, few_structures):
    """Our batched features equal what DIEP's own predict_structure returns for one structure at a time."""
    from pymatgen.io.ase import AseAtomsAdaptor

    structures = few_structures.atoms[:2]
    first = DIEPAdapter(device="cpu", layer=0)
    for name, ours_all in (("gc_3", adapter.embed(structures)), ("gc_1", first.embed(structures))):
        for atoms, ours in zip(structures, ours_all, strict=True):
            with torch.no_grad():
                layers = adapter.model.model.predict_structure(
                    AseAtomsAdaptor.get_structure(atoms), output_layers=[name], return_features=True
                )
            assert ours.shape == (len(atoms), 64)
            np.testing.assert_allclose(ours, layers[name]["node_feat"].numpy(), rtol=1e-4, atol=1e-5)
    assert first.layer_name == "gc_1.node_feat"


def test_default_features_give_diep_calculator_energy(adapter, few_structures):
    """The readout applied to our features, scaled and shifted as diep's Potential does, is its calculator's energy."""
    from diep.pretrained import make_calculator

    atoms = few_structures.atoms[1].copy()
    features = torch.from_numpy(adapter.embed([atoms])[0])
    potential = adapter.model
    graph, _, _ = adapter._converter.get_graph(atoms)
    with torch.no_grad():
        per_atom = potential.model.final_layer.gated(features).sum()
        energy = float(potential.data_std * per_atom + potential.data_mean + potential.element_refs(graph).sum())
    atoms.calc = make_calculator(stress=False)
    assert energy == pytest.approx(atoms.get_potential_energy(), abs=2e-3)


def test_bad_requests_fail_clearly(tmp_path, few_structures):
    import ase

    with pytest.raises(ModelError, match="neither the packaged diep_fold1 nor a model directory"):
        DIEPAdapter(checkpoint=str(tmp_path)).load()
    with pytest.raises(ModelError, match="diep models run in float32, not 'float64'"):
        DIEPAdapter(dtype="float64")
    with pytest.raises(ModelError, match="DIEP model has 3 graph blocks; layer 3 does not exist"):
        DIEPAdapter(layer=3, device="cpu").load()
    polonium = ase.Atoms("PoNa", positions=[[0, 0, 0], [2, 0, 0]], cell=[5, 5, 5], pbc=True)
    adapter = DIEPAdapter(device="cpu")
    assert adapter.unsupported(polonium) == [84]
    with pytest.raises(ModelError, match=r"does not know atomic numbers \[84\]"):
        adapter.embed([few_structures.atoms[0], polonium])


def test_all_graph_blocks_from_one_pass_equal_one_block_each(adapter, few_structures):
    """``layers: all`` hooks every graph block in one forward pass; block k equals ``layer: k`` (on the CPU to the
    last bit; compared to 1e-6), and each block passes the adapter contract."""
    from adapter_checks import check_every_layer

    structures = few_structures.atoms[:3]
    stack = DIEPAdapter(device="cpu", batch_size=2, layers="all")
    assert stack.available_layers == ("gc_1.node_feat", "gc_2.node_feat", "gc_3.node_feat")
    layers = stack.embed_layers(structures)
    for k, name in enumerate(stack.available_layers):
        single = DIEPAdapter(device="cpu", batch_size=2, layer=k).embed(structures)
        for item, expected in zip(layers, single, strict=True):
            np.testing.assert_allclose(item[name], expected, rtol=1e-6, atol=1e-6)
    for item, expected in zip(layers, adapter.embed(structures), strict=True):
        np.testing.assert_allclose(item[adapter.layer_name], expected, rtol=1e-6, atol=1e-6)
    check_every_layer(stack, structures)
