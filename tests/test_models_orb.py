"""Orb adapter on small, seeded, randomly initialised Orb v3 models.

The released Orb v3 weights are downloaded from S3, which tests cannot reach, so models are built with orb-models' own
``orb_v3_direct_architecture`` / ``orb_v3_conservative_architecture`` (small widths, 3 message-passing steps, the
released 6 Å / 120-neighbour graph settings) and saved as state dicts, the format orb distributes; the adapter loads
them through its explicit-path route. One full-size random model stands in for a released checkpoint to exercise the
pretrained-name route (registry loader, cached_path cache, download) without network.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from adapter_checks import check_batching, check_invariance, check_provenance, moved_copies

pytest.importorskip("orb_models", reason="orb-models is an optional model package; install it (envs/orb.yaml)")

import ase  # noqa: E402
import requests  # noqa: E402
import torch  # noqa: E402
from orb_models.forcefield import pretrained  # noqa: E402
from orb_models.forcefield.atomic_system import SystemConfig, ase_atoms_to_atom_graphs  # noqa: E402

from platonic.models import orb as adapter_module  # noqa: E402
from platonic.models.base import ModelError, file_sha256  # noqa: E402
from platonic.models.orb import OrbAdapter  # noqa: E402

WIDTH = 16
STEPS = 3
SMALL = {"latent_dim": WIDTH, "base_mlp_hidden_dim": 32, "head_mlp_hidden_dim": 16, "num_message_passing_steps": STEPS}
RELEASED = "orb-v3-direct-inf-omat"
RELEASED_FILE = "orb-v3-direct-inf-omat-20250404.ckpt"


def build(kind: str, seed: int = 0, **kwargs):
    """A seeded Orb v3 regressor (``kind`` = direct or conservative) with the released graph settings."""
    builder = {
        "direct": pretrained.orb_v3_direct_architecture,
        "conservative": pretrained.orb_v3_conservative_architecture,
    }
    torch.manual_seed(seed)
    return builder[kind](
        **{**SMALL, **kwargs}, device="cpu", system_config=SystemConfig(radius=6.0, max_num_neighbors=120)
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("orb")
    paths = {}
    for kind in ("direct", "conservative"):
        paths[kind] = folder / f"orb-small-{kind}.ckpt"
        torch.save(build(kind).state_dict(), paths[kind])
    return paths


def small(kind: str, path, **kwargs) -> OrbAdapter:
    return OrbAdapter(
        checkpoint=str(path), device="cpu", batch_size=4, architecture=f"orb-v3-{kind}", model_kwargs=SMALL, **kwargs
    )


@pytest.fixture(scope="module", params=["direct", "conservative"])
def adapter(request, checkpoints):
    return small(request.param, checkpoints[request.param])


@pytest.fixture(scope="module")
def released_weights(tmp_path_factory):
    """A full-size orb-v3-direct-inf-omat layout with random weights, under the released file name (~100 MB)."""
    path = tmp_path_factory.mktemp("orb-full") / RELEASED_FILE
    torch.manual_seed(1)
    model = pretrained.orb_v3_direct_architecture(device="cpu", system_config=SystemConfig(6.0, 120))
    torch.save(model.state_dict(), path)
    return path


def test_rotation_translation_permutation_invariance(adapter, few_structures):
    check_invariance(adapter, few_structures.atoms[:4])


def test_batched_equals_one_by_one_and_repeats_are_identical(adapter, few_structures):
    check_batching(adapter, few_structures.atoms)


def test_provenance_names_the_weights_file(adapter, checkpoints):
    check_provenance(adapter)
    info = adapter.provenance()
    kind = adapter.options["architecture"].removeprefix("orb-v3-")
    assert info["family"] == "orb" and info["package"] == "orb-models"
    assert info["checkpoint_sha256"] == file_sha256(checkpoints[kind])
    assert info["layer"] == f"node_features (after gnn_stacks[{STEPS - 1}], input of the heads)"
    assert info["options"]["architecture"] == f"orb-v3-{kind}"
    # the embedding has rows for Z = 0..118, but orb's featurisation one-hot encodes only Z < 118
    assert adapter.supported_numbers == frozenset(range(1, 118))
    assert adapter.max_num_neighbors == 120


@pytest.mark.parametrize("kind", ["direct", "conservative"])
def test_default_features_are_orbs_own_node_features(kind, checkpoints, few_structures):
    """orb's ORBCalculator, one structure at a time with forces (and, for the conservative model, autograd): the
    backbone's node_features in its forward pass equal our batched features; for the direct model our features
    through its own energy head (plus its ZBL pair term) give the calculator's energy."""
    from orb_models.forcefield.calculator import ORBCalculator

    with adapter_module._torch_globals_restored():
        model = pretrained.load_model(
            build(kind, seed=5), str(checkpoints[kind]), "cpu", precision="float32-highest", compile=False
        )
    calculator = ORBCalculator(model, device="cpu")
    seen = []
    model.model.register_forward_hook(lambda _m, _inputs, output: seen.append(output["node_features"].detach()))
    structures = few_structures.atoms
    ours = small(kind, checkpoints[kind]).embed(structures)
    for atoms, features in zip(structures, ours, strict=True):
        atoms = atoms.copy()
        atoms.calc = calculator
        energy = atoms.get_potential_energy()
        assert features.shape == (len(atoms), WIDTH)
        np.testing.assert_allclose(features, seen[-1].numpy(), rtol=1e-5, atol=1e-5)
        if kind == "direct":
            graph = ase_atoms_to_atom_graphs(atoms, model.system_config, device=torch.device("cpu"))
            with torch.no_grad():
                head = model.heads["energy"].predict(torch.from_numpy(features), graph)
                repulsion = model.pair_repulsion_fn(graph)["energy"]
            assert float(head + repulsion) == pytest.approx(energy, rel=1e-5, abs=1e-4)
    # atoms of different species get different features
    assert np.abs(ours[0] - ours[0].mean(axis=0)).max() > 0.1


