"""matgl adapter on small, seeded, randomly initialised M3GNet, TensorNet and CHGNet potentials.

Pretrained matgl weights live on the Hugging Face Hub, which tests cannot reach, so each architecture is built with
matgl's own constructors, wrapped in its ``Potential`` and written with its ``save``: the same directory layout that
``matgl.load_model`` reads for the released models.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from adapter_checks import check_batching, check_invariance, check_provenance

pytest.importorskip("matgl", reason="matgl is an optional model package; install it (envs/matgl.yaml)")

import torch  # noqa: E402
from ase.data import atomic_numbers  # noqa: E402

from platonic.models.base import ModelError, file_sha256  # noqa: E402
from platonic.models.matgl import MatGLAdapter  # noqa: E402

# Every element of the six fixture crystals, plus H, C and N that they do not use.
ELEMENTS = tuple("H Li C N O F Si Cl K Ca V Mn Fe Sr Zr Pd La Pr Lu W".split())
WIDTH = 16
DEFAULT_LAYER = {"m3gnet": "gc_2.node_feat", "tensornet": "readout", "chgnet": "gc_3.atom_feat"}


def build(architecture: str):
    """A small random potential of ``architecture``, seeded; energies in a realistic range via refs/std."""
    from matgl.apps.pes import Potential
    from matgl.models import CHGNet, M3GNet, TensorNet

    torch.manual_seed(0)
    if architecture == "m3gnet":
        model = M3GNet(
            element_types=ELEMENTS,
            dim_node_embedding=WIDTH,
            dim_edge_embedding=WIDTH,
            units=WIDTH,
            nblocks=2,
            is_intensive=False,
        )
    elif architecture == "tensornet":
        model = TensorNet(element_types=ELEMENTS, units=WIDTH, nblocks=2, num_rbf=8, is_intensive=False, use_warp=False)
    else:
        model = CHGNet(
            element_types=ELEMENTS,
            dim_atom_embedding=WIDTH,
            dim_bond_embedding=WIDTH,
            dim_angle_embedding=WIDTH,
            num_blocks=3,
            max_n=5,
            max_f=3,
            atom_conv_hidden_dims=(WIDTH,),
            bond_conv_hidden_dims=(WIDTH,),
            final_hidden_dims=(WIDTH,),
        )
    refs = np.linspace(-1.0, -4.0, len(ELEMENTS))
    return Potential(model=model, data_mean=0.1, data_std=2.0, element_refs=refs)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("matgl_models")
    for architecture in DEFAULT_LAYER:
        build(architecture).save(root / architecture)
    return root


@pytest.fixture(scope="module", params=list(DEFAULT_LAYER))
def case(request, model_dirs):
    adapter = MatGLAdapter(checkpoint=str(model_dirs / request.param), device="cpu", batch_size=4)
    return request.param, adapter


def test_rotation_translation_permutation_invariance(case, few_structures):
    check_invariance(case[1], few_structures.atoms[:4])


def test_batched_equals_one_by_one_and_repeats_are_identical(case, few_structures):
    check_batching(case[1], few_structures.atoms)


def test_provenance_names_the_weights_file(case, model_dirs):
    architecture, adapter = case
    check_provenance(adapter)
    info = adapter.provenance()
    assert info["checkpoint_file"] == "state.pt"  # the state dict; model.pt holds only constructor arguments
    assert info["checkpoint_sha256"] == file_sha256(model_dirs / architecture / "state.pt")
    assert info["layer"] == DEFAULT_LAYER[architecture]
    assert info["package"] == "matgl" and info["forward_dtype"] == "float32"
    assert adapter.supported_numbers == frozenset(atomic_numbers[s] for s in ELEMENTS)


def test_default_features_feed_the_models_own_readout(case, few_structures):
    """Pushing our (batched) features through the model's final layer reproduces the energy matgl's own ASE
    calculator gives for each structure, one at a time, with forces on."""
    import matgl
    from matgl.ext.ase import PESCalculator

    architecture, adapter = case
    structures = few_structures.atoms[:3]
    features = adapter.embed(structures)
    assert [f.shape for f in features] == [(len(a), WIDTH) for a in structures]
    potential = adapter.model
    inner = potential.model
    calculator = PESCalculator(potential=matgl.load_model(adapter.checkpoint_path.parent), stress_unit="eV/A3")
    for atoms, x in zip(structures, features, strict=True):
        with torch.no_grad():
            per_atom = inner.final_layer(torch.from_numpy(x)).reshape(-1)
            graph, _, _ = adapter._converter.get_graph(atoms)
            offset = potential.element_refs(graph).sum()
        atoms = atoms.copy()
        atoms.calc = calculator
        # compared before the element references and scaling, which would otherwise dwarf the random readout
        theirs = (atoms.get_potential_energy() - float(potential.data_mean) - float(offset)) / float(potential.data_std)
        assert float(per_atom.sum()) == pytest.approx(theirs, abs=1e-5)  # the wrong block is off by >1e-3


def test_chosen_block_equals_the_models_own_intermediate_output(model_dirs, few_structures):
    """``layer=k`` is matgl's ``gc_<k+1>``, as its own ``predict_structure`` records it on ``feature_dict``."""
    from matgl.utils.maths import decompose_tensor, tensor_norm
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = few_structures.atoms[2]
    expected = {
        "m3gnet": ("gc_1.node_feat", WIDTH),
        "tensornet": ("gc_1.norms", 3 * WIDTH),
        "chgnet": ("gc_1.atom_feat", WIDTH),
    }
    for architecture, (name, width) in expected.items():
        adapter = MatGLAdapter(checkpoint=str(model_dirs / architecture), layer=0, device="cpu")
        ours = adapter.embed([atoms])[0]
        assert adapter.layer_name == name
        assert ours.shape == (len(atoms), width)
        inner = adapter.model.model
        with torch.no_grad():
            inner.predict_structure(AseAtomsAdaptor.get_structure(atoms))
        block = inner.feature_dict["gc_1"]
        if architecture == "tensornet":
            parts = decompose_tensor(block)
            theirs = torch.cat([tensor_norm(p) for p in parts], dim=-1)
        else:
            theirs = block[name.split(".")[1]]
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=1e-6)
        default = MatGLAdapter(checkpoint=str(model_dirs / architecture), device="cpu").embed([atoms])[0]
        assert not np.allclose(ours[:, : default.shape[1]], default)


