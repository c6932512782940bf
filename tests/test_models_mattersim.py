"""MatterSim adapter on a small, seeded, randomly initialised MatterSim (M3Gnet) model.

The released MatterSim-v1 weights are downloaded from GitHub, which tests cannot reach, so the model is built with
mattersim's own ``M3Gnet`` constructor (small widths, real cutoffs), wrapped in its ``Potential`` and written with
``Potential.save``: the checkpoint format ``Potential.from_checkpoint`` reads for the released models.
"""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from adapter_checks import check_batching, check_invariance, check_provenance

pytest.importorskip("mattersim", reason="mattersim is an optional model package; install it (envs/mattersim.yaml)")

import ase  # noqa: E402
import torch  # noqa: E402

from platonic.models import mattersim as adapter_module  # noqa: E402
from platonic.models.base import ModelError, file_sha256  # noqa: E402
from platonic.models.mattersim import MatterSimAdapter  # noqa: E402

UNITS = 16
BLOCKS = 3


def build_potential():
    """A seeded MatterSim potential, small but with the released cutoffs (5 Å pairs, 4 Å triplets). Species
    embeddings are drawn wider than mattersim's ±0.05 initialisation so that features are O(1), as in a trained
    model (the tolerances of the shared checks are absolute below 1); the energy normaliser gets per-element shifts."""
    from mattersim.forcefield.m3gnet.m3gnet import M3Gnet
    from mattersim.forcefield.potential import Potential

    torch.manual_seed(0)
    model = M3Gnet(num_blocks=BLOCKS, units=UNITS, max_l=3, max_n=3, cutoff=5.0, threebody_cutoff=4.0, device="cpu")
    with torch.no_grad():
        model.atom_embedding.mlp[0].linear.weight.uniform_(-1.0, 1.0)
        model.normalizer.scale.fill_(2.0)
        model.normalizer.shift.copy_(-torch.linspace(0.5, 5.0, model.normalizer.shift.numel()))
    return Potential(model, device="cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("mattersim") / "mattersim-small.pth"
    build_potential().save(str(path))
    return path


@pytest.fixture(scope="module")
def adapter(checkpoint):
    return MatterSimAdapter(checkpoint=str(checkpoint), device="cpu", batch_size=4)


def test_rotation_translation_permutation_invariance(adapter, few_structures):
    check_invariance(adapter, few_structures.atoms[:4])


def test_batched_equals_one_by_one_and_repeats_are_identical(adapter, few_structures):
    check_batching(adapter, few_structures.atoms)


def test_provenance_names_the_checkpoint_file(adapter, checkpoint):
    check_provenance(adapter)
    info = adapter.provenance()
    assert info["family"] == info["package"] == "mattersim"
    assert info["checkpoint_sha256"] == file_sha256(checkpoint)
    assert info["layer"] == f"input of final (graph_conv[{BLOCKS - 1}].atom_attr)"
    assert info["forward_dtype"] == "float32"
    assert adapter.supported_numbers == frozenset(range(1, 95))


def test_default_features_are_what_the_readout_gets(adapter, checkpoint, few_structures, monkeypatch, tmp_path):
    """mattersim's own calculator, one structure at a time with forces and stresses: the input of its readout equals
    our batched features, and our features pushed through the readout and normaliser give its energy."""
    from mattersim.forcefield.potential import MatterSimCalculator

    monkeypatch.setenv("HOME", str(tmp_path))  # from_checkpoint creates ~/.local/mattersim; keep it out of $HOME
    calculator = MatterSimCalculator.from_checkpoint(str(checkpoint), device="cpu")
    net = calculator.potential.model
    seen = []
    net.final.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].detach().clone()))
    structures = few_structures.atoms
    ours = adapter.embed(structures)
    for atoms, features in zip(structures, ours, strict=True):
        atoms = atoms.copy()
        atoms.calc = calculator
        energy = atoms.get_potential_energy()
        np.testing.assert_allclose(features, seen[-1].numpy(), rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            numbers = torch.from_numpy(atoms.numbers.astype(np.int64))
            atomic = net.normalizer(net.final(torch.from_numpy(features)).view(-1), numbers)
        assert float(atomic.sum()) == pytest.approx(energy, rel=1e-5, abs=1e-4)
    assert all(f.shape[1] == UNITS for f in ours)
    # the features carry information: atoms of different species differ
    assert np.abs(ours[0] - ours[0].mean(axis=0)).max() > 0.1


def test_any_block_can_be_chosen(checkpoint, few_structures):
    structures = few_structures.atoms[:2]
    default = MatterSimAdapter(checkpoint=str(checkpoint), device="cpu")
    first = MatterSimAdapter(checkpoint=str(checkpoint), layer=0, device="cpu")
    last = MatterSimAdapter(checkpoint=str(checkpoint), layer=-1, device="cpu")
    assert first.layer_name == "graph_conv[0].atom_attr"
    assert last.layer_name == f"graph_conv[{BLOCKS - 1}].atom_attr"
    a, b, c = default.embed(structures)[0], first.embed(structures)[0], last.embed(structures)[0]
    assert a.shape == b.shape == (len(structures[0]), UNITS)
    assert not np.allclose(a, b, atol=1e-3)
    np.testing.assert_array_equal(a, c)  # the last block's output is the readout's input
    check_invariance(first, structures)
    with pytest.raises(ModelError, match="has 3 message-passing blocks; layer 3 does not exist"):
        MatterSimAdapter(checkpoint=str(checkpoint), layer=3, device="cpu").load()
    with pytest.raises(ModelError, match="must be a block index"):
        MatterSimAdapter(checkpoint=str(checkpoint), layer="final", device="cpu").load()


def test_unreachable_released_checkpoint_fails_helpfully(tmp_path, monkeypatch):
    import requests
    from mattersim.utils import download_utils

    def offline(url, *args, **kwargs):
        raise requests.ConnectionError(f"cannot reach {url}")

    monkeypatch.setattr(download_utils.requests, "get", offline)  # the same failure on machines with network
    adapter = MatterSimAdapter(checkpoint="mattersim-v1.0.0-5M", cache_dir=tmp_path, device="cpu")
    with pytest.raises(ModelError) as caught:
        adapter.load()
    message = str(caught.value)
    assert "'mattersim-v1.0.0-5M' is not in " + str(tmp_path) in message
    assert "https://raw.githubusercontent.com/microsoft/mattersim/main/pretrained_models/mattersim-v1.0.0-5M.pth" in (
        message
    )
    assert "ConnectionError" in message and "embed.cache_dir" in message
    assert list(tmp_path.iterdir()) == []  # no staging folder or partial file left behind


def test_stalled_download_times_out(tmp_path, monkeypatch):
    from mattersim.utils import download_utils

    release = threading.Event()

    def stalled(url, *args, **kwargs):  # requests.get without a timeout on a connection that never answers
        release.wait(30)
        raise OSError("released")

    monkeypatch.setattr(download_utils.requests, "get", stalled)
    monkeypatch.setattr(adapter_module, "DOWNLOAD_TIMEOUT_S", 0.2)
    try:
        with pytest.raises(ModelError, match=r"TimeoutError: no answer within 0.2 s"):
            MatterSimAdapter(checkpoint="mattersim-v1.0.0-1M", cache_dir=tmp_path, device="cpu").load()
    finally:
        release.set()


def test_released_names_resolve_through_the_cache_and_mattersims_download(checkpoint, tmp_path, monkeypatch):
    from mattersim.utils import download_utils

    # a file already in the cache is used as it is, and no download is tried
    shutil.copy(checkpoint, tmp_path / "mattersim-v1.0.0-5M.pth")
    monkeypatch.setattr(download_utils.requests, "get", lambda *a, **k: pytest.fail("download tried"))
    cached = MatterSimAdapter(checkpoint="MatterSim-v1.0.0-5M.pth", cache_dir=tmp_path, device="cpu")
    assert cached.checkpoint_path == tmp_path / "mattersim-v1.0.0-5M.pth"
    assert cached.provenance()["checkpoint_sha256"] == file_sha256(checkpoint)

    # a missing one goes through mattersim's download_checkpoint into the cache folder
    payload = checkpoint.read_bytes()
    urls = []

    class Response:
        content = payload
        headers = {"content-length": str(len(payload))}

        def raise_for_status(self):
            pass

        def iter_content(self, chunk_size=8192):
            return (payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size))

    def serve(url, *args, **kwargs):
        urls.append(url)
        return Response()

    monkeypatch.setattr(download_utils.requests, "get", serve)
    downloaded = MatterSimAdapter(checkpoint="mattersim-v1.0.0-1M", cache_dir=tmp_path / "new", device="cpu")
    assert downloaded.checkpoint_path == tmp_path / "new" / "mattersim-v1.0.0-1M.pth"
    assert urls == [adapter_module.DOWNLOAD_URL + "mattersim-v1.0.0-1M.pth"]
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["mattersim-v1.0.0-1M.pth"]
    assert downloaded.layer_name == cached.layer_name