@pytest.mark.parametrize("kind", ["direct", "conservative"])
def test_default_features_are_the_backbone_output_on_orbs_own_graphs(kind, checkpoints, few_structures):
    """Li & Walsh's Orb reading: per structure, orb's own graph (ase_atoms_to_atom_graphs with the model's
    system_config and orb's defaults otherwise), the backbone alone (``model.model``, the MoleculeGNS) and its output
    ``node_features``, run at their precision, float32-high (which allows TF32 matmuls: GPUs only, so float32 here).
    Our default features are that tensor: exactly, one structure per batch, where their graph is built in float64 as
    ours is; within float32 rounding (a few 1e-6 here) with orb's default float32 neighbour search and our batches.
    Structures from CIFs are in standard orientation already, so ours are built as given."""
    structures = few_structures.atoms
    ours = small(kind, checkpoints[kind]).embed(structures)
    one_by_one = OrbAdapter(
        checkpoint=str(checkpoints[kind]), device="cpu", batch_size=1, architecture=f"orb-v3-{kind}", model_kwargs=SMALL
    ).embed(structures)
    with adapter_module._torch_globals_restored(), torch.no_grad():  # float32-high holds until the block ends
        model = pretrained.load_model(
            build(kind, seed=5), str(checkpoints[kind]), "cpu", precision="float32-high", compile=False
        )
        assert torch.get_float32_matmul_precision() == "high"
        for atoms, features, single in zip(structures, ours, one_by_one, strict=True):
            graph = ase_atoms_to_atom_graphs(atoms, model.system_config, device=torch.device("cpu"))
            theirs = model.model(graph)["node_features"]
            assert features.shape == tuple(theirs.shape) == (len(atoms), WIDTH)
            np.testing.assert_allclose(features, theirs.numpy(), rtol=1e-5, atol=1e-5)
            graph = ase_atoms_to_atom_graphs(
                atoms, model.system_config, device=torch.device("cpu"), graph_construction_dtype=torch.float64
            )
            np.testing.assert_array_equal(single, model.model(graph)["node_features"].numpy())


def test_crystals_are_embedded_in_standard_orientation(checkpoints, few_structures):
    """Orb itself is not rotation-invariant (random weights show it plainly; trained ones approximately): as given, a
    rotated crystal gets other features. In ase's standard orientation, which CIF input already has, it does not."""
    structures = few_structures.atoms[:3]
    for atoms in structures:  # CIF input is in standard form already: the default changes nothing for it
        np.testing.assert_array_equal(atoms.cell.standard_form()[1], np.eye(3))
    moved, orders = moved_copies(structures)
    as_given = small("direct", checkpoints["direct"], orientation="as-given")
    standard = small("direct", checkpoints["direct"])
    reference = as_given.embed(structures)
    for ref, out, order in zip(reference, as_given.embed(moved), orders, strict=True):
        assert np.abs(out - ref[order]).max() > 1e-3
    for ref, out, order in zip(reference, standard.embed(moved), orders, strict=True):
        np.testing.assert_allclose(out, ref[order], atol=1e-5)
    for ref, out in zip(reference, standard.embed(structures), strict=True):
        np.testing.assert_array_equal(out, ref)
    with pytest.raises(ModelError, match="orientation is one of standard, as-given, not 'random'"):
        small("direct", checkpoints["direct"], orientation="random").load()