def test_last_block_index_matches_the_default_for_invariant_models(model_dirs, few_structures):
    atoms = few_structures.atoms[:2]
    for architecture, n_blocks in (("m3gnet", 2), ("chgnet", 3)):
        default = MatGLAdapter(checkpoint=str(model_dirs / architecture), device="cpu")
        last = MatGLAdapter(checkpoint=str(model_dirs / architecture), layer=-1, device="cpu")
        assert last.layer_name == default.layer_name == f"gc_{n_blocks}.{DEFAULT_LAYER[architecture].split('.')[1]}"
        for a, b in zip(default.embed(atoms), last.embed(atoms), strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match="M3GNet model has 2 blocks; layer 2 does not exist"):
        MatGLAdapter(checkpoint=str(model_dirs / "m3gnet"), layer=2, device="cpu").load()
    with pytest.raises(ModelError, match="layer must be a block index .or unset for the readout input., not 'last'"):
        MatGLAdapter(checkpoint=str(model_dirs / "m3gnet"), layer="last", device="cpu").load()
    assert MatGLAdapter(checkpoint=str(model_dirs / "m3gnet"), layer="1", device="cpu").layer_name == "gc_2.node_feat"


def test_float64_forward_pass(model_dirs, few_structures):
    structures = few_structures.atoms[:2]
    single = MatGLAdapter(checkpoint=str(model_dirs / "tensornet"), device="cpu").embed(structures)
    adapter = MatGLAdapter(checkpoint=str(model_dirs / "tensornet"), device="cpu", dtype="float64")
    double = adapter.embed(structures)
    assert {p.dtype for p in adapter.model.parameters()} == {torch.float64}
    for a, b in zip(single, double, strict=True):
        assert b.dtype == np.float64
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not all(np.array_equal(a.astype(np.float64), b) for a, b in zip(single, double, strict=True))
    check_batching(adapter, few_structures.atoms[:3])