def test_bad_checkpoints_and_elements_fail_clearly(adapter, checkpoint, tmp_path):
    with pytest.raises(ModelError, match=r"neither an existing file nor a released model \(mattersim-v1.0.0-1M"):
        MatterSimAdapter(checkpoint=str(tmp_path / "missing.pth")).load()
    with pytest.raises(ModelError, match="run in float32, not 'float64'"):
        MatterSimAdapter(dtype="float64")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot be read by torch.load"):
        MatterSimAdapter(checkpoint=str(junk), device="cpu").load()
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="is not a MatterSim checkpoint"):
        MatterSimAdapter(checkpoint=str(tmp_path / "other.pth"), device="cpu").load()
    # mattersim itself loads with strict=False, which would leave this block's weights random
    incomplete = torch.load(checkpoint, weights_only=True)
    del incomplete["model"]["graph_conv.1.gated_mlp_atom.g.0.linear.weight"]
    torch.save(incomplete, tmp_path / "incomplete.pth")
    with pytest.raises(ModelError, match=r"lacks 1 weights .*graph_conv.1.gated_mlp_atom.g.0.linear.weight"):
        MatterSimAdapter(checkpoint=str(tmp_path / "incomplete.pth"), device="cpu").load()
    americium = ase.Atoms("AmNa", positions=[[0, 0, 0], [2, 0, 0]], cell=[5, 5, 5], pbc=True)
    assert adapter.unsupported(americium) == [95]
    with pytest.raises(ModelError, match=r"no embedding for atomic numbers \[95\]"):
        adapter.embed([americium])


