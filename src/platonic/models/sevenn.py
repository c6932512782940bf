"""SevenNet (package ``sevenn``): invariant node features entering the readout MLP."""

from __future__ import annotations

import math
from pathlib import Path

import ase
import numpy as np

from platonic.models.base import CONTROL, Adapter, Family, Loaded, ModelError, random_weights

READOUT = "reduce_input_to_hidden"

# Checkpoints sevenn downloads on first use (name -> sevenn._const attribute holding its path).
DOWNLOADED = {
    "7net-omat": "SEVENNET_omat",
    "7net-mf-ompa": "SEVENNET_MF_ompa",
    "7net-omni": "SEVENNET_omni",
}


class SevenNetAdapter(Adapter):
    """The default ``layer`` is the node features just before ``reduce_input_to_hidden`` (the
    scalar output of the last interaction block). Multi-fidelity checkpoints need ``modal``
    (e.g. ``PBE``); their modality one-hot is kept apart from the node features by SevenNet itself.
    ``options.weights: random`` builds the checkpoint's config with sevenn's own model builder under
    ``options.seed``; the parameters it does not learn (the convolutions' denominator, the average
    neighbour count of the training data, and the energy shift and scale) stay the checkpoint's.
    ``layers`` takes the scalars of any interaction blocks (``all``: every block) from one pass through the
    modules, each read where ``layer: k`` stops, together with the default features at the readout's input.

    Graphs join atoms closer than the checkpoint's own cutoff (5 A for SevenNet-0). ``options.cutoff`` (A) builds
    them with a smaller one instead, as ``sevenn.util.unlabeled_atoms_to_input(atoms, cutoff)`` does when given a
    cutoff by hand (Li & Walsh built SevenNet-omat's graphs with 5.0): the network, its radial basis and envelope stay
    the checkpoint's, the neighbours beyond ``cutoff`` are left out. A cutoff above the checkpoint's is refused: the
    envelope is not zero past it, so those neighbours would enter with weights the model never saw."""

    family = "sevenn"
    package = "sevenn"
    default_checkpoint = "7net-0_11Jul2024"
    supports_random_weights = True

    def _load(self) -> Loaded:
        import sevenn._keys as KEY
        from sevenn import util

        path = self._resolve_checkpoint()
        try:
            checkpoint = util.load_checkpoint(str(path))
        except (ValueError, FileNotFoundError) as err:
            raise ModelError(f"SevenNet checkpoint {self.checkpoint!r} cannot be loaded: {err}") from err
        # float32 only: e3nn compiles its linear layers for the dtype in effect when the model is built
        self.model = checkpoint.build_model()
        if self.random_seed is not None:
            from sevenn.model_build import build_E3_equivariant_model

            def build():
                return build_E3_equivariant_model(checkpoint.config)

            self.model = random_weights(build, self.model, self.random_seed, f"SevenNet {self.checkpoint}")
        self.model.set_is_batch_data(True)
        self.model.to(self.device).eval()
        self.cutoff = _graph_cutoff(self.options.get("cutoff"), float(checkpoint.config[KEY.CUTOFF]), self.checkpoint)
        self.type_map = dict(checkpoint.config[KEY.TYPE_MAP])
        self.modal = self.options.get("modal")
        modal_map = self.model.modal_map or {}
        if modal_map and self.modal not in modal_map:
            raise ModelError(
                f"SevenNet checkpoint {self.checkpoint!r} is multi-fidelity: set options.modal to one of "
                f"{sorted(modal_map)}"
            )
        names = list(self.model._modules)
        if self.layer is None:
            self._stop = READOUT
        else:
            # an interaction block index: take the scalar channels after its equivariant gate
            gate = f"{int(self.layer)}_equivariant_gate"
            if gate not in names:
                raise ModelError(f"SevenNet model has no interaction block {self.layer}")
            self._stop = names[names.index(gate) + 1]
        if self._stop not in names:
            raise ModelError(f"SevenNet model has no module {self._stop!r}; modules: {names}")
        layer_name = f"input of {self._stop}" if self.layer is None else f"block {self.layer} scalars"
        return Loaded(path, frozenset(int(z) for z in self.type_map), layer_name)

    def _resolve_checkpoint(self) -> Path:
        """A file path, a name shipped in the wheel, or a name sevenn downloads (into ``cache_dir``
        when set, else sevenn's own location)."""
        from sevenn import _const, util

        path = Path(self.checkpoint).expanduser()
        if path.is_file():
            return path
        name = str(self.checkpoint).lower()
        url = None
        if name in DOWNLOADED:
            packaged = getattr(_const, DOWNLOADED[name])
            url = _const.CHECKPOINT_DOWNLOAD_LINKS.get(packaged)
            if self.cache_dir is not None:
                cached = self.cache_dir / Path(packaged).name
                if cached.is_file():
                    return cached
                try:
                    return Path(util.download_checkpoint(str(cached), url))
                except Exception as err:
                    raise _download_error(self.checkpoint, url, cached, err) from err
        try:
            return Path(util.pretrained_name_to_path(self.checkpoint))
        except ValueError as err:
            raise ModelError(
                f"SevenNet checkpoint {self.checkpoint!r} is neither a file nor a pretrained name "
                f"({', '.join(util.get_available_pretrained_models())})"
            ) from err
        except Exception as err:  # sevenn's own download failed
            raise _download_error(self.checkpoint, url, "sevenn's package folder or ~/.cache/sevennet", err) from err

    def _layer_names(self) -> list[str]:
        return [f"block {k} scalars" for k in range(len(self._gates()))]

    def _gates(self) -> list[str]:
        """The equivariant-gate module of each interaction block, in order (block ``k``: ``k_equivariant_gate``)."""
        names = list(self.model._modules)
        return [f"{k}_equivariant_gate" for k in range(len(names)) if f"{k}_equivariant_gate" in names]

    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        import sevenn._keys as KEY
        import torch

        data = self._batch(structures)
        with torch.no_grad():
            data = self.model._preprocess(data)
            for name, module in self.model._modules.items():
                if name == self._stop:
                    break
                data = module(data)
        features = data[KEY.NODE_FEATURE]
        if self.layer is not None:
            features = features[:, : _scalar_channels(self.model, self._stop)]
        counts = [len(atoms) for atoms in structures]
        return [x.cpu().numpy() for x in torch.split(features.detach(), counts)]

    def _embed_batch_layers(self, structures: list[ase.Atoms], names: list[str]) -> list[dict[str, np.ndarray]]:
        """One pass through the modules up to the readout: block ``k``'s scalars are read at the input of the
        module after its gate (where ``layer: k`` stops), the default features at the input of the readout."""
        import sevenn._keys as KEY
        import torch

        modules = list(self.model._modules)
        layer_names = self._layer_names()
        stops: dict[str, list[str]] = {}  # module -> the layers read at its input
        for name in names:
            gate = self._gates()[layer_names.index(name)]
            stops.setdefault(modules[modules.index(gate) + 1], []).append(name)
        captured: dict[str, torch.Tensor] = {}
        data = self._batch(structures)
        with torch.no_grad():
            data = self.model._preprocess(data)
            for module_name, module in self.model._modules.items():
                for name in stops.get(module_name, []):
                    width = _scalar_channels(self.model, module_name)
                    captured[name] = data[KEY.NODE_FEATURE][:, :width].detach().clone()
                if module_name == self._stop:
                    break
                data = module(data)
        captured[self.layer_name] = data[KEY.NODE_FEATURE].detach().clone()
        counts = [len(atoms) for atoms in structures]
        split = {name: torch.split(features, counts) for name, features in captured.items()}
        return [{name: rows[i].cpu().numpy() for name, rows in split.items()} for i in range(len(structures))]

    def _batch(self, structures: list[ase.Atoms]):
        """SevenNet's own graphs of ``structures`` (with the modality of multi-fidelity checkpoints), as one batch."""
        import sevenn._keys as KEY
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph
        from torch_geometric.data import Batch

        graphs = []
        for atoms in structures:
            graph = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff))
            if self.modal:
                graph[KEY.DATA_MODALITY] = self.modal
            graphs.append(graph)
        return Batch.from_data_list(graphs).to(self.device)


