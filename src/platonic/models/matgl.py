"""matgl (package ``matgl``, PyTorch Geometric since 3.0): M3GNet, CHGNet and TensorNet potentials.

The features are the per-atom inputs of the model's readout, read from ``model.feature_dict``, which matgl itself
refreshes on every forward pass. Graphs are built with matgl's ``Atoms2Graph``, batched with its ``collate_fn_graph``
and run through the ``Potential`` wrapper with forces and stresses switched off, so positions and periodic shifts are
assembled by matgl's own code, exactly as in its ASE calculator.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse
from urllib.request import getproxies

import ase
import numpy as np
from ase.data import atomic_numbers

from platonic.models.base import Adapter, Family, Loaded, ModelError

if TYPE_CHECKING:
    import torch

# Node-feature entry of ``feature_dict["gc_<i>"]`` per supported architecture. TensorNet stores an equivariant
# (n_atoms, units, 3, 3) tensor there instead; its invariants are taken the way TensorNet's own readout does.
NODE_KEY = {"M3GNet": "node_feat", "CHGNet": "atom_feat", "TensorNet": None}

# What a matgl model directory holds (``model.save(path)``): constructor arguments, state dict, metadata.
MODEL_FILES = ("model.pt", "state.pt", "model.json")
WEIGHTS_FILE = "state.pt"  # the parameters; model.pt holds only the constructor arguments


class MatGLAdapter(Adapter):
    """``checkpoint`` is a pretrained name matgl loads from the Hugging Face Hub (bare names are looked up in the
    ``materialyze`` organisation, ``owner/name`` anywhere), cached under ``cache_dir`` when set and matgl's own
    ``~/.cache/matgl`` otherwise; or a directory written by ``model.save(path)``.

    The default ``layer`` is what the readout consumes: the atom features after the last message-passing block
    (M3GNet ``gc_<n>.node_feat``, CHGNet ``gc_<n>.atom_feat``), or TensorNet's ``readout`` features (linear map of
    the normalised invariant norms of the last block's tensors). An integer ``k`` takes the features after block
    ``k`` (0-based, negative from the end); for TensorNet these are the norms of the scalar, antisymmetric and
    symmetric-traceless parts of that block's tensors, ``3 * units`` wide.
    """

    family = "matgl"
    package = "matgl"
    default_checkpoint = "TensorNet-PES-MatPES-PBE-2025.2"
    dtypes = ("float32", "float64")

    def _load(self) -> Loaded:
        from matgl.apps.pes import Potential
        from matgl.ext.ase import Atoms2Graph

        folder, loaded = self._resolve_and_load()
        potential = loaded if isinstance(loaded, Potential) else Potential(model=_unwrap(loaded))
        # Our own instance: with every derivative off, Potential.forward runs the model once under no_grad. Going
        # through it rather than the bare model keeps matgl's own assembly of positions and periodic shifts.
        for flag in ("calc_forces", "calc_stresses", "calc_hessian", "calc_magmom"):
            setattr(potential, flag, False)
        inner = _unwrap(potential.model)
        architecture = type(inner).__name__
        if architecture not in NODE_KEY or getattr(potential, "calc_charge", False):
            raise ModelError(
                f"matgl model {self.checkpoint!r} is a {architecture}; the matgl adapter supports "
                f"{', '.join(NODE_KEY)} potentials"
            )
        # Potential.forward casts its inputs to the dtype of its buffers, so .to(dtype) is all float64 needs.
        self.model = potential.to(device=self.device, dtype=self.torch_dtype).eval()
        self._inner = inner
        self._architecture = architecture
        self._converter = Atoms2Graph(tuple(inner.element_types), float(inner.cutoff))
        n_blocks = len(_blocks(inner))
        if self.layer is None:
            self._block = None
            node_key = NODE_KEY[architecture]
            layer_name = "readout" if node_key is None else f"gc_{n_blocks}.{node_key}"
        else:
            index = _block_index(self.layer)
            if not -n_blocks <= index < n_blocks:
                raise ModelError(f"{architecture} model has {n_blocks} blocks; layer {index} does not exist")
            self._block = index % n_blocks + 1  # matgl numbers its blocks gc_1 .. gc_n
            node_key = NODE_KEY[architecture] or "norms"
            layer_name = f"gc_{self._block}.{node_key}"
        supported = frozenset(atomic_numbers[symbol] for symbol in inner.element_types)
        return Loaded(folder / WEIGHTS_FILE, supported, layer_name)

    def _resolve_and_load(self):
        """Returns ``(model directory, loaded object)``; named models come from the cache or are downloaded."""
        import matgl

        path = Path(str(self.checkpoint)).expanduser()
        if path.is_file() and path.name in MODEL_FILES:
            path = path.parent
        if path.is_dir():
            missing = [name for name in MODEL_FILES if not (path / name).is_file()]
            if missing:
                raise ModelError(
                    f"{path} is not a matgl model directory (missing {', '.join(missing)}); "
                    "write one with model.save(path)"
                )
            return path, _load_model(path, self.checkpoint)
        if _looks_like_path(str(self.checkpoint)):
            raise ModelError(f"matgl checkpoint {self.checkpoint!r} is neither a model directory nor a model name")

        from matgl.config import MATGL_CACHE
        from matgl.utils.io import HF_MATGL_ORG

        name = str(self.checkpoint)
        repo_id = name if "/" in name else f"{HF_MATGL_ORG}/{name}"
        cache = self.cache_dir or Path(MATGL_CACHE)
        cached = _cached_folder(repo_id, cache)
        if cached is not None:  # no network needed, and none is tried
            return cached, _load_model(cached, name)
        reason = _hub_unreachable()
        if reason is None:
            try:
                loaded = matgl.load_model(name, cache_dir=str(cache))
            except Exception as err:  # noqa: BLE001 -- matgl wraps every failure in ValueError/RuntimeError
                cached = _cached_folder(repo_id, cache)
                if cached is not None:  # downloaded, but matgl could not build it
                    raise ModelError(f"matgl model {name!r} in {cached} cannot be loaded: {_root(err)}") from err
                reason = f"the download failed ({_root(err)})"
            else:
                cached = _cached_folder(repo_id, cache)
                if cached is None:
                    raise ModelError(f"matgl loaded {name!r} but its files are not under {cache}")
                return cached, loaded
        raise ModelError(
            f"matgl model {name!r} is not in the cache {cache} (Hugging Face repo {repo_id}) and {reason}. "
            f"On a machine with network access run `hf download {repo_id} --cache-dir {cache}` and copy that folder "
            f"here (embed.cache_dir chooses it), or `hf download {repo_id} --local-dir DIR` and give DIR as the "
            "checkpoint."
        )

    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        import torch
        from matgl.graph.data import collate_fn_graph

        items = []
        for atoms in structures:
            self._check(atoms)
            graph, lattice, state = self._converter.get_graph(atoms)
            # collate_fn_graph wants one label per structure; the forward pass ignores it
            items.append((graph, lattice, torch.as_tensor(np.asarray(state)), {"none": 0.0}))
        graphs, lattices, states, _ = collate_fn_graph(items)
        lattices = lattices.reshape(-1, 3, 3)  # matgl keeps (1, 3, 3) for one structure and squeezes the rest
        with torch.no_grad():
            self.model(graphs.to(self.device), lattices.to(self.device), states.to(self.device))
        features = self._select(self._inner.feature_dict)
        self._inner.feature_dict = {}  # it holds every intermediate tensor of the batch (three-body bases included)
        counts = [len(atoms) for atoms in structures]
        return [x.cpu().numpy() for x in torch.split(features.detach(), counts)]

    def _select(self, feature_dict: dict) -> torch.Tensor:
        """The chosen ``(n_atoms_total, n_features)`` tensor from matgl's ``feature_dict``."""
        node_key = NODE_KEY[self._architecture]
        if self._block is None:
            if node_key is None:
                return feature_dict["readout"]
            return feature_dict[f"gc_{len(_blocks(self._inner))}"][node_key]
        block = feature_dict[f"gc_{self._block}"]
        if node_key is not None:
            return block[node_key]
        return _tensornet_invariants(self._inner, block)

    def _check(self, atoms: ase.Atoms) -> None:
        unknown = self.unsupported(atoms)
        if unknown:
            raise ModelError(f"matgl model {self.checkpoint!r} does not know atomic numbers {unknown}")
        # Atoms2Graph treats anything not periodic along all three axes as a molecule (no periodic images)
        if atoms.pbc.any() and not atoms.pbc.all():
            raise ModelError("matgl builds graphs for fully periodic cells or molecules, not partially periodic ones")