def test_any_message_passing_step_can_be_chosen(checkpoints, few_structures, tmp_path):
    structures = few_structures.atoms[:3]
    default = small("direct", checkpoints["direct"])
    first = small("direct", checkpoints["direct"], layer=0)
    last = small("direct", checkpoints["direct"], layer=-1)
    assert (
        first.layer_name == "gnn_stacks[0] node features"
        and last.layer_name == f"gnn_stacks[{STEPS - 1}] node features"
    )
    a, b, c = default.embed(structures), first.embed(structures), last.embed(structures)
    assert b[0].shape == (len(structures[0]), WIDTH)
    assert np.abs(a[0] - b[0]).max() > 0.1
    for x, y in zip(a, c, strict=True):
        np.testing.assert_array_equal(x, y)
    check_invariance(first, structures)

    # independent of the hook: the same weights cut after step 0 form a 1-step model whose final node features they are
    weights = torch.load(checkpoints["direct"], weights_only=True)
    cut = {k: v for k, v in weights.items() if not k.startswith(("model.gnn_stacks.1.", "model.gnn_stacks.2."))}
    assert len(cut) < len(weights)
    torch.save(cut, tmp_path / "one-step.ckpt")
    one_step = OrbAdapter(
        checkpoint=str(tmp_path / "one-step.ckpt"),
        device="cpu",
        architecture="orb-v3-direct",
        model_kwargs={**SMALL, "num_message_passing_steps": 1},
    )
    for x, y in zip(one_step.embed(structures), b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)

    with pytest.raises(ModelError, match="has 3 message-passing steps; layer 3 does not exist"):
        small("direct", checkpoints["direct"], layer=3).load()
    with pytest.raises(ModelError, match="must be a message-passing step index, not 'last'"):
        small("direct", checkpoints["direct"], layer="last").load()


def test_float64_forward_pass(checkpoints, few_structures):
    before = torch.get_default_dtype(), torch.get_float32_matmul_precision()
    double = small("conservative", checkpoints["conservative"], dtype="float64")
    check_batching(double, few_structures.atoms[:4])
    # orb's loader sets the default dtype and matmul precision for the whole process; the adapter puts them back
    assert (torch.get_default_dtype(), torch.get_float32_matmul_precision()) == before
    assert next(double.model.parameters()).dtype == torch.float64
    single = small("conservative", checkpoints["conservative"]).embed(few_structures.atoms[:4])
    for x, y in zip(double.embed(few_structures.atoms[:4]), single, strict=True):
        assert x.dtype == np.float64
        np.testing.assert_allclose(x, y, atol=1e-4)
        assert np.abs(x - y).max() > 0  # really computed in another precision


def test_neighbour_cap_and_charge_spin_options(checkpoints, few_structures, tmp_path):
    structures = few_structures.atoms[:2]
    capped = small("direct", checkpoints["direct"], max_num_neighbors=8)
    full = small("direct", checkpoints["direct"]).embed(structures)
    assert np.abs(capped.embed(structures)[0] - full[0]).max() > 1e-2
    assert capped.max_num_neighbors == 8 and capped.system_config.max_num_neighbors == 120

    # OMol-style models condition the backbone on total charge and spin
    path = tmp_path / "charged.ckpt"
    torch.save(build("conservative", has_charge_spin_cond=True, has_stress=False).state_dict(), path)
    kwargs = {"model_kwargs": {**SMALL, "has_charge_spin_cond": True, "has_stress": False}}
    with pytest.raises(ModelError, match="conditioned on total charge and spin: set options.charge and options.spin"):
        OrbAdapter(checkpoint=str(path), device="cpu", architecture="orb-v3-conservative", **kwargs).load()
    singlet, triplet = (
        OrbAdapter(checkpoint=str(path), device="cpu", architecture="orb-v3-conservative", charge=0, spin=s, **kwargs)
        for s in (1, 3)
    )
    assert np.abs(singlet.embed(structures)[0] - triplet.embed(structures)[0]).max() > 1e-3
    check_batching(singlet, structures)