def test_named_model_is_read_from_the_cache_dir_without_network(model_dirs, tmp_path, few_structures):
    """A named model already in the Hugging Face cache layout matgl downloads into is loaded offline."""
    name = "M3GNet-PES-MatPES-PBE-2025.2"
    repo = tmp_path / f"models--materialyze--{name}"
    snapshot = repo / "snapshots" / "0123abcd"
    shutil.copytree(model_dirs / "m3gnet", snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    adapter = MatGLAdapter(checkpoint=name, cache_dir=tmp_path, device="cpu")
    assert adapter.checkpoint_path == snapshot / "state.pt"
    assert adapter.provenance()["checkpoint"] == name
    explicit = MatGLAdapter(checkpoint=str(model_dirs / "m3gnet"), device="cpu")
    atoms = few_structures.atoms[:1]
    np.testing.assert_array_equal(adapter.embed(atoms)[0], explicit.embed(atoms)[0])


def test_unreachable_named_model_fails_helpfully(tmp_path):
    # a name that exists nowhere, so the outcome does not depend on whether the Hub is reachable
    name = "TensorNet-PES-Platonic-Test-Nonexistent"
    adapter = MatGLAdapter(checkpoint=name, cache_dir=tmp_path, device="cpu")
    with pytest.raises(ModelError) as caught:
        adapter.load()
    message = str(caught.value)
    assert f"matgl model '{name}' is not in the cache {tmp_path}" in message
    assert f"materialyze/{name}" in message
    assert f"hf download materialyze/{name} --cache-dir {tmp_path}" in message
    assert "--local-dir DIR` and give DIR as the checkpoint" in message


def test_bad_checkpoints_and_structures_fail_clearly(model_dirs, tmp_path, few_structures):
    import ase
    from matgl.models import MEGNet

    with pytest.raises(ModelError, match="'/no/such/model' is neither a model directory nor a model name"):
        MatGLAdapter(checkpoint="/no/such/model").load()
    (tmp_path / "half").mkdir()
    shutil.copy(model_dirs / "m3gnet" / "model.json", tmp_path / "half")
    with pytest.raises(ModelError, match="is not a matgl model directory .missing model.pt, state.pt."):
        MatGLAdapter(checkpoint=str(tmp_path / "half")).load()
    with pytest.raises(ModelError, match="matgl models run in float32 or float64, not 'float16'"):
        MatGLAdapter(dtype="float16")
    MEGNet(
        element_types=("Li", "O"),
        dim_node_embedding=8,
        dim_edge_embedding=8,
        dim_state_embedding=2,
        nblocks=1,
        hidden_layer_sizes_input=(8, 8),
        hidden_layer_sizes_conv=(8, 8, 8),
        hidden_layer_sizes_output=(8, 4),
    ).save(tmp_path / "megnet")
    with pytest.raises(ModelError, match="is a MEGNet; the matgl adapter supports M3GNet, CHGNet, TensorNet"):
        MatGLAdapter(checkpoint=str(tmp_path / "megnet"), device="cpu").load()

    adapter = MatGLAdapter(checkpoint=str(model_dirs / "chgnet"), device="cpu")
    gold = ase.Atoms("AuO", positions=[[0, 0, 0], [2, 0, 0]], cell=[5, 5, 5], pbc=True)
    assert adapter.unsupported(gold) == [79]
    with pytest.raises(ModelError, match=r"does not know atomic numbers \[79\]"):
        adapter.embed([few_structures.atoms[0], gold])
    slab = few_structures.atoms[0].copy()
    slab.pbc = [True, True, False]
    with pytest.raises(ModelError, match="not partially periodic"):
        adapter.embed([slab])


def test_predictions_equal_matgl_calculator_and_leave_the_features_alone(case, model_dirs, few_structures):
    """Energy per atom, forces and stress from the features' own pass (a batch of four) equal matgl's PESCalculator
    in eV/A^3 (one structure at a time), to float32 rounding of sums ordered differently over the batch (relative
    1e-5, and 1e-5 eV/A or 1e-6 eV/A^3 absolute); the features equal those without predictions bit for bit."""
    import matgl
    from matgl.ext.ase import PESCalculator

    from platonic.embedding import embed_structures

    architecture, adapter = case
    structures = few_structures.atoms[:4]
    features, valid, _ = embed_structures(adapter, structures, progress=False, predict=True)
    np.testing.assert_array_equal(features["embedding"], embed_structures(adapter, structures, progress=False)[0])
    assert valid.all()
    calculator = PESCalculator(matgl.load_model(model_dirs / architecture), stress_unit="eV/A3")
    forces = np.split(features["forces"], np.cumsum([len(atoms) for atoms in structures])[:-1])
    predicted = zip(structures, features["energy_per_atom"], forces, features["stress"], strict=True)
    for atoms, energy, force, stress in predicted:
        atoms = atoms.copy()
        atoms.calc = calculator
        np.testing.assert_allclose(energy, atoms.get_potential_energy() / len(atoms), rtol=1e-5)
        np.testing.assert_allclose(force, atoms.get_forces(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(stress, atoms.get_stress(voigt=True), rtol=1e-5, atol=1e-6)
