"""The adapter contract: a list of ``ase.Atoms`` in, per-atom invariant features out."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import ase
import numpy as np


class ModelError(RuntimeError):
    """A model that cannot be loaded or run, with what to do about it."""


class Adapter(ABC):
    """Wraps one pretrained MLIP; subclasses use the upstream package's own API.

    Parameters are the same for every family so that a config entry is enough to add a model:
    ``checkpoint`` (a name the package knows or a file path), ``layer`` (which features to take;
    ``None`` is the family default), ``device`` (``auto`` picks CUDA when present), ``dtype`` of
    the forward pass (``float32`` or ``float64``, where the family supports it), ``cache_dir``
    (where downloaded weights are kept; ``None`` is the package's own default) and
    family-specific ``options``.
    """

    family: str = ""
    package: str = ""
    default_checkpoint: str = ""
    dtypes: tuple[str, ...] = ("float32",)  # forward-pass precisions the family supports

    def __init__(
        self,
        checkpoint: str | None = None,
        layer: int | str | None = None,
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
        self.checkpoint = checkpoint or self.default_checkpoint
        self.layer = layer
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.dtype = dtype
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.options = options
        self._loaded = False

    @property
    def torch_dtype(self):
        import torch

        return {"float32": torch.float32, "float64": torch.float64}[self.dtype]

    def load(self) -> None:
        """Load weights once (lazily, on first use)."""
        if not self._loaded:
            import torch

            torch.manual_seed(0)
            self._checkpoint_path, self._supported, self._layer_name = self._load()
            self._loaded = True

    @abstractmethod
    def _load(self) -> tuple[Path, frozenset[int], str]:
        """Load the weights; return the checkpoint file, the atomic numbers the model knows and a
        human-readable name of the features taken (e.g. ``atom_conv_layers[2]``)."""

    @property
    def supported_numbers(self) -> frozenset[int]:
        """Atomic numbers the model was trained on."""
        self.load()
        return self._supported

    @property
    def checkpoint_path(self) -> Path:
        """The weights file actually loaded."""
        self.load()
        return self._checkpoint_path

    @property
    def layer_name(self) -> str:
        self.load()
        return self._layer_name

    @abstractmethod
    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        """Forward pass only (no forces): one ``(n_atoms_i, n_features)`` array per structure."""

    def embed(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        """Embed structures in batches of ``batch_size``; one ``(n_atoms_i, n_features)`` array of
        ``dtype`` per structure."""
        self.load()
        out: list[np.ndarray] = []
        for start in range(0, len(structures), self.batch_size):
            out.extend(self._embed_batch(structures[start : start + self.batch_size]))
        return [np.asarray(x, dtype=self.dtype) for x in out]

    def unsupported(self, structure: ase.Atoms) -> list[int]:
        """Atomic numbers in ``structure`` that the model does not know."""
        return sorted(set(structure.get_atomic_numbers().tolist()) - self.supported_numbers)

    def provenance(self) -> dict:
        """What a store needs to record to make its numbers reproducible."""
        self.load()
        path = self.checkpoint_path
        return {
            "family": self.family,
            "package": self.package,
            "package_version": package_version(self.package),
            "checkpoint": str(self.checkpoint),
            "checkpoint_file": path.name,
            "checkpoint_sha256": file_sha256(path),
            "layer": self.layer_name,
            "device": self.device,
            "forward_dtype": self.dtype,
            "options": {k: str(v) for k, v in self.options.items()},
        }


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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
