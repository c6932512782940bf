"""Several layers from one forward pass (``layers``), on the real CHGNet 0.3.0 and SevenNet-0 weights shipped in
their wheels: the layer stack equals one single-layer extraction per layer, every layer passes the adapter
contract, bad requests fail naming the model and its layers, and the embed stage writes a layer store whose
``embedding`` is the single-layer store's."""

import numpy as np
import pytest
import xarray as xr
from adapter_checks import check_every_layer

from platonic.config import ConfigError, validate_config
from platonic.embedding import layer_embedding, layer_variable, store_layers
from platonic.models import ModelError, load_adapter
from platonic.models.base import Adapter, Loaded
from platonic.settings import EmbedSettings, ModelSpec
from platonic.stages import embed as embed_stage
from platonic.store import StoreError, structures_to_dataset, write_store

pytest.importorskip("chgnet", reason="chgnet is a default model package; install platonic[chgnet]")
pytest.importorskip("sevenn", reason="sevenn is a default model package; install platonic[sevenn]")

# family, checkpoint, the names of its layers (index k is `layer: k`), its default features
CASES = {
    "chgnet-0.3.0": (
        "chgnet",
        "0.3.0",
        [f"atom_conv_layers[{k}]" for k in range(4)],
        "atom_conv_layers[2]",
    ),
    "sevennet-0-11jul2024": (
        "sevenn",
        "7net-0_11Jul2024",
        [f"block {k} scalars" for k in range(5)],
        "input of reduce_input_to_hidden",
    ),
}
# the stack and the single-layer passes run the same operations on the same batches: on the CPU they agree to the
# last bit; the tolerance allows for a backend that reorders a reduction
RTOL, ATOL = 1e-6, 1e-6


@pytest.fixture(scope="module")
def tiny(few_structures):
    """Three structures (5, 10 and 14 atoms)."""
    return few_structures.atoms[:3]


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    family, checkpoint, names, default = CASES[request.param]
    # batch_size 2: the three structures span two forward passes
    stack = load_adapter(family, checkpoint=checkpoint, layers="all", device="cpu", batch_size=2)
    return family, checkpoint, names, default, stack


@pytest.mark.slow
def test_the_layer_stack_equals_a_single_layer_pass_per_layer(case, tiny):
    family, checkpoint, names, default, stack = case
    assert stack.available_layers == tuple(names)
    assert stack.selected_layers == tuple(enumerate(names))
    assert stack.layer_name == default
    layers = stack.embed_layers(tiny)
    assert [set(item) for item in layers] == [{*names, default}] * len(tiny)
    for k, name in enumerate(names):
        single = load_adapter(family, checkpoint=checkpoint, layer=k, device="cpu", batch_size=2)
        assert single.layer_name == name
        for item, expected in zip(layers, single.embed(tiny), strict=True):
            np.testing.assert_allclose(item[name], expected, rtol=RTOL, atol=ATOL)
    plain = load_adapter(family, checkpoint=checkpoint, device="cpu", batch_size=2)
    for item, expected, atoms in zip(layers, plain.embed(tiny), tiny, strict=True):
        np.testing.assert_allclose(item[default], expected, rtol=RTOL, atol=ATOL)
        assert item[default].shape == (len(atoms), {"chgnet": 64, "sevenn": 128}[family])


@pytest.mark.slow
def test_every_layer_passes_the_adapter_contract(case, tiny):
    check_every_layer(case[-1], tiny)


def test_a_list_takes_those_layers_by_index_or_name_in_its_order(tiny):
    adapter = load_adapter("chgnet", checkpoint="0.3.0", layers=[-1, "atom_conv_layers[0]"], device="cpu")
    assert adapter.selected_layers == ((3, "atom_conv_layers[3]"), (0, "atom_conv_layers[0]"))
    assert adapter.provenance()["layers"] == ["atom_conv_layers[3]", "atom_conv_layers[0]"]
    (item,) = adapter.embed_layers(tiny[:1])
    assert set(item) == {"atom_conv_layers[3]", "atom_conv_layers[0]", "atom_conv_layers[2]"}  # + the default
    # without layers the provenance is what it always was
    assert "layers" not in load_adapter("chgnet", checkpoint="0.3.0", device="cpu").provenance()


def test_bad_layer_requests_fail_naming_the_model_and_its_layers():
    with pytest.raises(ModelError, match="give layer or layers, not both"):
        load_adapter("chgnet", checkpoint="0.3.0", layer=1, layers="all")
    with pytest.raises(ModelError, match="layers is 'all' or a non-empty list"):
        load_adapter("chgnet", checkpoint="0.3.0", layers=[])
    listing = r"its 4 layers are 0: atom_conv_layers\[0\], 1: atom_conv_layers\[1\], 2: .*3: atom_conv_layers\[3\]"
    with pytest.raises(ModelError, match=r"chgnet 0.3.0 has no layer 4; " + listing):
        load_adapter("chgnet", checkpoint="0.3.0", layers=[0, 4], device="cpu").load()
    with pytest.raises(ModelError, match=r"sevenn 7net-0_11Jul2024 has no layer 'block 9'; its 5 layers are 0: bl"):
        load_adapter("sevenn", checkpoint="7net-0_11Jul2024", layers=["block 9"], device="cpu").load()
    with pytest.raises(ModelError, match=r"names layer 0 \(atom_conv_layers\[0\]\) twice"):
        load_adapter("chgnet", checkpoint="0.3.0", layers=[0, -4], device="cpu").load()
    # weight-free controls have no layers
    with pytest.raises(ModelError, match="element is a fixed recipe with no layers"):
        load_adapter("element", layers="all")
    # a family whose adapter does not (yet) read several layers says so
    with pytest.raises(ModelError, match="one-layer models do not support layers"):
        OneLayer(layers="all").load()
    with pytest.raises(ModelError, match="embed_layers needs the adapter's layers"):
        OneLayer().embed_layers([])
    # the embed stage names the config entry
    spec = ModelSpec.from_mapping({"family": "chgnet", "checkpoint": "0.3.0", "layers": [7]})
    with pytest.raises(ModelError, match=r"models.chgnet-0.3.0.layers: chgnet 0.3.0 has no layer 7; its 4 layers"):
        embed_stage.adapter("chgnet-0.3.0", spec, EmbedSettings.from_mapping({"device": "cpu"}))