def _graph_cutoff(option, own: float, checkpoint) -> float:
    """The radius (A) graphs are built with: ``own``, the checkpoint's cutoff, unless ``option`` (options.cutoff,
    a number or its text) asks for a smaller positive one."""
    if option is None:
        return own
    try:
        cutoff = float(option)
    except (TypeError, ValueError):
        cutoff = math.nan
    if not math.isfinite(cutoff) or cutoff <= 0:
        raise ModelError(f"SevenNet options.cutoff is a positive number of Angstrom (or null), not {option!r}")
    if cutoff > own:
        raise ModelError(
            f"SevenNet options.cutoff {cutoff:g} A exceeds the cutoff of checkpoint {checkpoint!r} ({own:g} A): its "
            "radial envelope is not zero beyond that, so the model cannot take the extra neighbours; give at most "
            f"{own:g}, or null for the checkpoint's own"
        )
    return cutoff


def _download_error(checkpoint, url, target, err) -> ModelError:
    return ModelError(
        f"SevenNet checkpoint {checkpoint!r} is not available offline and downloading it from {url} into "
        f"{target} failed ({type(err).__name__}). Download it on a machine with network access into that "
        "location (or set embed.cache_dir), or give the checkpoint as a file path."
    )


def _scalar_channels(model, module_name: str) -> int:
    """Number of leading ``0e`` channels in the irreps entering ``module_name``."""
    from e3nn.o3 import Irreps

    irreps = Irreps(model.get_irreps_in(module_name))
    count = 0
    for mul, ir in irreps:
        if ir.l != 0 or ir.p != 1:
            break
        count += mul
    return count


