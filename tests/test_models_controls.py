"""Control representations as model families: element identity, SOAP, untrained networks."""

import hashlib

import ase
import ase.data
import numpy as np
import pytest
from adapter_checks import check_batching, check_invariance, check_provenance

from platonic.models import PRESETS, ModelError, load_adapter
from platonic.models.element import MAX_Z


def test_element_one_hot_is_exactly_the_one_hot_of_z(few_structures):
    adapter = load_adapter("element")
    for atoms, features in zip(few_structures.atoms, adapter.embed(few_structures.atoms), strict=True):
        expected = np.zeros((len(atoms), MAX_Z), dtype=np.float32)
        expected[np.arange(len(atoms)), atoms.numbers - 1] = 1.0
        np.testing.assert_array_equal(features, expected)
    assert adapter.layer_name == "one-hot Z 1-94"
    assert adapter.supported_numbers == frozenset(range(1, 95))
    assert adapter.unsupported(ase.Atoms("AmO", positions=[[0, 0, 0], [2, 0, 0]])) == [95]


def test_element_properties_are_standardised_over_the_supported_elements():
    pytest.importorskip("pymatgen")
    from pymatgen.core.periodic_table import Element

    adapter = load_adapter("element", dtype="float64", properties="covalent_radius,electronegativity")
    argon_oxide = ase.Atoms("ArO", positions=[[0, 0, 0], [3, 0, 0]], cell=[6, 6, 6], pbc=True)
    features = adapter.embed([argon_oxide])[0]
    assert features.shape == (2, MAX_Z + 2)
    radii = ase.data.covalent_radii[1 : MAX_Z + 1]
    assert features[1, MAX_Z] == pytest.approx((radii[7] - radii.mean()) / radii.std(), rel=1e-12)
    known = [Element.from_Z(z).X for z in range(1, MAX_Z + 1) if z not in (2, 10, 18)]  # no Pauling X for He, Ne, Ar
    assert features[1, MAX_Z + 1] == pytest.approx((3.44 - np.mean(known)) / np.std(known), rel=1e-12)
    assert features[0, MAX_Z + 1] == 0.0  # Ar: missing, set to the mean
    table = adapter.table[:, MAX_Z:]
    np.testing.assert_allclose(table.mean(axis=0), 0.0, atol=1e-12)
    assert table[:, 0].std() == pytest.approx(1.0)
    # the same list as YAML text (as the workflow's --option passes it) gives the same adapter
    same = load_adapter("element", dtype="float64", properties="['covalent_radius', 'electronegativity']")
    assert same.provenance()["checkpoint_sha256"] == adapter.provenance()["checkpoint_sha256"]


def test_element_contract_and_settings_hash(few_structures):
    plain = load_adapter("element", batch_size=2)
    check_invariance(plain, few_structures.atoms)
    check_batching(plain, few_structures.atoms)
    check_provenance(plain)
    other = load_adapter("element", properties=["atomic_mass"])
    assert plain.provenance()["checkpoint_sha256"] != other.provenance()["checkpoint_sha256"]
    assert plain.provenance()["checkpoint_sha256"] == load_adapter("element").provenance()["checkpoint_sha256"]


def test_weight_free_families_refuse_what_they_cannot_be():
    with pytest.raises(ModelError, match="element has no weights: its checkpoint is 'none', not '0.3.0'"):
        load_adapter("element", checkpoint="0.3.0")
    with pytest.raises(ModelError, match="element models cannot be built with random weights"):
        load_adapter("element", weights="random")
    with pytest.raises(ModelError, match="unknown element property 'colour'"):
        load_adapter("element", properties=["colour"]).load()
    with pytest.raises(ModelError, match="options.seed applies only with options.weights: random"):
        load_adapter("chgnet", seed=3)
    with pytest.raises(ModelError, match="options.weights is one of pretrained, random, not 'zeros'"):
        load_adapter("chgnet", weights="zeros")