class OneLayer(Adapter):
    family = "one-layer"
    package = "numpy"

    def _load(self):
        return Loaded(None, frozenset(range(1, 95)), "Z")

    def _embed_batch(self, structures):
        return [atoms.numbers[:, None].astype(float) for atoms in structures]


def test_the_config_takes_all_or_a_list_and_refuses_both_keys():
    def config(**entry):
        chgnet = {"family": "chgnet", "checkpoint": "0.3.0", **entry}
        return {
            "dataset": {"name": "x", "path": "x.csv"},
            "models": {"chgnet": chgnet, "e": {"family": "element", "checkpoint": "none"}},
        }

    assert validate_config(config(layers="all"))["models"]["chgnet"]["layers"] == "all"
    listed = [0, "atom_conv_layers[1]"]
    assert validate_config(config(layers=listed))["models"]["chgnet"]["layers"] == listed
    assert "layers" not in validate_config(config())["models"]["chgnet"]  # the embed job's spec is as before
    with pytest.raises(ConfigError, match=r"models.chgnet: give layer or layers, not both \(layer 1, layers 'all'\)"):
        validate_config(config(layer=1, layers="all"))
    with pytest.raises(ConfigError, match=r"models.chgnet.layers: 'every' does not match '\^all\$'"):
        validate_config(config(layers="every"))
    with pytest.raises(ConfigError, match=r"models.chgnet.layers: \[\] should be non-empty"):
        validate_config(config(layers=[]))
    assert ModelSpec.from_mapping({"layers": [0, 2]}).layers == (0, 2)


def test_the_embed_stage_writes_a_layer_store_readable_as_a_single_layer_one(tmp_path, few_structures):
    """A store of ``layers: all`` through the store writer and ``xr.open_zarr``: ``embedding`` and every attribute
    of the single-layer store as they were, plus one variable per layer equal to that layer's single-layer store."""
    from platonic.structures import StructureSet

    structures = StructureSet(atoms=few_structures.atoms[:3], ids=few_structures.ids[:3])
    write_store(structures_to_dataset(structures), tmp_path / "structures.zarr")
    settings = EmbedSettings.from_mapping({"device": "cpu", "batch_size": 2, "threads": 1})

    def embed(name, **entry):
        spec = ModelSpec.from_mapping({"family": "chgnet", "checkpoint": "0.3.0", **entry})
        embed_stage.run(str(tmp_path / "structures.zarr"), str(tmp_path / f"{name}.zarr"), "chgnet", spec, settings,
                        progress=False)  # fmt: skip
        return xr.open_zarr(tmp_path / f"{name}.zarr", consolidated=False)

    single, stack = embed("single"), embed("stack", layers="all")
    # the single-layer store is what it always was: three variables, no layer dimension, no layer attributes
    assert sorted(single.data_vars) == ["embedding", "exclusion_reason", "valid"]
    assert sorted(single.coords) == ["Z", "atom", "feature", "site", "structure", "structure_id"]
    assert single["embedding"].dims == ("atom", "feature") and single.sizes["feature"] == 64
    assert "model_layers" not in single.attrs and store_layers(single) == {}
    # the layer store: the same embedding and attributes, and four layers
    np.testing.assert_array_equal(stack["embedding"].values, single["embedding"].values)
    assert set(stack.attrs) - set(single.attrs) == {"model_layers"}
    assert {key: stack.attrs[key] for key in single.attrs} == single.attrs
    names = [f"atom_conv_layers[{k}]" for k in range(4)]
    assert stack.attrs["model_layers"] == names
    assert store_layers(stack) == dict(enumerate(names))
    assert stack["layer"].values.tolist() == [0, 1, 2, 3]
    for k, name in enumerate(names):
        variable = stack[layer_variable(k)]
        assert variable.dims == ("atom", f"feature_layer_{k}") and variable.attrs["layer_name"] == name
        expected = embed(f"layer{k}", layer=k)["embedding"]
        for key in (k, name):
            got = layer_embedding(stack, key)
            assert got.dims == ("atom", "feature") and got.sizes["feature"] == 64
            np.testing.assert_array_equal(got.values, expected.values)
            np.testing.assert_array_equal(got["Z"].values, single["Z"].values)
    with pytest.raises(StoreError, match=r"no layer 9; its layers: 0: atom_conv_layers\[0\]"):
        layer_embedding(stack, 9)
    with pytest.raises(StoreError, match=r"no layer 0; its layers: none \(a single-layer store\)"):
        layer_embedding(single, 0)