def test_predictions_equal_mattersim_calculator_and_leave_the_features_alone(adapter, checkpoint, few_structures):
    """Energy per atom, forces and stress from the features' own pass (a batch of four) equal MatterSimCalculator's
    (one structure at a time, stress in eV/A^3), to float32 rounding of sums ordered differently over the batch
    (relative 1e-5, and 1e-5 eV/A or 1e-6 eV/A^3 absolute); the features equal those without predictions bit for
    bit."""
    from mattersim.forcefield.potential import MatterSimCalculator, Potential

    from platonic.embedding import embed_structures

    structures = few_structures.atoms[:4]
    features, valid, _ = embed_structures(adapter, structures, progress=False, predict=True)
    np.testing.assert_array_equal(features["embedding"], embed_structures(adapter, structures, progress=False)[0])
    assert valid.all()
    calculator = MatterSimCalculator(Potential.from_checkpoint(str(checkpoint), device="cpu"), device="cpu")
    forces = np.split(features["forces"], np.cumsum([len(atoms) for atoms in structures])[:-1])
    predicted = zip(structures, features["energy_per_atom"], forces, features["stress"], strict=True)
    for atoms, energy, force, stress in predicted:
        atoms = atoms.copy()
        atoms.calc = calculator
        np.testing.assert_allclose(energy, atoms.get_potential_energy() / len(atoms), rtol=1e-5)
        np.testing.assert_allclose(force, atoms.get_forces(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(stress, atoms.get_stress(voigt=True), rtol=1e-5, atol=1e-6)