def test_released_file_name_tells_the_architecture(released_weights, few_structures):
    adapter = OrbAdapter(checkpoint=str(released_weights), device="cpu")
    features = adapter.embed(few_structures.atoms[:2])
    assert adapter.architecture == RELEASED
    assert [f.shape for f in features] == [(len(a), 256) for a in few_structures.atoms[:2]]
    assert adapter.layer_name == "node_features (after gnn_stacks[4], input of the heads)"
    assert adapter.max_num_neighbors == 120
    assert adapter.checkpoint_path == released_weights


class FakeResponse:
    """What cached_path's HTTP client reads from a requests response."""

    def __init__(self, payload: bytes = b""):
        self.payload = payload
        self.status_code = 200
        self.headers = {"ETag": '"released"', "Content-Length": str(len(payload))}

    def raise_for_status(self):
        pass

    def iter_content(self, chunk_size=1024):
        step = 1 << 20  # larger pieces than cached_path asks for, to keep the test quick
        return (self.payload[i : i + step] for i in range(0, len(self.payload), step))


def test_pretrained_names_download_through_cached_path_then_load_offline(
    released_weights, few_structures, tmp_path, monkeypatch
):
    import cached_path

    url = adapter_module._registry()[RELEASED]
    assert url.endswith("/" + RELEASED_FILE)
    payload = released_weights.read_bytes()
    requested = []

    def head(self, address, **kwargs):
        requested.append(("HEAD", address))
        return FakeResponse()

    def get(self, address, **kwargs):
        requested.append(("GET", address))
        return FakeResponse(payload)

    monkeypatch.setattr(requests.Session, "head", head)
    monkeypatch.setattr(requests.Session, "get", get)
    downloaded = OrbAdapter(checkpoint=RELEASED, cache_dir=tmp_path / "cache", device="cpu")
    reference = downloaded.embed(few_structures.atoms[:1])[0]
    assert requested == [("HEAD", url), ("GET", url)]
    assert downloaded.checkpoint_path.parent == tmp_path / "cache"
    assert downloaded.checkpoint_path.name == cached_path.resource_to_filename(url, '"released"')
    assert downloaded.provenance()["checkpoint_sha256"] == file_sha256(released_weights)
    assert downloaded.provenance()["checkpoint"] == RELEASED

    # a cached copy is used as it is: no request at all (cached_path alone would ask the server for an ETag first)
    monkeypatch.setattr(requests.Session, "head", lambda *a, **k: pytest.fail("network used"))
    monkeypatch.setattr(requests.Session, "get", lambda *a, **k: pytest.fail("network used"))
    cached = OrbAdapter(checkpoint="ORB_V3_DIRECT_INF_OMAT", cache_dir=tmp_path / "cache", device="cpu")
    assert cached.checkpoint_path == downloaded.checkpoint_path
    np.testing.assert_array_equal(cached.embed(few_structures.atoms[:1])[0], reference)


def test_unreachable_checkpoint_fails_clearly(tmp_path, monkeypatch):
    def refused(self, address, **kwargs):
        raise requests.ConnectionError(f"cannot reach {address}")

    monkeypatch.setattr(requests.Session, "head", refused)
    url = adapter_module._registry()["orb-v3-conservative-inf-omat"]
    with pytest.raises(ModelError) as caught:
        OrbAdapter(checkpoint="orb-v3-conservative-inf-omat", cache_dir=tmp_path, device="cpu").load()
    message = str(caught.value)
    assert "'orb-v3-conservative-inf-omat' is not in " + str(tmp_path) in message
    assert f"downloading it from {url} failed (ConnectionError" in message
    assert f"cached_path('{url}', cache_dir='{tmp_path}')" in message and "embed.cache_dir" in message
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_stalled_download_times_out(tmp_path, monkeypatch):
    release = threading.Event()

    def stalled(self, address, **kwargs):  # a connection that never answers (requests without a timeout)
        release.wait(30)
        raise requests.ConnectionError("released")

    monkeypatch.setattr(requests.Session, "head", stalled)
    monkeypatch.setattr(adapter_module, "DOWNLOAD_TIMEOUT_S", 0.2)
    try:
        with pytest.raises(ModelError, match=r"orb-v3-direct-inf-mpa.*TimeoutError: no answer within 0.2 s"):
            OrbAdapter(checkpoint="orb-v3-direct-inf-mpa", cache_dir=tmp_path, device="cpu").load()
    finally:
        release.set()