def needs_dscribe():
    pytest.importorskip("dscribe", reason="the soap family needs dscribe; install platonic[soap]")


@pytest.fixture(scope="module")
def soap():
    needs_dscribe()
    return load_adapter("soap", batch_size=4)


def test_soap_contract(soap, few_structures):
    check_invariance(soap, few_structures.atoms, rtol=1e-5)
    check_batching(soap, few_structures.atoms)
    check_provenance(soap)
    assert soap.embed(few_structures.atoms[:1])[0].shape[1] == 36 * 7  # n_max (n_max + 1) / 2 (l_max + 1)


def test_soap_equals_dscribe_called_directly(few_structures):
    needs_dscribe()
    from dscribe.descriptors import SOAP

    atoms = few_structures.atoms[2]
    adapter = load_adapter("soap", dtype="float64")
    direct = SOAP(species=list(range(1, 95)), r_cut=5.0, n_max=8, l_max=6, sigma=0.5, periodic=True,
                  compression={"mode": "mu2"}).create(atoms)  # fmt: skip
    np.testing.assert_allclose(adapter.embed([atoms])[0], direct, rtol=1e-12, atol=1e-14)
    assert np.abs(direct).max() > 1e-3
    # options as command-line text, species-resolved
    species = sorted(set(atoms.get_chemical_symbols()))
    narrow = load_adapter("soap", dtype="float64", cutoff="4.0", n_max="4", l_max="3", sigma="0.4",
                          compression="crossover", species=",".join(species))  # fmt: skip
    direct = SOAP(species=species, r_cut=4.0, n_max=4, l_max=3, sigma=0.4, periodic=True,
                  compression={"mode": "crossover"}).create(atoms)  # fmt: skip
    np.testing.assert_allclose(narrow.embed([atoms])[0], direct, rtol=1e-12, atol=1e-14)
    assert direct.shape[1] == len(species) * 10 * 4


def test_soap_mu2_sees_geometry_only(soap, few_structures):
    atoms = few_structures.atoms[0]
    relabelled = atoms.copy()
    relabelled.numbers[:] = 14
    np.testing.assert_allclose(soap.embed([relabelled])[0], soap.embed([atoms])[0], rtol=1e-6)
    squeezed = atoms.copy()
    squeezed.set_cell(atoms.cell * 0.95, scale_atoms=True)
    assert not np.allclose(soap.embed([squeezed])[0], soap.embed([atoms])[0], rtol=1e-3)


def test_soap_refuses_a_huge_or_unknown_setting():
    needs_dscribe()
    with pytest.raises(ModelError, match="features per atom .* narrow options.species or use compression mu2"):
        load_adapter("soap", compression="off").load()
    with pytest.raises(ModelError, match="'Xx' is not an element symbol"):
        load_adapter("soap", species=["O", "Xx"]).load()
    with pytest.raises(ModelError, match="unknown soap options \\['r_cut'\\]"):
        load_adapter("soap", r_cut=4).load()


UNTRAINED = {
    "chgnet": dict(family="chgnet", checkpoint="0.3.0"),
    "sevenn": dict(family="sevenn", checkpoint="7net-0_11Jul2024"),
}


@pytest.fixture(scope="module", params=list(UNTRAINED))
def untrained(request):
    pytest.importorskip(request.param)
    spec = UNTRAINED[request.param]
    adapters = {seed: load_adapter(**spec, device="cpu", batch_size=3, weights="random", seed=seed) for seed in (0, 1)}
    return adapters | {"trained": load_adapter(**spec, device="cpu", batch_size=3)}


@pytest.mark.slow
def test_untrained_contract(untrained, few_structures):
    adapter = untrained[0]
    check_invariance(adapter, few_structures.atoms[:2])
    check_batching(adapter, few_structures.atoms[:4])
    check_provenance(adapter)
    info, trained = adapter.provenance(), untrained["trained"].provenance()
    assert (info["weights"], info["weights_seed"]) == ("random", 0)
    assert info["checkpoint_sha256"] == trained["checkpoint_sha256"]  # the architecture's source
    assert "weights" not in trained and "weights_sha256" not in trained


