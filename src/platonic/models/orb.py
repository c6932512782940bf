"""Orb (package ``orb-models``): node features of the Orb message-passing backbone.

An Orb forcefield (``DirectForcefieldRegressor`` or ``ConservativeForcefieldRegressor``) is a backbone ``model``, a
``orb_models.forcefield.gns.MoleculeGNS`` (atom-type embedding and encoder MLP, then ``gnn_stacks``: one
``AttentionInteractionNetwork`` per message-passing step, 5 in Orb v3), and heads (energy, forces, stress, confidence)
that all read the backbone's output ``node_features``. Graphs are built one structure at a time with orb's
``ase_atoms_to_atom_graphs`` and the model's own ``system_config`` (6 Å; at most 120 neighbours for the "inf" models,
20 for the "20" ones), batched with ``orb_models.forcefield.base.batch_graphs`` and run through the backbone alone: no
heads, no forces, no gradients.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import ase
import numpy as np

from platonic.models.base import Adapter, Family, Loaded, ModelError, Prediction

# orb-models' pretrained loaders fetch weights with cached_path, which has no timeout of its own (and retries with
# backoff); the fetch runs in a thread we stop waiting for after this many seconds.
DOWNLOAD_TIMEOUT_S = 600.0
# Generic Orb v3 layouts for weights whose hyperparameters differ from a released model (options.model_kwargs are
# passed to orb-models' own architecture function, options.system_config to its SystemConfig).
BUILDERS = {
    "orb-v3-direct": "orb_v3_direct_architecture",
    "orb-v3-conservative": "orb_v3_conservative_architecture",
}
# How periodic structures are oriented before the graph is built (see OrbAdapter).
ORIENTATIONS = ("standard", "as-given")
# ase_atoms_to_atom_graphs one-hot encodes atomic numbers into this many classes (Z = 0..117), so Z = 118 fails there
# although the embedding table has a row for it.
ONE_HOT_CLASSES = 118


class OrbAdapter(Adapter):
    """``checkpoint`` is a name in orb-models' pretrained registry (``orb-v3-conservative-inf-omat``,
    ``orb-v3-direct-inf-mpa``, ...: the keys of ``orb_models.forcefield.pretrained.ORB_PRETRAINED_MODELS``), whose
    weights are looked up in ``cache_dir`` when set, else in cached_path's cache (``$CACHED_PATH_CACHE_ROOT``, default
    ``~/.cache/cached_path``), and downloaded there by cached_path when missing; or the path of a weights file (a
    state dict, the format orb distributes). A file needs ``options.architecture``: a registry name (the released
    layout and neighbour settings of that model; inferred when the file keeps its released name, e.g.
    ``orb-v3-direct-inf-omat-20250404.ckpt``), or ``orb-v3-direct`` / ``orb-v3-conservative`` with
    ``options.model_kwargs`` (e.g. ``{latent_dim: 256, num_message_passing_steps: 5}``) and ``options.system_config``
    (``{radius: 6.0, max_num_neighbors: 120}``, the defaults).

    The default ``layer`` is the backbone's ``node_features``, the input of every head: ``(n_atoms, latent_dim)``,
    256 wide for Orb v3, after the last message-passing step. An integer ``k`` takes the node features after step
    ``gnn_stacks[k]`` (0-based, negative from the end), also ``latent_dim`` wide. ``options.max_num_neighbors``
    overrides the model's neighbour cap, as ORBCalculator's argument of that name does. Models conditioned on total
    charge and spin (the OMol ones) need ``options.charge`` and ``options.spin``. The forward pass runs in
    ``float32`` (full-precision matmuls: orb's own ``float32-high`` would allow TF32 on GPUs) or ``float64``.

    Orb is not rotation-invariant by construction: its edge features are spherical harmonics of the edge vectors fed
    to plain MLPs, and it learns (approximate) invariance from augmented data. So that features depend on the crystal
    and not on how its axes happen to be laid in space, periodic structures are rotated into ase's standard cell
    orientation (``Cell.standard_form``: lower-triangular cell, a along x, b in the xy plane) first. That is the
    orientation CIF readers produce, so for structures read from CIFs it changes nothing and the features are exactly
    orb's own. ``options.orientation: as-given`` skips it; non-periodic structures are always used as given.
    """

    family = "orb"
    package = "orb-models"
    default_checkpoint = "orb-v3-conservative-inf-omat"
    predicts = True
    dtypes = ("float32", "float64")

    def _load(self) -> Loaded:
        from orb_models.forcefield.nn_util import ChargeSpinConditioner

        self.orientation = str(self.options.get("orientation", "standard"))
        if self.orientation not in ORIENTATIONS:
            raise ModelError(f"Orb options.orientation is one of {', '.join(ORIENTATIONS)}, not {self.orientation!r}")
        path, architecture = self._resolve_checkpoint()
        self.model = self._build(path, architecture).eval()
        self._net = self.model.model  # the MoleculeGNS backbone
        self.architecture = architecture
        self.system_config = self.model.system_config
        self.max_num_neighbors = int(self.options.get("max_num_neighbors") or self.system_config.max_num_neighbors)

        self._charge_spin = None
        if isinstance(self._net.conditioner, ChargeSpinConditioner):
            if self.options.get("charge") is None or self.options.get("spin") is None:
                raise ModelError(
                    f"Orb model {self.checkpoint!r} is conditioned on total charge and spin: set options.charge and "
                    "options.spin (e.g. 0 and 1 for a neutral singlet)"
                )
            self._charge_spin = (float(self.options["charge"]), float(self.options["spin"]))

        n_steps = len(self._net.gnn_stacks)
        if self.layer is None:
            self._step = None
            layer_name = f"node_features (after gnn_stacks[{n_steps - 1}], input of the heads)"
        else:
            try:
                index = int(self.layer)
            except (TypeError, ValueError) as err:
                raise ModelError(f"Orb layer must be a message-passing step index, not {self.layer!r}") from err
            if not -n_steps <= index < n_steps:
                raise ModelError(f"Orb model has {n_steps} message-passing steps; layer {index} does not exist")
            self._step = index % n_steps
            layer_name = f"gnn_stacks[{self._step}] node features"

        rows = self._net.atom_emb.embeddings.num_embeddings if self._net.use_embedding else ONE_HOT_CLASSES
        supported = frozenset(range(1, min(rows, ONE_HOT_CLASSES)))
        return Loaded(path, supported, layer_name)

    def _resolve_checkpoint(self) -> tuple[Path, str]:
        """The weights file and the architecture (a registry name or a ``BUILDERS`` key) to load it into."""
        registry = _registry()
        name = str(self.checkpoint)
        path = Path(name).expanduser()
        if path.is_file():
            architecture = self.options.get("architecture") or _architecture_of_file(path.name)
            if architecture is None:
                raise ModelError(
                    f"Orb weights file {path} needs options.architecture: one of {', '.join(registry)} (the "
                    f"released layouts) or {', '.join(BUILDERS)} with options.model_kwargs"
                )
            return path, str(architecture)
        key = name.lower().replace("_", "-")
        if key not in registry:
            raise ModelError(
                f"Orb checkpoint {name!r} is neither an existing file nor a pretrained name ({', '.join(registry)})"
            )
        return self._fetch(key, registry[key]), key

    def _fetch(self, name: str, url: str) -> Path:
        """The cached weights of a pretrained model, found without any network access when present, else fetched by
        cached_path (in a thread, so that a connection that never answers cannot hang the job)."""
        import cached_path

        cache = self.cache_dir or Path(cached_path.get_cache_dir())
        # cached_path itself asks the server for the ETag before looking in its cache, so look first: released
        # checkpoints are dated files that never change.
        found = cached_path.find_latest_cached(url, cache)
        if found is not None:
            return Path(found)
        result: list[Path] = []
        failure: list[BaseException] = []

        def fetch() -> None:
            try:
                result.append(Path(cached_path.cached_path(url, cache_dir=cache, quiet=True)))
            except BaseException as err:  # noqa: BLE001 -- reported to the caller below
                failure.append(err)

        worker = threading.Thread(target=fetch, name=f"orb-download-{name}", daemon=True)
        worker.start()
        worker.join(DOWNLOAD_TIMEOUT_S)
        if worker.is_alive():
            failure.append(TimeoutError(f"no answer within {DOWNLOAD_TIMEOUT_S:g} s"))
        if failure:
            err = failure[0]
            raise ModelError(
                f"Orb checkpoint {self.checkpoint!r} is not in {cache} and downloading it from {url} failed "
                f"({type(err).__name__}: {str(err)[:300]}). On a machine with network access run "
                f"`python -c \"from cached_path import cached_path; cached_path('{url}', cache_dir='{cache}')\"` "
                "(embed.cache_dir chooses the folder), or download that file and give its path as the checkpoint "
                "(its released file name tells the architecture)."
            ) from err
        return result[0]

    def _build(self, path: Path, architecture: str):
        """Orb's own model construction and ``load_model`` (strict for the backbone; missing heads are allowed)."""
        from orb_models.forcefield import pretrained
        from orb_models.forcefield.atomic_system import SystemConfig

        registry = _registry()
        # float32-highest keeps full-precision matmuls; set_torch_precision changes torch's globals, restored below.
        precision = "float64" if self.dtype == "float64" else "float32-highest"
        model_kwargs = dict(self.options.get("model_kwargs") or {})
        config = dict(self.options.get("system_config") or {})
        try:
            with _torch_globals_restored():
                if architecture in registry:
                    if model_kwargs or config:
                        raise ModelError(
                            f"options.model_kwargs and options.system_config go with an architecture of "
                            f"{', '.join(BUILDERS)}; {architecture!r} has a fixed layout"
                        )
                    loader = pretrained.ORB_PRETRAINED_MODELS[architecture]
                    return loader(weights_path=str(path), device=self.device, precision=precision, compile=False)
                if architecture in BUILDERS:
                    system_config = SystemConfig(
                        radius=float(config.pop("radius", 6.0)),
                        max_num_neighbors=int(config.pop("max_num_neighbors", 120)),
                    )
                    if config:
                        raise ModelError(
                            f"options.system_config takes radius and max_num_neighbors, not {sorted(config)}"
                        )
                    builder = getattr(pretrained, BUILDERS[architecture])
                    model = builder(**model_kwargs, device=self.device, system_config=system_config)
                    return pretrained.load_model(model, str(path), self.device, precision=precision, compile=False)
        except ModelError:
            raise
        except Exception as err:  # noqa: BLE001 -- pickle, zip, shape and key errors alike mean "does not fit"
            raise ModelError(
                f"Orb weights {path} cannot be loaded into the {architecture!r} architecture: {type(err).__name__}: "
                f"{str(err)[:500]}. Is the file complete, and is options.architecture (and model_kwargs) right?"
            ) from err
        raise ModelError(
            f"unknown Orb architecture {architecture!r}; use one of {', '.join(registry)} or {', '.join(BUILDERS)}"
        )

    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        return self._pass(structures, predict=False)[0]

    def _embed_predict_batch(self, structures: list[ase.Atoms], names: list[str]) -> list[tuple]:
        """The features of `_embed_batch` (from the regressor's ``predict`` pass for a direct model, from a no_grad pass
        of the backbone for a conservative one) and the predictions of ``predict``, read as
        orb-models' ``ORBCalculator`` reads it: ``energy`` (eV), and the gradient forces and stress of a conservative
        model (its ``grad_forces_name``, ``grad_stress_name``) or the direct heads' ``forces`` and ``stress``, in
        eV/A and eV/A^3 with the stress in ASE's Voigt order and sign. Where the adapter rotated a cell into the
        standard orientation, forces and stress are rotated back into the structure's own frame."""
        import torch
        from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

        features, out, rotations = self._pass(structures, predict=True)
        conservative = hasattr(self.model, "grad_forces_name")
        if conservative:
            # its predict differentiates through the backbone, whose float32 sums then differ from the no_grad pass by
            # ~1e-6: the features come from that pass instead (one more backbone pass), so that a store's embedding
            # does not depend on embed.predictions
            features, _, _ = self._pass(structures, predict=False)
        force_key = self.model.grad_forces_name if conservative else "forces"
        stress_key = self.model.grad_stress_name if conservative else "stress"
        counts = [len(atoms) for atoms in structures]
        energies = out["energy"].detach().cpu().double().reshape(-1)
        forces = torch.split(out[force_key].detach().cpu().double(), counts)
        stresses = out[stress_key].detach().cpu().double().reshape(-1, 6).numpy()
        items = []
        for i, x in enumerate(features):
            force, stress = forces[i].numpy(), stresses[i]
            if rotations[i] is not None:  # positions were rotated by R (x -> R x): undo it on vectors and the tensor
                rotation = rotations[i]
                force = force @ rotation
                stress = full_3x3_to_voigt_6_stress(rotation.T @ voigt_6_to_full_3x3_stress(stress) @ rotation)
            items.append(({self.layer_name: x}, Prediction(float(energies[i]) / counts[i], force, stress)))
        return items

    def _pass(self, structures: list[ase.Atoms], predict: bool) -> tuple[list[np.ndarray], dict, list]:
        """The backbone on the batch (without ``predict``, under no_grad) or the whole regressor's ``predict`` (with
        it): the chosen features per structure, the regressor's outputs (``{}`` without ``predict``) and the rotation
        applied to each structure (``None`` where none was)."""
        import torch
        from orb_models.forcefield.atomic_system import ase_atoms_to_atom_graphs
        from orb_models.forcefield.base import batch_graphs

        graphs, rotations = [], []
        for atoms in structures:
            if unknown := self.unsupported(atoms):
                raise ModelError(f"Orb has no embedding for atomic numbers {unknown} ({atoms.get_chemical_formula()})")
            if any(atoms.pbc) and not all(atoms.pbc):
                raise ModelError(
                    f"Orb needs periodicity along all three axes or none ({atoms.get_chemical_formula()} has pbc "
                    f"{atoms.pbc.tolist()}); pad with vacuum and make it fully periodic"
                )
            # Only what the model reads: ase_atoms_to_atom_graphs also takes features, targets and charge/spin from
            # atoms.info, which dataset metadata must not leak into.
            positions, cell, rotation = atoms.positions, atoms.cell, None
            if self.orientation == "standard" and all(atoms.pbc) and cell.rank == 3:
                cell, rotation = cell.standard_form()  # cell = standard @ rotation; exactly the identity for CIF input
                positions = positions @ rotation.T
            rotations.append(None if rotation is None else np.asarray(rotation))
            clean = ase.Atoms(numbers=atoms.numbers, positions=positions, cell=np.asarray(cell), pbc=atoms.pbc)
            if self._charge_spin is not None:
                clean.info["charge"], clean.info["spin"] = self._charge_spin
            # Neighbour search in float64 (ase's positions are float64) so that the edge set does not depend on the
            # forward dtype; each structure gets its own graph, so batching cannot change anyone's neighbours.
            graphs.append(
                ase_atoms_to_atom_graphs(
                    clean,
                    self.system_config,
                    max_num_neighbors=self.max_num_neighbors,
                    device=torch.device(self.device),
                    output_dtype=self.torch_dtype,
                    graph_construction_dtype=torch.float64,
                )
            )
        batch = batch_graphs(graphs).to(self.device)

        captured: list[torch.Tensor] = []
        if self._step is not None:  # AttentionInteractionNetwork returns (nodes, edges)
            hook = self._net.gnn_stacks[self._step].register_forward_hook(
                lambda _module, _inputs, output: captured.append(output[0].detach())
            )
        else:  # the backbone returns a dict holding node_features
            hook = self._net.register_forward_hook(
                lambda _module, _inputs, output: captured.append(output["node_features"].detach())
            )
        out = {}
        try:
            if predict:
                out = self.model.predict(batch)
            else:
                with torch.no_grad():
                    self._net(batch)
        finally:
            hook.remove()
        features = captured[0]
        counts = [len(atoms) for atoms in structures]
        if features.shape[0] != sum(counts):
            raise ModelError(f"Orb returned features for {features.shape[0]} atoms, expected {sum(counts)}")
        return [x.cpu().numpy() for x in torch.split(features.detach(), counts)], out, rotations


def _registry() -> dict[str, str]:
    """Pretrained names -> weights URL, from orb-models' registry (the default ``weights_path`` of each loader);
    deprecated names, whose loaders only raise, are left out."""
    from orb_models.forcefield import pretrained

    urls = {}
    for name, loader in pretrained.ORB_PRETRAINED_MODELS.items():
        parameter = inspect.signature(loader).parameters.get("weights_path")
        if parameter is not None and isinstance(parameter.default, str):
            urls[name] = parameter.default
    return urls


def _architecture_of_file(filename: str) -> str | None:
    """The registry name whose released weights file has this name (``orb-v3-direct-inf-omat-20250404.ckpt``)."""
    for name, url in _registry().items():
        if url.rsplit("/", 1)[-1] == filename:
            return name
    return None


@contextmanager
def _torch_globals_restored():
    """orb's loaders call ``set_torch_precision``, which sets torch's default dtype and float32 matmul precision for
    the whole process (and warns about it); put both back so other code in the process is unaffected."""
    import torch

    dtype, matmul = torch.get_default_dtype(), torch.get_float32_matmul_precision()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting global torch default dtype")
            warnings.filterwarnings("ignore", message="Consider passing 'precision=float32-high'")
            yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_float32_matmul_precision(matmul)


# Named models (`platonic models`; the README's table of named models is generated from them): how to load each and
# what it is, with where that is stated (`platonic.models.base.Family`).
ORB_DOCS = "https://github.com/orbital-materials/orb-models/blob/main/MODELS.md"
PRESETS = {
    # Orb v3 (names of orb-models 0.5.5's pretrained registry; "inf" = up to 120 neighbours within 6 A);
    # orb-models needs its own environment (envs/orb.yaml)
    "orb-v3-conservative-omat": {
        "checkpoint": "orb-v3-conservative-inf-omat",
        "download": True,
        "architecture": "Orb v3 (conservative)",
        "training_data": ["OMat24"],
        "fidelity": "PBE/PBE+U",
        "source": ORB_DOCS + " (the -omat suffix: trained on OMat24)",
    },
    "orb-v3-direct-omat": {
        "checkpoint": "orb-v3-direct-inf-omat",
        "download": True,
        "architecture": "Orb v3 (direct)",
        "training_data": ["OMat24"],
        "fidelity": "PBE/PBE+U",
        "source": ORB_DOCS + " (the -omat suffix: trained on OMat24)",
    },
    "orb-v3-conservative-mpa": {
        "checkpoint": "orb-v3-conservative-inf-mpa",
        "download": True,
        "architecture": "Orb v3 (conservative)",
        "training_data": ["MPtrj", "sAlex"],
        "fidelity": "PBE/PBE+U",
        "source": ORB_DOCS + " names the data set only as 'mpa'; MPtrj + sAlex per the Orb-v3 paper, arXiv:2504.06231",
    },
    "orb-v3-direct-mpa": {
        "checkpoint": "orb-v3-direct-inf-mpa",
        "download": True,
        "architecture": "Orb v3 (direct)",
        "training_data": ["MPtrj", "sAlex"],
        "fidelity": "PBE/PBE+U",
        "source": ORB_DOCS + " names the data set only as 'mpa'; MPtrj + sAlex per the Orb-v3 paper, arXiv:2504.06231",
    },
}

FAMILY = Family(OrbAdapter, extra="orb", presets=PRESETS, own_venv=True)