def test_bad_requests_fail_clearly(adapter, checkpoints, few_structures, tmp_path):
    direct = str(checkpoints["direct"])
    with pytest.raises(ModelError, match=r"needs options.architecture: one of orb-v3-conservative-omol"):
        OrbAdapter(checkpoint=direct).load()
    with pytest.raises(ModelError, match=r"neither an existing file nor a pretrained name \(.*orb-v3-direct-inf-omat"):
        OrbAdapter(checkpoint=str(tmp_path / "missing.ckpt")).load()
    with pytest.raises(ModelError, match="unknown Orb architecture 'orb-v9'"):
        OrbAdapter(checkpoint=direct, architecture="orb-v9", device="cpu").load()
    with pytest.raises(ModelError, match=r"cannot be loaded into the 'orb-v3-direct-inf-omat' architecture: Runtime"):
        OrbAdapter(checkpoint=direct, architecture=RELEASED, device="cpu").load()
    with pytest.raises(ModelError, match="model_kwargs and options.system_config go with an architecture of"):
        OrbAdapter(checkpoint=direct, architecture=RELEASED, model_kwargs=SMALL, device="cpu").load()
    with pytest.raises(ModelError, match=r"system_config takes radius and max_num_neighbors, not \['cutoff'\]"):
        small("direct", direct, system_config={"cutoff": 5.0}).load()
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot be loaded into the 'orb-v3-direct' architecture"):
        small("direct", junk).load()
    with pytest.raises(ModelError, match="orb models run in float32 or float64, not 'float16'"):
        OrbAdapter(dtype="float16")

    oganesson = ase.Atoms("OgNa", positions=[[0, 0, 0], [2, 0, 0]], cell=[5, 5, 5], pbc=True)
    assert adapter.unsupported(oganesson) == [118]
    with pytest.raises(ModelError, match=r"no embedding for atomic numbers \[118\]"):
        adapter.embed([oganesson])
    slab = ase.Atoms("Na2", positions=[[0, 0, 0], [2, 0, 0]], cell=[5, 5, 20], pbc=[True, True, False])
    with pytest.raises(ModelError, match="periodicity along all three axes or none"):
        adapter.embed([slab])
    # metadata in atoms.info (here a charge without a spin, which orb's featuriser asserts on) does not leak in
    tagged = few_structures.atoms[0].copy()
    tagged.info["charge"] = 2
    np.testing.assert_array_equal(adapter.embed([tagged])[0], adapter.embed([few_structures.atoms[0]])[0])


@pytest.mark.parametrize("kind", ["direct", "conservative"])
def test_predictions_equal_orb_calculator_and_leave_the_features_alone(kind, checkpoints, few_structures):
    """Energy per atom, forces and stress from the features' own pass (a batch of four) equal ORBCalculator's (one
    structure at a time; gradient forces and stress for the conservative model, the direct heads' otherwise), to
    float32 rounding of sums ordered differently over the batch (relative 1e-5, and 1e-5 eV/A or 1e-6 eV/A^3
    absolute); the features equal those without predictions bit for bit."""
    from orb_models.forcefield.calculator import ORBCalculator

    from platonic.embedding import embed_structures

    structures = few_structures.atoms[:4]
    adapter = small(kind, checkpoints[kind])
    features, valid, _ = embed_structures(adapter, structures, progress=False, predict=True)
    np.testing.assert_array_equal(features["embedding"], embed_structures(adapter, structures, progress=False)[0])
    assert valid.all()
    calculator = ORBCalculator(
        build(kind), system_config=SystemConfig(radius=6.0, max_num_neighbors=120), max_num_neighbors=120, device="cpu"
    )
    forces = np.split(features["forces"], np.cumsum([len(atoms) for atoms in structures])[:-1])
    predicted = zip(structures, features["energy_per_atom"], forces, features["stress"], strict=True)
    for atoms, energy, force, stress in predicted:
        atoms = atoms.copy()
        atoms.calc = calculator
        np.testing.assert_allclose(energy, atoms.get_potential_energy() / len(atoms), rtol=1e-5)
        np.testing.assert_allclose(force, atoms.get_forces(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(stress, atoms.get_stress(voigt=True), rtol=1e-5, atol=1e-6)