def test_untrained_weights_are_the_architectures_own_seeded_init(untrained):
    import torch

    adapter = untrained[0]
    for loaded in (adapter, untrained["trained"]):  # adapters load lazily; this test may be the first to need them
        loaded.load()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if adapter.family == "chgnet":
            from chgnet.model import CHGNet

            rebuilt = CHGNet(**untrained["trained"].model.model_args)
        else:
            from sevenn import util
            from sevenn.model_build import build_E3_equivariant_model

            rebuilt = build_E3_equivariant_model(util.load_checkpoint(str(adapter.checkpoint_path)).config)
    ours, trained = adapter.model.state_dict(), untrained["trained"].model
    frozen = {name for name, value in trained.named_parameters() if not value.requires_grad}
    assert ours.keys() == rebuilt.state_dict().keys()
    for name, tensor in rebuilt.state_dict().items():
        expected = trained.state_dict()[name] if name in frozen else tensor
        torch.testing.assert_close(ours[name], expected, rtol=0, atol=0)


@pytest.mark.slow
def test_untrained_seeds_and_the_trained_weights_differ(untrained, few_structures):
    import torch

    structures = few_structures.atoms[:2]
    again = load_adapter(**UNTRAINED[untrained[0].family], device="cpu", weights="random", seed="0")
    first, second, trained = untrained[0], untrained[1], untrained["trained"]
    assert again.provenance()["weights_sha256"] == first.provenance()["weights_sha256"]
    assert second.provenance()["weights_sha256"] != first.provenance()["weights_sha256"]
    for a, b in zip(again.embed(structures), first.embed(structures), strict=True):
        np.testing.assert_array_equal(a, b)
    for model in (second, trained):
        for a, b in zip(model.embed(structures), first.embed(structures), strict=True):
            assert a.shape == b.shape
            assert np.abs(a - b).mean() > 0.05 * np.abs(b).mean()
    # every learned tensor differs from the trained one; the constants the checkpoint does not learn are its own
    params = dict(first.model.named_parameters())
    same = {name for name, value in trained.model.named_parameters() if torch.equal(value, params[name])}
    frozen = {name for name, value in trained.model.named_parameters() if not value.requires_grad}
    # CHGNet's last angle layer updates bonds nobody reads: their batch norm kept its initial ones and zeros
    unused = {f"angle_layers.2.twoBody_bond.bn{i}.{w}" for i in (1, 2) for w in ("weight", "bias")}
    assert same == frozen | (unused if first.family == "chgnet" else set())
    assert (
        frozen
        == {
            "chgnet": {"composition_model.fc.weight"},
            "sevenn": {f"{i}_convolution.denominator" for i in range(5)}
            | {"rescale_atomic_energy.shift", "rescale_atomic_energy.scale"},
        }[first.family]
    )
    assert len(params) - len(same) >= 34


def test_untrained_presets():
    for name in ("chgnet-0.3.0-untrained", "sevennet-0-11jul2024-untrained"):
        assert PRESETS[name]["options"] == {"weights": "random", "seed": 0}
        assert (PRESETS[name]["training_data"], PRESETS[name]["fidelity"]) == ([], None)
    for name in ("element", "soap"):
        assert {k: PRESETS[name][k] for k in ("family", "checkpoint", "training_data", "fidelity")} == {
            "family": name,
            "checkpoint": "none",
            "training_data": [],
            "fidelity": None,
        }
        assert "options" not in PRESETS[name]


def test_settings_hash_is_of_the_canonical_json(soap):
    import json

    info = soap.provenance()
    settings = json.loads(info["settings"])
    assert settings["species"] == list(range(1, 95)) and settings["compression"] == "mu2"
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    assert info["checkpoint_sha256"] == hashlib.sha256(text.encode()).hexdigest()
