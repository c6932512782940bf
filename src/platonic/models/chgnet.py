"""CHGNet (package ``chgnet``): atom features after an atom-convolution layer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import ase
import numpy as np

from platonic.models.base import CONTROL, Adapter, Family, Loaded, ModelError, layer_outputs, random_weights

if TYPE_CHECKING:
    import torch

PACKAGED = {"0.3.0", "0.2.0", "r2scan"}


class CHGNetAdapter(Adapter):
    """``layer`` indexes ``atom_conv_layers``; the default (-2) is the atom features CHGNet itself
    returns as ``atom_fea``: after the last message-passing block that feeds the readout. ``layers`` takes any of
    the ``atom_conv_layers`` (``all``: every one) from one forward pass, with one forward hook per layer.
    ``options.weights: random`` builds ``CHGNet(**model_args)`` of the checkpoint under ``options.seed``;
    the fixed (not learned) AtomRef composition weights stay the checkpoint's."""

    family = "chgnet"
    package = "chgnet"
    default_checkpoint = "0.3.0"
    supports_random_weights = True

    def _load(self) -> Loaded:
        from chgnet.model import CHGNet

        if self.checkpoint in PACKAGED:
            self.model = CHGNet.load(model_name=self.checkpoint, use_device=self.device, verbose=False)
            folder = Path(__import__("chgnet").__file__).parent / "pretrained" / self.checkpoint
            path = next(folder.glob("*.pth.tar"))
        else:
            path = Path(self.checkpoint).expanduser()
            if not path.is_file():
                raise ModelError(
                    f"CHGNet checkpoint {self.checkpoint!r} is neither a packaged model "
                    f"({', '.join(sorted(PACKAGED))}) nor an existing file"
                )
            self.model = CHGNet.from_file(str(path)).to(self.device)
        if self.random_seed is not None:
            trained, name = self.model, f"CHGNet {self.checkpoint}"
            self.model = random_weights(lambda: CHGNet(**trained.model_args), trained, self.random_seed, name)
            self.model.to(self.device)
        self.model.eval()
        n_layers = len(self.model.atom_conv_layers)
        index = -2 if self.layer is None else int(self.layer)
        if not -n_layers <= index < n_layers:
            raise ModelError(f"CHGNet has {n_layers} atom-convolution layers; layer {index} does not exist")
        self._layer_index = index % n_layers
        supported = frozenset(range(1, self.model.atom_embedding.embedding.num_embeddings + 1))
        return Loaded(path, supported, f"atom_conv_layers[{self._layer_index}]")

    def _layer_names(self) -> list[str]:
        return [f"atom_conv_layers[{k}]" for k in range(len(self.model.atom_conv_layers))]

    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        return self._hooked_layer(structures, self._layer_index)

    def _embed_batch_layers(self, structures: list[ase.Atoms], names: list[str]) -> list[dict[str, np.ndarray]]:
        return self._hooked_layers(structures, names, self._layer_index)

    def _forward(self, structures: list[ase.Atoms], indices: list[int]) -> dict[int, torch.Tensor]:
        """One forward pass of the batch; the ``(n_atoms, 64)`` output of each atom-convolution layer in
        ``indices``, read by forward hooks."""
        import torch
        from pymatgen.io.ase import AseAtomsAdaptor

        graphs = [
            self.model.graph_converter(AseAtomsAdaptor.get_structure(atoms)).to(self.device) for atoms in structures
        ]
        modules = {k: self.model.atom_conv_layers[k] for k in indices}
        with layer_outputs(modules) as captured, torch.no_grad():
            self.model(graphs, task="e")
        return captured


# Named models (`platonic models`; the README's table of named models is generated from them): how to load each and
# what it is, with where that is stated (`platonic.models.base.Family`).
CHGNET_WEIGHTS = "https://github.com/CederGroupHub/chgnet/blob/main/chgnet/pretrained"
PRESETS = {
    "chgnet-0.3.0": {
        "checkpoint": "0.3.0",
        "architecture": "CHGNet",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": f"{CHGNET_WEIGHTS}/0.3.0/README.md (Dataset Used: MPtrj); MPtrj is MP's GGA/GGA+U calculations",
    },
    "chgnet-0.2.0": {
        "checkpoint": "0.2.0",
        "architecture": "CHGNet",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": f"{CHGNET_WEIGHTS}/0.2.0/README.md (Dataset Used: MPtrj)",
    },
    "chgnet-r2scan": {
        "checkpoint": "r2scan",
        "architecture": "CHGNet",
        "training_data": ["MPtrj", "MP-r2SCAN"],
        "fidelity": "r2SCAN",
        "source": f"{CHGNET_WEIGHTS}/r2scan/README.md (CHGNet 0.3.0, pretrained on MPtrj, fine-tuned on MP-r2SCAN)",
    },
    # a control: the architecture with seeded random weights
    "chgnet-0.3.0-untrained": {
        "checkpoint": "0.3.0",
        "options": {"weights": "random", "seed": 0},
        "architecture": "CHGNet",
        **CONTROL,
        "source": "CHGNet 0.3.0's architecture with seeded random weights (options.weights: random)",
    },
}

FAMILY = Family(CHGNetAdapter, extra="chgnet", presets=PRESETS)