def _block_index(layer) -> int:
    try:
        return int(layer)
    except (TypeError, ValueError):
        raise ModelError(f"matgl layer must be a block index (or unset for the readout input), not {layer!r}") from None


def _unwrap(model):
    """The graph model inside ``torch.compile`` and ``TransformedTargetModel`` wrappers."""
    from matgl.models import TransformedTargetModel

    model = getattr(model, "_orig_mod", model)
    while isinstance(model, TransformedTargetModel):
        model = getattr(model.model, "_orig_mod", model.model)
    return model


def _blocks(model) -> torch.nn.ModuleList:
    """The message-passing blocks, in order (their outputs are ``gc_1`` .. ``gc_n`` in ``feature_dict``)."""
    import torch

    for name in ("graph_layers", "atom_graph_layers", "layers"):  # M3GNet, CHGNet, TensorNet
        if isinstance(getattr(model, name, None), torch.nn.ModuleList):
            return getattr(model, name)
    raise ModelError(f"{type(model).__name__} has no message-passing blocks the matgl adapter knows")


def _tensornet_invariants(model, tensors: torch.Tensor) -> torch.Tensor:
    """Per-atom invariants of a TensorNet block output, computed as TensorNet's readout does:
    ``(n_atoms, units, 3, 3)`` -> ``(n_atoms, 3 * units)`` norms of its I, A and S parts."""
    import torch

    if getattr(model, "_use_warp", False):  # the NVIDIA Warp kernels keep their own tensor layout
        from matgl.ops import fn_tensor_norm3

        return fn_tensor_norm3(tensors)
    from matgl.utils.maths import decompose_tensor, tensor_norm

    scalars, skew, traceless = decompose_tensor(tensors)
    return torch.cat((tensor_norm(scalars), tensor_norm(skew), tensor_norm(traceless)), dim=-1)


