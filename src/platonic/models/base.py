"""The adapter contract: a list of ``ase.Atoms`` in, per-atom invariant features out; and the `Family` that
describes an adapter to the registry (its package, extra, named models, conda env and virtualenv recipe).

An adapter module imports only light packages at its top (numpy, ase, this module): the registry imports every
family's module to read its `Family`, so that listing models, validating a config or parsing the workflow needs
neither torch nor any model package. Adapters import those inside their methods.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import ase
import numpy as np
import yaml

if TYPE_CHECKING:
    import torch

WEIGHTS = ("pretrained", "random")


class ModelError(RuntimeError):
    """A model that cannot be loaded or run, with what to do about it."""


@dataclass(frozen=True)
class Loaded:
    """What an adapter's `Adapter._load` found: the weights file read (``None`` for a weight-free family), the
    atomic numbers the model knows and a human-readable name of the features taken (e.g. ``atom_conv_layers[2]``)."""

    checkpoint: Path | None
    supported_numbers: frozenset[int]
    layer: str


class Adapter(ABC):
    """Wraps one pretrained MLIP; subclasses use the upstream package's own API.

    Parameters are the same for every family so that a config entry is enough to add a model:
    ``checkpoint`` (a name the package knows or a file path), ``layer`` (which features to take;
    ``None`` is the family default), ``layers`` (``"all"`` or a list of layer indices or names, each
    from the same forward pass, see `embed_layers`; not with ``layer``), ``device`` (``auto`` picks
    CUDA when present), ``dtype`` of the forward pass (``float32`` or ``float64``, where the family
    supports it), ``cache_dir`` (where downloaded weights are kept; ``None`` is the package's own
    default) and family-specific ``options``.

    Families with ``supports_random_weights`` also take ``options.weights: random`` (default
    ``pretrained``) and ``options.seed`` (default 0): the checkpoint's architecture, built by the
    package's own constructors with torch seeded, so every learned parameter has its initial random
    value (constants the checkpoint does not learn are kept, see ``random_weights``).
    Such a family keeps its ``torch.nn.Module`` in ``self.model``; provenance then adds ``weights``,
    ``weights_seed`` and ``weights_sha256`` (of the random state dict actually used), while
    ``checkpoint_sha256`` stays that of the file the architecture was read from.
    """

    family: str = ""
    package: str = ""
    default_checkpoint: str = ""
    dtypes: tuple[str, ...] = ("float32",)  # forward-pass precisions the family supports
    supports_random_weights: bool = False  # can build its architecture with seeded random weights

    def __init__(
        self,
        checkpoint: str | None = None,
        layer: int | str | None = None,
        layers: str | list | tuple | None = None,
        device: str = "auto",
        batch_size: int = 16,
        dtype: str = "float32",
        cache_dir: str | Path | None = None,
        **options,
    ):
        if dtype not in self.dtypes:
            raise ModelError(f"{self.family} models run in {' or '.join(self.dtypes)}, not {dtype!r}")
        if int(batch_size) < 1:
            raise ModelError(f"batch_size must be positive, got {batch_size}")
        if layer is not None and layers is not None:
            raise ModelError(f"give layer or layers, not both (layer {layer!r}, layers {layers!r})")
        if layers is not None and not (layers == "all" or (isinstance(layers, list | tuple) and len(layers) > 0)):
            raise ModelError(f"layers is 'all' or a non-empty list of layer indices or names, not {layers!r}")
        self.checkpoint = checkpoint or self.default_checkpoint
        self.layer = layer
        self.layers = layers
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.dtype = dtype
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.options = options
        self.random_seed = self._random_seed(options)
        self._loaded = False

    def _random_seed(self, options: dict) -> int | None:
        """The seed of ``options.weights: random``; ``None`` for the pretrained weights."""
        weights = str(options.get("weights", "pretrained"))
        if weights not in WEIGHTS:
            raise ModelError(f"options.weights is one of {', '.join(WEIGHTS)}, not {weights!r}")
        if weights == "pretrained":
            if "seed" in options:
                raise ModelError("options.seed applies only with options.weights: random")
            return None
        if not self.supports_random_weights:
            raise ModelError(f"{self.family} models cannot be built with random weights (options.weights: random)")
        return int(options.get("seed", 0))

    @property
    def torch_dtype(self):
        import torch

        return {"float32": torch.float32, "float64": torch.float64}[self.dtype]

    def load(self) -> None:
        """Load weights once (lazily, on first use)."""
        if not self._loaded:
            import torch

            torch.manual_seed(0)
            loaded = self._load()
            if not isinstance(loaded, Loaded):
                raise ModelError(
                    f"{type(self).__name__}._load returned a {type(loaded).__name__}; it returns "
                    "platonic.models.base.Loaded(checkpoint, supported_numbers, layer)"
                )
            self._checkpoint_path, self._supported, self._layer_name = (
                loaded.checkpoint,
                frozenset(loaded.supported_numbers),
                loaded.layer,
            )
            if self.layers is not None:
                self._selected = select_layers(self.layers, self._layer_names(), f"{self.family} {self.checkpoint}")
            self._loaded = True

    @abstractmethod
    def _load(self) -> Loaded:
        """Load the weights (torch seeded with 0 just before); return the checkpoint file (``None`` for a weight-free
        family), the atomic numbers the model knows and the name of the features taken, as a `Loaded`."""

    @property
    def supported_numbers(self) -> frozenset[int]:
        """Atomic numbers the model was trained on."""
        self.load()
        return self._supported

    @property
    def checkpoint_path(self) -> Path | None:
        """The weights file actually loaded (``None`` for a weight-free family)."""
        self.load()
        return self._checkpoint_path

    @property
    def layer_name(self) -> str:
        self.load()
        return self._layer_name

    @property
    def available_layers(self) -> tuple[str, ...]:
        """Names of every layer ``layers`` can take, in order: entry ``k`` is what ``layer: k`` takes."""
        self.load()
        return tuple(self._layer_names())

    @property
    def selected_layers(self) -> tuple[tuple[int, str], ...]:
        """``(index, name)`` of each layer ``layers`` asked for, in the order asked (empty without ``layers``)."""
        self.load()
        return tuple(self._selected) if self.layers is not None else ()

    def _layer_names(self) -> list[str]:
        """Names of the loaded model's layers (index ``k`` is ``layer: k``); families that support ``layers``
        override this and `_embed_batch_layers`."""
        raise ModelError(
            f"{self.family} models do not support layers (several layers from one forward pass); "
            "give one layer per model entry instead"
        )

    @abstractmethod
    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        """Forward pass only (no forces): one ``(n_atoms_i, n_features)`` array per structure."""

    def _embed_batch_layers(self, structures: list[ase.Atoms], names: list[str]) -> list[dict[str, np.ndarray]]:
        """One forward pass: per structure, ``{name: (n_atoms_i, n_features_name)}`` for each layer in ``names``
        and for the default features (key `layer_name`)."""
        raise NotImplementedError

    def _forward(self, structures: list[ase.Atoms], indices: list[int]) -> dict[int, torch.Tensor]:
        """One forward pass of the batch ``structures`` (no forces, no gradients): ``{k: (n_atoms, d_k) tensor}``
        for each layer index ``k`` in ``indices`` (the index of `_layer_names`), the rows of every structure's atoms
        in order, structure after structure. Families that read layers through forward hooks (`layer_outputs`)
        implement it and get `_embed_batch` and `_embed_batch_layers` from `_hooked_layer` and `_hooked_layers`."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement _forward, which _hooked_layer and _hooked_layers call; "
            "implement it or override _embed_batch and _embed_batch_layers instead"
        )

    def _hooked_layers(self, structures: list[ase.Atoms], names: list[str], default: int) -> list[dict]:
        """`_embed_batch_layers` for a family whose ``_forward(structures, indices)`` returns ``{layer index:
        (n_atoms, d) tensor}`` from one pass (forward hooks): the layers ``names`` and the default layer
        ``default``, split per structure and keyed by layer name."""
        import torch

        layer_names = self._layer_names()
        indices = sorted({layer_names.index(name) for name in names} | {default})
        captured = self._forward(structures, indices)
        counts = [len(atoms) for atoms in structures]
        split = {layer_names[k]: torch.split(captured[k], counts) for k in indices}
        return [{name: rows[i].cpu().numpy() for name, rows in split.items()} for i in range(len(structures))]

    def _hooked_layer(self, structures: list[ase.Atoms], index: int) -> list[np.ndarray]:
        """`_embed_batch` for the same families: layer ``index`` alone, one array per structure."""
        import torch

        counts = [len(atoms) for atoms in structures]
        return [x.cpu().numpy() for x in torch.split(self._forward(structures, [index])[index], counts)]

    def embed(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        """Embed structures in batches of ``batch_size``; one ``(n_atoms_i, n_features)`` array of
        ``dtype`` per structure."""
        self.load()
        out: list[np.ndarray] = []
        for start in range(0, len(structures), self.batch_size):
            out.extend(self._embed_batch(structures[start : start + self.batch_size]))
        return [np.asarray(x, dtype=self.dtype) for x in out]

    def embed_layers(self, structures: list[ase.Atoms]) -> list[dict[str, np.ndarray]]:
        """Every layer of ``layers`` from one forward pass per batch: per structure, layer name ->
        ``(n_atoms_i, n_features_layer)`` array of ``dtype``, the names those of `selected_layers` plus
        `layer_name` (the family's default features, which `embed` returns)."""
        self.load()
        if self.layers is None:
            raise ModelError("embed_layers needs the adapter's layers ('all' or a list); embed takes one layer")
        names = [name for _, name in self._selected]
        out: list[dict[str, np.ndarray]] = []
        for start in range(0, len(structures), self.batch_size):
            out.extend(self._embed_batch_layers(structures[start : start + self.batch_size], names))
        return [{name: np.asarray(x, dtype=self.dtype) for name, x in item.items()} for item in out]

    def unsupported(self, structure: ase.Atoms) -> list[int]:
        """Atomic numbers in ``structure`` that the model does not know."""
        return sorted(set(structure.get_atomic_numbers().tolist()) - self.supported_numbers)

    def provenance(self) -> dict:
        """What a store needs to record to make its numbers reproducible."""
        self.load()
        return {
            "family": self.family,
            "package": self.package,
            "package_version": package_version(self.package),
            "checkpoint": str(self.checkpoint),
            **self._weights_record(),
            "parameters": self.parameter_count(),
            "layer": self.layer_name,
            **({"layers": [name for _, name in self.selected_layers]} if self.layers is not None else {}),
            "device": self.device,
            "forward_dtype": self.dtype,
            "options": {k: str(v) for k, v in self.options.items()},
        }

    def parameter_count(self) -> int | None:
        """Scalar parameters of the loaded model, counted from its torch modules (a tensor shared between modules
        counted once): the size of the network whose features are compared, read off the network itself.
        ``None`` for an adapter of one's own that keeps no ``torch.nn.Module`` in ``self.model`` (and does not
        override `_modules`): not counted, rather than a wrong number."""
        self.load()
        modules = self._modules()
        return None if modules is None else count_parameters(modules)

    def _modules(self) -> list | None:
        """The torch modules that make up the loaded model: ``self.model`` (every built-in family keeps its whole
        network there), or ``None`` where there is no module to count."""
        import torch

        model = getattr(self, "model", None)
        return [model] if isinstance(model, torch.nn.Module) else None

    def _weights_record(self) -> dict:
        """Where the weights come from: the checkpoint file and its sha256, and the seed and state-dict
        sha256 of random weights."""
        path = self.checkpoint_path
        record = {"checkpoint_file": path.name, "checkpoint_sha256": file_sha256(path)}
        if self.random_seed is not None:
            record.update(weights="random", weights_seed=self.random_seed, weights_sha256=state_dict_sha256(self.model))
        return record


class WeightFreeAdapter(Adapter):
    """A control representation computed by a fixed recipe, with no weights (element one-hot, SOAP).

    ``checkpoint`` is ``"none"``; ``checkpoint_path`` is ``None``. Its provenance records
    ``weights: none``, the recipe as canonical JSON (``settings``) and, in ``checkpoint_sha256``,
    the sha256 of that JSON: a changed recipe changes the hash exactly as a changed checkpoint does.
    Features are computed in float64 and returned in ``dtype``.
    """

    default_checkpoint = "none"
    dtypes = ("float32", "float64")

    def __init__(self, checkpoint: str | None = None, **kwargs):
        super().__init__(checkpoint=checkpoint, **kwargs)
        if self.layers is not None:
            raise ModelError(f"{self.family} is a fixed recipe with no layers: leave out layers")
        if self.checkpoint != "none":
            raise ModelError(f"{self.family} has no weights: its checkpoint is 'none', not {self.checkpoint!r}")

    def _load(self) -> Loaded:
        supported, layer_name = self._prepare()
        return Loaded(None, supported, layer_name)

    def _modules(self) -> list:
        return []  # a recipe: no parameters

    @abstractmethod
    def _prepare(self) -> tuple[frozenset[int], str]:
        """Set up the recipe; return the atomic numbers it covers and a name of the features."""

    @abstractmethod
    def settings(self) -> dict:
        """Everything the features depend on, JSON-serialisable (library and version included)."""

    def _weights_record(self) -> dict:
        text = settings_json(self.settings())
        return {
            "checkpoint_file": "",
            "checkpoint_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "weights": "none",
            "settings": text,
        }


# what a preset says: how to load its model, what the model is, and where that is stated
PRESET_KEYS = ("checkpoint", "architecture", "training_data", "fidelity", "source")
PRESET_OPTIONAL_KEYS = ("options", "download")
# what a control's preset says of its training: none, so no level of theory
CONTROL = MappingProxyType({"training_data": [], "fidelity": None})


@dataclass(frozen=True, eq=False)
class Family:
    """A model family as the registry knows it: the adapter, and what installing it and naming its models takes.

    ``extra`` is the optional dependency of platonic (``pip install 'platonic[<extra>]'``) that installs the family's
    package (``None``: nothing beyond platonic itself). ``presets`` are its named models, name -> ``{checkpoint,
    architecture, training_data, fidelity, source}`` plus optional ``options`` and ``download`` (true where the
    weights are downloaded on first use); ``training_data`` is ``[]`` for none and ``fidelity`` ``None`` for a
    control. ``own_venv`` is true for a family whose package cannot share the project's virtualenv: it has a recipe
    `venv_recipe` for `platonic.venvs`. ``requires`` are modules imported when the adapter is looked up, so that a
    missing or broken package is reported then, naming the extra and the env; the adapter module itself imports
    none of them.

    The name and the package (the distribution whose version provenance records) are the adapter's own ``family``
    and ``package``; the conda env of its jobs is `env_file`. A third-party package registers a family with an entry
    point in the group ``platonic.models`` naming its descriptor (``name = "module:FAMILY"``).
    """

    adapter: type[Adapter]
    extra: str | None
    presets: Mapping[str, Mapping] = field(default_factory=dict)
    own_venv: bool = False
    requires: tuple[str, ...] = ()

    def __post_init__(self):
        if not (isinstance(self.adapter, type) and issubclass(self.adapter, Adapter)) or not self.adapter.family:
            raise ModelError(
                f"a Family's adapter is a subclass of platonic.models.base.Adapter with a family name, not "
                f"{self.adapter!r}"
            )
        for name, preset in self.presets.items():
            missing = [key for key in PRESET_KEYS if key not in preset]
            unknown = sorted(set(preset) - {*PRESET_KEYS, *PRESET_OPTIONAL_KEYS})
            if missing or unknown:
                raise ModelError(
                    f"preset {name!r} of family {self.name!r} needs {', '.join(PRESET_KEYS)} (optionally "
                    f"{', '.join(PRESET_OPTIONAL_KEYS)})"
                    + (f"; it lacks {', '.join(missing)}" if missing else "")
                    + (f"; unknown keys: {', '.join(unknown)}" if unknown else "")
                )
        object.__setattr__(self, "presets", MappingProxyType(dict(self.presets)))
        object.__setattr__(self, "requires", tuple(self.requires))

    @property
    def name(self) -> str:
        return self.adapter.family

    @property
    def package(self) -> str:
        return self.adapter.package

    @property
    def target(self) -> str:
        """``module:Class`` of the adapter."""
        return f"{self.adapter.__module__}:{self.adapter.__qualname__}"

    @property
    def env_file(self) -> str:
        """The conda env of the family's jobs, relative to the project root (where the workflow looks for it)."""
        return f"envs/{self.name}.yaml"

    @property
    def venv_recipe(self) -> str | None:
        """The recipe of the family's own virtualenv, relative to the project root (``None`` without one)."""
        from platonic.venvs import RECIPES

        return f"{RECIPES}/{self.name}.yaml" if self.own_venv else None


@contextmanager
def layer_outputs(modules: dict, pick=lambda output: output):
    """Forward hooks on ``modules`` (``{index: torch module}``) for the duration: yields ``{index: tensor}``, each
    module's first output (``pick`` chooses the tensor from it) detached. The hooks return None, so the
    modules' outputs are left as they are."""
    captured: dict = {}

    def hook(index):
        def read(_module, _inputs, output):
            captured.setdefault(index, pick(output).detach())

        return read

    handles = [module.register_forward_hook(hook(index)) for index, module in modules.items()]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def default_dtype(dtype):
    """Temporarily set torch's default float dtype (packages that build tensors with it)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def resolve_device(device: str) -> str:
    """``auto`` means CUDA when a GPU is visible, otherwise CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def settings_json(settings: dict) -> str:
    """Canonical JSON of a weight-free family's settings (sorted keys, no spaces): the text that is hashed."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def state_dict_sha256(module) -> str:
    """sha256 over a torch module's state dict: each entry's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def count_parameters(modules) -> int:
    """Number of scalar parameters of torch ``modules`` together, each tensor counted once however many modules
    (or attributes of one module) share it."""
    seen: dict[int, int] = {}
    for module in modules:
        for parameter in module.parameters():
            seen[id(parameter)] = parameter.numel()
    return sum(seen.values())


def random_weights(build, trained, seed: int, name: str):
    """The architecture of ``trained`` with seeded random weights: ``build()`` (the package's own
    constructors, hence its own initialisation) with torch's CPU generator seeded by ``seed``, the global
    random state left as it was. Parameters the checkpoint does not learn (``requires_grad`` false:
    constants from the training data, e.g. SevenNet's average neighbour count) are copied from ``trained``.
    Built on the CPU; move it afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    expected = {key: tuple(value.shape) for key, value in trained.state_dict().items()}
    if shapes != expected:
        differing = sorted(set(shapes.items()) ^ set(expected.items()))[:5]
        raise ModelError(f"rebuilding {name} from its hyperparameters gives another architecture: {differing}")
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for key, value in trained.named_parameters():
            if not value.requires_grad:
                parameters[key].copy_(value.detach().cpu())
    return model


def select_layers(request, names: list[str], model: str) -> list[tuple[int, str]]:
    """``(index, name)`` of each layer that ``request`` (``"all"`` or a list of indices, negative from the end, or
    names) picks from a model's layer ``names``; ``model`` names the model in the error of a layer it lacks."""
    if request == "all":
        return list(enumerate(names))
    listing = ", ".join(f"{k}: {name}" for k, name in enumerate(names))
    selected = []
    for item in request:
        if isinstance(item, str) and item in names:
            index = names.index(item)
        else:
            try:
                index = int(item)
            except (TypeError, ValueError):
                index = None
            if index is None or not -len(names) <= index < len(names):
                raise ModelError(f"{model} has no layer {item!r}; its {len(names)} layers are {listing}")
            index %= len(names)
        if any(index == k for k, _ in selected):
            raise ModelError(f"layers names layer {index} ({names[index]}) twice")
        selected.append((index, names[index]))
    return selected


def option_list(value) -> list:
    """A list option, given as a list or as command-line text (``a,b`` or ``[a, b]``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return list(yaml.safe_load(text))
        return [item.strip() for item in text.split(",") if item.strip()]
    return list(value)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