# Named models (`platonic models`; the README's table of named models is generated from them): how to load each and
# what it is, with where that is stated (`platonic.models.base.Family`).
SEVENNET_DOCS = "https://github.com/MDIL-SNU/SevenNet/blob/main/docs/source/pretrained.md"
SEVENNET_WEIGHTS = "https://github.com/MDIL-SNU/SevenNet/blob/main/sevenn/pretrained_potentials"
PRESETS = {
    "sevennet-0-11jul2024": {
        "checkpoint": "7net-0_11Jul2024",
        "architecture": "SevenNet (NequIP)",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": f"{SEVENNET_WEIGHTS}/SevenNet_0__11Jul2024/README.md (pre-trained on MPTrj)",
    },
    "sevennet-0-22may2024": {
        "checkpoint": "7net-0_22May2024",
        "architecture": "SevenNet (NequIP)",
        "training_data": ["MPF.2021.2.8"],
        "fidelity": "PBE/PBE+U",
        "source": f"{SEVENNET_WEIGHTS}/SevenNet_0__22May2024/README.md (pre-trained on the M3GNet data set, "
        "MPF.2021.2.8, not MPtrj)",
    },
    "sevennet-l3i5": {
        "checkpoint": "7net-l3i5",
        "architecture": "SevenNet (NequIP)",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": f"{SEVENNET_DOCS} does not name its data; MPtrj per the authors' Matbench Discovery entry "
        "(https://github.com/janosh/matbench-discovery/blob/main/models/sevennet/sevennet-l3i5.yml, training_set) "
        "and the checkpoint's own config (load_dataset_path: .../chgnet/chgnet_total_dataset_uncorrected)",
    },
    "sevennet-mf-0": {
        "checkpoint": "7net-mf-0",
        "options": {"modal": "PBE"},
        # the same network as SevenNet-0 with fidelity-dependent (modal) linear layers: one architecture for the
        # training data vs architecture comparison
        "architecture": "SevenNet (NequIP)",
        "training_data": ["MP PBE(+U) trajectories", "MP r2SCAN trajectories"],
        "fidelity": "PBE/PBE+U",
        "source": f"{SEVENNET_WEIGHTS}/SevenNet_MF_0/README.md (PBE(+U) and r2SCAN relaxation trajectories of the "
        "Materials Project; it does not say whether the PBE part is MPtrj; multi-fidelity: modal linear layers in "
        "SevenNet's network); fidelity: the PBE modal this preset uses",
    },
    # a control: the architecture with seeded random weights
    "sevennet-0-11jul2024-untrained": {
        "checkpoint": "7net-0_11Jul2024",
        "options": {"weights": "random", "seed": 0},
        "architecture": "SevenNet (NequIP)",
        **CONTROL,
        "source": "SevenNet-0 (11Jul2024)'s architecture with seeded random weights (options.weights: random)",
    },
    # downloaded on first use
    "sevennet-omat": {
        "checkpoint": "7net-omat",
        "download": True,
        "architecture": "SevenNet (NequIP)",
        "training_data": ["OMat24"],
        "fidelity": "PBE/PBE+U",
        "source": f"{SEVENNET_DOCS} (SevenNet-omat: trained exclusively on OMat24)",
    },
}

FAMILY = Family(SevenNetAdapter, extra="sevenn", presets=PRESETS)