def _load_model(folder: Path, checkpoint) -> object:
    import matgl

    try:
        return matgl.load_model(folder)
    except Exception as err:  # noqa: BLE001 -- matgl wraps every failure in ValueError/RuntimeError
        raise ModelError(f"matgl model {checkpoint!r} in {folder} cannot be loaded: {_root(err)}") from err


def _cached_folder(repo_id: str, cache: Path) -> Path | None:
    """The snapshot folder holding all model files of ``repo_id`` in a Hugging Face cache, without network."""
    from huggingface_hub import try_to_load_from_cache

    found = [try_to_load_from_cache(repo_id, name, cache_dir=str(cache)) for name in MODEL_FILES]
    if all(isinstance(path, str) for path in found):
        return Path(found[0]).parent
    return None


def _hub_unreachable() -> str | None:
    """Why the Hugging Face Hub cannot be reached, or ``None``. Checked first because huggingface_hub retries a
    failing request for about 25 s, twice over in matgl's error path."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if "https" in getproxies():  # behind a proxy, local name resolution says nothing about reachability
        return None
    host = urlparse(constants.ENDPOINT).hostname or constants.ENDPOINT
    try:
        socket.getaddrinfo(host, 443)
    except OSError as err:
        return f"{host} cannot be resolved ({err}): no network"
    return None


def _looks_like_path(checkpoint: str) -> bool:
    """A filesystem path rather than a Hub name (``name`` or ``owner/name``)."""
    return checkpoint.startswith(("/", "~", ".")) or checkpoint.count("/") > 1 or "\\" in checkpoint


def _root(err: BaseException) -> str:
    """The innermost message of matgl's chained errors (its outer ones say only 'bad model name')."""
    while err.__cause__ is not None:
        err = err.__cause__
    return f"{type(err).__name__}: {err}"


# Named models (`platonic models`; the README's table of named models is generated from them): how to load each and
# what it is, with where that is stated (`platonic.models.base.Family`).
MATGL_DOCS = "https://github.com/materialyzeai/matgl (README: MatPES potentials); MatPES: https://matpes.ai"
PRESETS = {
    # matgl's MatPES potentials on the Hugging Face Hub (names as in matgl 4.1.2's documentation)
    "m3gnet-matpes-pbe": {
        "checkpoint": "M3GNet-PES-MatPES-PBE-2025.2",
        "download": True,
        "architecture": "M3GNet",
        "training_data": ["MatPES-PBE"],
        "fidelity": "PBE",
        "source": MATGL_DOCS + " (MatPES PBE is without +U, as mace-foundations' table says of MATPES-PBE)",
    },
    "chgnet-matpes-pbe": {
        "checkpoint": "CHGNet-PES-MatPES-PBE-2025.2.10",
        "download": True,
        "architecture": "CHGNet (matgl)",
        "training_data": ["MatPES-PBE"],
        "fidelity": "PBE",
        "source": MATGL_DOCS + " (MatPES PBE is without +U, as mace-foundations' table says of MATPES-PBE)",
    },
    "tensornet-matpes-pbe": {
        "checkpoint": "TensorNet-PES-MatPES-PBE-2025.2",
        "download": True,
        "architecture": "TensorNet",
        "training_data": ["MatPES-PBE"],
        "fidelity": "PBE",
        "source": MATGL_DOCS + " (MatPES PBE is without +U, as mace-foundations' table says of MATPES-PBE)",
    },
}

FAMILY = Family(MatGLAdapter, extra="matgl", presets=PRESETS)
