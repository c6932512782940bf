"""MatterSim (package ``mattersim``): atom features of its M3GNet-style message-passing network.

MatterSim-v1 is an M3GNet architecture (``mattersim.forcefield.m3gnet.m3gnet.M3Gnet``): ``graph_conv`` is a list of
``MainBlock``s that update ``(atom_attr, edge_attr)``; the readout ``final`` (a gated MLP) maps the last block's
``atom_attr`` to per-atom energies. Graphs are built and batched with mattersim's own ``build_dataloader`` and
``batch_to_dict`` and run through its ``Potential.forward`` with forces and stresses off, as its ASE calculator does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import ase
import numpy as np

from platonic.models.base import Adapter, Family, Loaded, ModelError

# Released checkpoints (lower-case name -> file name), as ``Potential.from_checkpoint`` of mattersim 1.2.3 spells them.
PRETRAINED = {
    "mattersim-v1.0.0-1m": "mattersim-v1.0.0-1M.pth",
    "mattersim-v1.0.0-5m": "mattersim-v1.0.0-5M.pth",
}
# Where Potential.from_checkpoint looks for them and mattersim's download_checkpoint puts them.
DEFAULT_CACHE = "~/.local/mattersim/pretrained_models"
# The address download_checkpoint fetches from (it is a local variable there, so it is repeated for messages).
DOWNLOAD_URL = "https://raw.githubusercontent.com/microsoft/mattersim/main/pretrained_models/"
# mattersim calls requests.get without a timeout; its download runs in a thread we stop waiting for after this.
DOWNLOAD_TIMEOUT_S = 600.0


class MatterSimAdapter(Adapter):
    """``checkpoint`` is ``mattersim-v1.0.0-1M`` or ``mattersim-v1.0.0-5M`` (looked up in ``cache_dir`` when set,
    else mattersim's ``~/.local/mattersim/pretrained_models``, and downloaded there by mattersim when missing), or the
    path of a checkpoint written by ``Potential.save``.

    The default ``layer`` is the input of the readout ``final``: the ``(n_atoms, units)`` atom features after the
    last message-passing block. An integer ``k`` takes ``atom_attr`` after block ``graph_conv[k]`` (0-based, negative
    from the end), also ``units`` wide. float32 only: mattersim 1.2.3 casts its one-hot species and periodic offsets
    to float32 inside the forward pass.
    """

    family = "mattersim"
    package = "mattersim"
    default_checkpoint = "mattersim-v1.0.0-1M"

    def _load(self) -> Loaded:
        import torch
        from mattersim.forcefield.m3gnet.m3gnet import M3Gnet
        from mattersim.forcefield.potential import Potential

        path = self._resolve_checkpoint()
        try:
            # Potential.save writes only tensors and plain containers, and mattersim's own from_checkpoint reads the
            # released files with torch.load's default, which is weights_only since torch 2.6.
            checkpoint = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:  # noqa: BLE001 -- zip, pickle and device errors alike mean "not loadable"
            raise ModelError(
                f"MatterSim checkpoint {self.checkpoint!r} ({path}) cannot be read by torch.load: "
                f"{type(err).__name__}: {err}. Is it complete (re-download it) and a file written by Potential.save?"
            ) from err
        if not isinstance(checkpoint, dict) or not {"model_name", "model", "model_args"} <= set(checkpoint):
            raise ModelError(f"{path} is not a MatterSim checkpoint (a Potential.save dict with model, model_args)")
        if str(checkpoint["model_name"]).lower() != "m3gnet":
            raise ModelError(f"{path} holds a {checkpoint['model_name']!r} model; mattersim 1.2.3 runs only m3gnet")
        # What Potential.from_checkpoint does, without its side effects: it creates ~/.local/mattersim even for a file
        # path (fails on read-only homes) and loads with strict=False, which would leave missing weights random.
        model = M3Gnet(device=self.device, **checkpoint["model_args"]).to(self.device)
        result = model.load_state_dict(checkpoint["model"], strict=False)
        if result.missing_keys:
            raise ModelError(
                f"MatterSim checkpoint {path} lacks {len(result.missing_keys)} weights of the model its model_args "
                f"describe (e.g. {result.missing_keys[0]}); it does not belong to mattersim's M3Gnet"
            )
        del checkpoint
        # Potential.forward is the calculator's own entry point; with forces and stresses off it runs the model once.
        self.model = Potential(model, device=self.device, model_name="m3gnet").eval()
        self._net = model.eval()
        self.cutoff = float(model.model_args["cutoff"])
        self.threebody_cutoff = float(model.model_args["threebody_cutoff"])

        n_blocks = len(model.graph_conv)
        if self.layer is None:
            self._block = None
            layer_name = f"input of final (graph_conv[{n_blocks - 1}].atom_attr)"
        else:
            try:
                index = int(self.layer)
            except (TypeError, ValueError) as err:
                raise ModelError(f"MatterSim layer must be a block index, not {self.layer!r}") from err
            if not -n_blocks <= index < n_blocks:
                raise ModelError(f"MatterSim model has {n_blocks} message-passing blocks; layer {index} does not exist")
            self._block = index % n_blocks
            layer_name = f"graph_conv[{self._block}].atom_attr"
        # The species one-hot has max_z + 1 classes (index 0 unused): every Z up to max_z has an embedding.
        supported = frozenset(range(1, int(model.max_z) + 1))
        return Loaded(path, supported, layer_name)

    def _resolve_checkpoint(self) -> Path:
        """An existing file, or a released name found in (or downloaded into) the cache folder."""
        name = str(self.checkpoint)
        path = Path(name).expanduser()
        if path.is_file():
            return path
        key = name.lower().removesuffix(".pth")
        if key not in PRETRAINED:
            raise ModelError(
                f"MatterSim checkpoint {name!r} is neither an existing file nor a released model "
                f"({', '.join(f.removesuffix('.pth') for f in PRETRAINED.values())})"
            )
        filename = PRETRAINED[key]
        cache = self.cache_dir or Path(DEFAULT_CACHE).expanduser()
        cached = cache / filename
        if cached.is_file():  # no network needed, and none is tried
            return cached
        return self._download(filename, cache)

    def _download(self, filename: str, cache: Path) -> Path:
        """Fetch ``filename`` with mattersim's ``download_checkpoint`` into a staging folder in ``cache`` and move it
        into place only when complete, so that a failed download leaves nothing behind."""
        from mattersim.utils.download_utils import download_checkpoint

        url = DOWNLOAD_URL + filename
        try:
            cache.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
        except OSError as err:
            raise _download_error(self.checkpoint, url, cache, err) from err
        failure: list[BaseException] = []

        def fetch() -> None:
            try:
                download_checkpoint(filename, save_folder=str(staging))
            except BaseException as err:  # noqa: BLE001 -- reported to the caller below
                failure.append(err)

        worker = threading.Thread(target=fetch, name=f"mattersim-download-{filename}", daemon=True)
        worker.start()
        worker.join(DOWNLOAD_TIMEOUT_S)
        try:
            if worker.is_alive():
                failure.append(TimeoutError(f"no answer within {DOWNLOAD_TIMEOUT_S:g} s"))
            elif not failure and not (staging / filename).is_file():
                failure.append(FileNotFoundError(f"download_checkpoint wrote no {filename}"))
            if failure:
                raise _download_error(self.checkpoint, url, cache, failure[0]) from failure[0]
            os.replace(staging / filename, cache / filename)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cache / filename

    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        import torch
        from mattersim.datasets.utils.build import build_dataloader
        from mattersim.forcefield.potential import batch_to_dict

        for atoms in structures:
            if unknown := self.unsupported(atoms):
                raise ModelError(
                    f"MatterSim has no embedding for atomic numbers {unknown} ({atoms.get_chemical_formula()})"
                )
        # One loader batch for the whole list: build_dataloader keeps the order (no shuffling) and copies the atoms.
        loader = build_dataloader(
            structures,
            model_type="m3gnet",
            cutoff=self.cutoff,
            threebody_cutoff=self.threebody_cutoff,
            batch_size=len(structures),
            only_inference=True,
        )
        captured: list[torch.Tensor] = []
        if self._block is None:  # what the readout receives
            hook = self._net.final.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach()))
        else:  # MainBlock returns (atom_attr, edge_attr)
            hook = self._net.graph_conv[self._block].register_forward_hook(
                lambda _m, _inputs, output: captured.append(output[0].detach())
            )
        try:
            with torch.no_grad():
                for graph_batch in loader:
                    self.model.forward(
                        batch_to_dict(graph_batch, device=self.device), include_forces=False, include_stresses=False
                    )
        finally:
            hook.remove()
        features = torch.cat(captured)
        counts = [len(atoms) for atoms in structures]
        if features.shape[0] != sum(counts):
            raise ModelError(f"MatterSim returned features for {features.shape[0]} atoms, expected {sum(counts)}")
        return [x.cpu().numpy() for x in torch.split(features, counts)]


def _download_error(checkpoint, url: str, cache: Path, err: BaseException) -> ModelError:
    return ModelError(
        f"MatterSim checkpoint {checkpoint!r} is not in {cache} and downloading it from {url} failed "
        f"({type(err).__name__}: {err}). On a machine with network access download that file into {cache} "
        "(embed.cache_dir chooses the folder), or give the checkpoint as a file path."
    )


# Named models (`platonic models`; the README's table of named models is generated from them): how to load each and
# what it is, with where that is stated (`platonic.models.base.Family`).
# both MatterSim v1 checkpoints: one architecture, one data set, as the package's README states them
MATTERSIM = {
    "architecture": "MatterSim v1 (M3GNet)",
    "training_data": ["MatterSim v1 data"],
    "fidelity": None,
    "source": "https://github.com/microsoft/mattersim (README: M3GNet architecture, trained on data generated by "
    "the workflows of arXiv:2405.04967; it does not state the functional)",
}
PRESETS = {
    "mattersim-v1-1m": {
        "checkpoint": "mattersim-v1.0.0-1M",
        "download": True,
        **MATTERSIM,
    },
    "mattersim-v1-5m": {
        "checkpoint": "mattersim-v1.0.0-5M",
        "download": True,
        **MATTERSIM,
    },
}

FAMILY = Family(MatterSimAdapter, extra="mattersim", presets=PRESETS)
