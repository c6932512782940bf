"""MACE adapter on a small, seeded, randomly initialised MACE of the foundation models' architecture.

The MACE-MP foundation models are downloaded from GitHub, which tests cannot reach, so the model is built with mace's
own ``ScaleShiftMACE`` (as ``mace_run_train --model=MACE`` builds MACE-MP-0: a plain first interaction block, residual
ones after it, ``max_ell=3``, correlation 3, two blocks) at a small width, and written with ``torch.save``: the format
of the released ``.model`` files, which the adapter reads through its explicit-path route.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from adapter_checks import check_batching, check_invariance, check_provenance

pytest.importorskip("mace", reason="mace-torch is an optional model package in its own environment (envs/mace.yaml)")

import ase  # noqa: E402
import torch  # noqa: E402

from platonic.models.base import ModelError, default_dtype, file_sha256  # noqa: E402
from platonic.models.mace import MACEAdapter, _cached_name  # noqa: E402

CHANNELS = 16  # scalar channels per block; hidden irreps 16x0e+16x1o
# Every element of the `few_structures` fixture (first six MP-20 training structures), plus H; not Po.
ELEMENTS = [1, 3, 8, 9, 14, 17, 19, 20, 23, 25, 26, 38, 40, 46, 57, 59, 71, 74]


def build_model():
    """A seeded ScaleShiftMACE in float64 (the released models are stored in float64, the adapter casts them).
    Messages are normalised by ``avg_num_neighbors=1`` and species embeddings drawn 4x wider than e3nn's default so
    that the random model's features are O(1), as a trained model's are (the shared checks' tolerances are absolute
    below 1); with the realistic 30 neighbours they would be ~0.005."""
    from e3nn import o3
    from mace import modules

    with default_dtype(torch.float64):
        torch.manual_seed(0)
        model = modules.ScaleShiftMACE(
            r_max=5.0,
            num_bessel=8,
            num_polynomial_cutoff=5,
            max_ell=3,
            interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
            num_interactions=2,
            num_elements=len(ELEMENTS),
            hidden_irreps=o3.Irreps(f"{CHANNELS}x0e+{CHANNELS}x1o"),
            MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=-np.linspace(1.0, 5.0, len(ELEMENTS)),
            avg_num_neighbors=1.0,
            atomic_numbers=ELEMENTS,
            correlation=3,
            gate=torch.nn.functional.silu,
            radial_MLP=[32, 32, 32],
            atomic_inter_scale=1.5,
            atomic_inter_shift=0.0,
        )
    with torch.no_grad():
        model.node_embedding.linear.weight.mul_(4.0)
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("mace") / "mace-small-random.model"
    torch.save(build_model(), path)
    return path


@pytest.fixture(scope="module", params=["float32", "float64"])
def adapter(request, checkpoint):
    return MACEAdapter(checkpoint=str(checkpoint), device="cpu", batch_size=4, dtype=request.param)


def test_rotation_translation_permutation_invariance(adapter, few_structures):
    check_invariance(adapter, few_structures.atoms[:4])


def test_batched_equals_one_by_one_and_repeats_are_identical(adapter, few_structures):
    check_batching(adapter, few_structures.atoms)


def test_provenance_names_the_checkpoint_file(adapter, checkpoint):
    check_provenance(adapter)
    info = adapter.provenance()
    assert info["family"] == "mace" and info["package"] == "mace-torch"
    assert info["checkpoint_sha256"] == file_sha256(checkpoint)
    assert info["layer"] == "block 0 scalars (products[0] 0e)"
    assert info["forward_dtype"] == adapter.dtype
    assert adapter.supported_numbers == frozenset(ELEMENTS)
    assert next(adapter.model.parameters()).dtype == adapter.torch_dtype


def test_float32_and_float64_agree(checkpoint, few_structures):
    structures = few_structures.atoms[:3]
    single = MACEAdapter(checkpoint=str(checkpoint), device="cpu", dtype="float32").embed(structures)
    double = MACEAdapter(checkpoint=str(checkpoint), device="cpu", dtype="float64").embed(structures)
    scale = np.abs(np.concatenate(double)).max()
    assert scale > 0.5  # O(1) features, so that the tolerances below mean something
    for a, b in zip(single, double, strict=True):
        assert a.shape == b.shape == (b.shape[0], CHANNELS)
        np.testing.assert_allclose(a, b, atol=1e-5 * scale)


def test_features_equal_maces_own_descriptors(checkpoint, few_structures):
    """mace's MACECalculator.get_descriptors (one structure at a time, its own graph building and slicing) gives the
    invariant features of blocks 0..n-1 side by side; ours are its first block, and layer 1 its second."""
    from mace.calculators import MACECalculator

    structures = few_structures.atoms[:3]
    first = MACEAdapter(checkpoint=str(checkpoint), device="cpu", dtype="float64", batch_size=8)
    second = MACEAdapter(checkpoint=str(checkpoint), device="cpu", dtype="float64", batch_size=8, layer=1)
    ours_0, ours_1 = first.embed(structures), second.embed(structures)
    calculator = MACECalculator(model_paths=str(checkpoint), device="cpu", default_dtype="float64")
    for atoms, a, b in zip(structures, ours_0, ours_1, strict=True):
        theirs = calculator.get_descriptors(atoms, invariants_only=True, num_layers=2)
        assert theirs.shape == (len(atoms), 2 * CHANNELS)
        np.testing.assert_allclose(a, theirs[:, :CHANNELS], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, theirs[:, CHANNELS:], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_default_features_are_get_descriptors_of_one_layer(dtype, checkpoint, few_structures):
    """Li & Walsh's MACE reading: ``MACECalculator.get_descriptors(atoms, num_layers=1)`` (invariants_only is True by
    default), one structure at a time. mace-torch 0.3.16, which envs/mace.yaml and envs/venv/mace.yaml pin, returns
    the 0e part of the first block there (so does every release since 0.3.9, ACEsuit/mace PR 695; up to 0.3.8 it was
    the last block's): our default features, one structure per batch as theirs, are those numbers exactly, and not
    the last block's."""
    from mace.calculators import MACECalculator

    structures = few_structures.atoms[:4]
    ours = MACEAdapter(checkpoint=str(checkpoint), device="cpu", dtype=dtype, batch_size=1).embed(structures)
    last = MACEAdapter(checkpoint=str(checkpoint), device="cpu", dtype=dtype, layer=-1).embed(structures)
    calculator = MACECalculator(model_paths=str(checkpoint), device="cpu", default_dtype=dtype)
    for atoms, a, b in zip(structures, ours, last, strict=True):
        theirs = calculator.get_descriptors(atoms, num_layers=1)
        assert theirs.dtype == a.dtype and theirs.shape == a.shape == (len(atoms), CHANNELS)
        np.testing.assert_array_equal(a, theirs)
        assert np.abs(b - theirs).max() > 0.1


def test_layer_selects_the_block_and_matches_its_product_output(checkpoint, few_structures):
    """layer=1 (the last block, which outputs only scalars) differs from the default; a forward hook on
    products[-1] sees exactly those numbers."""
    structures = few_structures.atoms[:2]
    default = MACEAdapter(checkpoint=str(checkpoint), device="cpu", dtype="float64")
    last = MACEAdapter(checkpoint=str(checkpoint), device="cpu", dtype="float64", layer=-1)
    assert last.layer_name == "block 1 scalars (products[1] 0e)"
    default.load()
    assert default._widths == [4 * CHANNELS, CHANNELS]  # 16x0e+16x1o, then 16x0e: 16 of 64 channels are invariant
    a, b = default.embed(structures), last.embed(structures)
    assert a[0].shape == b[0].shape == (len(structures[0]), CHANNELS)
    assert np.abs(a[0] - b[0]).max() > 0.1

    captured = []
    hook = last.model.products[1].register_forward_hook(lambda _m, _i, output: captured.append(output.detach()))
    try:
        hooked = last.embed(structures)
    finally:
        hook.remove()
    np.testing.assert_array_equal(np.concatenate(hooked), captured[0].numpy())
    check_invariance(last, structures)


def test_unknown_elements_are_reported(checkpoint):
    adapter = MACEAdapter(checkpoint=str(checkpoint), device="cpu")
    polonium = ase.Atoms("PoLi", positions=[[0, 0, 0], [2, 0, 0]], cell=[5, 5, 5], pbc=True)
    assert adapter.unsupported(polonium) == [84]
    with pytest.raises(ModelError, match=r"no species \[84\]"):
        adapter.embed([polonium])


def test_bad_requests_fail_clearly(checkpoint, tmp_path):
    with pytest.raises(ModelError, match="has 2 interaction blocks; layer 2 does not exist"):
        MACEAdapter(checkpoint=str(checkpoint), layer=2, device="cpu").load()
    with pytest.raises(ModelError, match="interaction-block index, not 'last'"):
        MACEAdapter(checkpoint=str(checkpoint), layer="last", device="cpu").load()
    with pytest.raises(ModelError, match="heads \\['Default'\\]; options.head 'omat' is not one of them"):
        MACEAdapter(checkpoint=str(checkpoint), device="cpu", head="omat").load()
    with pytest.raises(ModelError, match="neither an existing file nor a MACE-MP foundation model.*medium-mpa-0"):
        MACEAdapter(checkpoint="/no/such/file.model", device="cpu").load()
    with pytest.raises(ModelError, match="mace models run in float32 or float64, not 'float16'"):
        MACEAdapter(checkpoint=str(checkpoint), dtype="float16")
    not_mace = tmp_path / "linear.model"
    torch.save(torch.nn.Linear(2, 2), not_mace)
    with pytest.raises(ModelError, match="holds a Linear, not a MACE energy model"):
        MACEAdapter(checkpoint=str(not_mace), device="cpu").load()
    truncated = tmp_path / "truncated.model"
    truncated.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(ModelError, match="cannot be read by torch.load.*re-download"):
        MACEAdapter(checkpoint=str(truncated), device="cpu").load()


def test_foundation_models_come_from_the_cache_dir(checkpoint, tmp_path, monkeypatch):
    """A missing foundation model is fetched with mace's downloader from mace's URL; when that fails the error
    names the checkpoint, the URL and the folder, and nothing is left behind. A file already in the cache is used."""
    from mace.calculators import foundations_models

    real_url = foundations_models.mace_mp_urls["medium"]
    # A port nothing listens on: refused at once on any machine, so CI never downloads the real 80 MB model.
    unreachable = "http://127.0.0.1:9/" + real_url.rsplit("/", 1)[-1]
    monkeypatch.setitem(foundations_models.mace_mp_urls, "medium", unreachable)
    cache = tmp_path / "cache"
    cache.mkdir()
    expected = (
        r"MACE checkpoint 'medium' is not in .*cache and downloading it from http://127\.0\.0\.1:9/"
        r"2023-12-03-mace-128-L1_epoch-199\.model failed \(URLError.*into .*cache as "
        r"20231203mace128L1_epoch199model .*embed\.cache_dir.*or give the checkpoint as a file path"
    )
    with pytest.raises(ModelError, match=expected):
        MACEAdapter(checkpoint="medium", cache_dir=cache, device="cpu").load()
    assert list(cache.iterdir()) == []  # no partial download left behind

    # The name mace_mp() caches under, so ~/.cache/mace can be copied into embed.cache_dir as it is.
    assert _cached_name(real_url) == "20231203mace128L1_epoch199model"
    shutil.copy(checkpoint, cache / "20231203mace128L1_epoch199model")
    adapter = MACEAdapter(checkpoint="medium", cache_dir=cache, device="cpu")
    assert adapter.checkpoint_path == cache / "20231203mace128L1_epoch199model"
    assert adapter.provenance()["checkpoint_sha256"] == file_sha256(checkpoint)
    assert adapter.provenance()["checkpoint"] == "medium"


def test_a_url_names_a_release_that_maces_list_lacks(checkpoint, tmp_path):
    """Li & Walsh's MACE-MP-0 large is 2024-01-07-mace-128-L2_epoch-199.model (MACE-MP-0a large in mace's README),
    which no name of mace's list reaches: its "large" is MACE_MPtrj_2022.9.model. Its URL is a checkpoint: looked for
    in the cache under the name mace's downloader gives it (used there without any network), else fetched with mace's
    downloader, which here fails with an error naming the URL and the folder and leaves nothing behind."""
    from mace.calculators import foundations_models

    release = "2024-01-07-mace-128-L2_epoch-199.model"
    assert foundations_models.mace_mp_urls["large"].endswith("/mace_mp_0/MACE_MPtrj_2022.9.model")
    assert not any(url.endswith(release) for url in foundations_models.mace_mp_urls.values())
    url = f"https://github.com/ACEsuit/mace-foundations/releases/download/mace_mp_0/{release}"
    cache = tmp_path / "cache"
    cache.mkdir()
    unreachable = f"http://127.0.0.1:9/{release}"
    expected = (
        rf"MACE checkpoint '{unreachable}' is not in .*cache and downloading it from {unreachable} failed "
        r"\(URLError.*as 20240107mace128L2_epoch199model"
    )
    with pytest.raises(ModelError, match=expected):
        MACEAdapter(checkpoint=unreachable, cache_dir=cache, device="cpu").load()
    assert list(cache.iterdir()) == []

    shutil.copy(checkpoint, cache / "20240107mace128L2_epoch199model")
    adapter = MACEAdapter(checkpoint=url, cache_dir=cache, device="cpu")
    assert adapter.checkpoint_path == cache / "20240107mace128L2_epoch199model"
    info = adapter.provenance()
    assert info["checkpoint"] == url and info["checkpoint_file"] == "20240107mace128L2_epoch199model"
    assert info["checkpoint_sha256"] == file_sha256(checkpoint)
    with pytest.raises(ModelError, match=r"nor the URL \(https://\.\.\.\) of a \.model file"):
        MACEAdapter(checkpoint="large-0a", cache_dir=cache, device="cpu").load()


def test_default_cache_is_maces_own(tmp_path, monkeypatch):
    """Without cache_dir the model is looked for (and would be downloaded) where mace_mp() keeps it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from mace.calculators import foundations_models

    monkeypatch.setitem(foundations_models.mace_mp_urls, "small", "http://127.0.0.1:9/small.model")
    with pytest.raises(ModelError, match=rf"'small' is not in {tmp_path}/mace and downloading"):
        MACEAdapter(checkpoint="small", device="cpu").load()


def test_predictions_equal_mace_calculator_and_leave_the_features_alone(checkpoint, few_structures):
    """Energy per atom, forces and stress from the features' own pass (a batch of four) equal MACECalculator's (one
    structure at a time), both in float64, to 1e-5 relative / 1e-5 eV/A / 1e-6 eV/A^3 (the float32 tolerance of the
    other families, generous here); the features equal those without predictions bit for bit."""
    from mace.calculators import MACECalculator

    from platonic.embedding import embed_structures

    structures = few_structures.atoms[:4]
    adapter = MACEAdapter(checkpoint=str(checkpoint), device="cpu", batch_size=4, dtype="float64")
    features, valid, _ = embed_structures(adapter, structures, progress=False, predict=True)
    np.testing.assert_array_equal(features["embedding"], embed_structures(adapter, structures, progress=False)[0])
    assert valid.all()
    calculator = MACECalculator(model_paths=str(checkpoint), device="cpu", default_dtype="float64")
    forces = np.split(features["forces"], np.cumsum([len(atoms) for atoms in structures])[:-1])
    predicted = zip(structures, features["energy_per_atom"], forces, features["stress"], strict=True)
    for atoms, energy, force, stress in predicted:
        atoms = atoms.copy()
        atoms.calc = calculator
        np.testing.assert_allclose(energy, atoms.get_potential_energy() / len(atoms), rtol=1e-5)
        np.testing.assert_allclose(force, atoms.get_forces(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(stress, atoms.get_stress(voigt=True), rtol=1e-5, atol=1e-6)
