"""MACE (package ``mace-torch``): invariant node features after an interaction block.

A MACE model (``mace.modules.models.MACE`` and its ``ScaleShiftMACE`` subclass, which all MACE-MP foundation models
are) embeds species with ``node_embedding`` and then runs ``num_interactions`` blocks, each an ``interactions[k]``
(equivariant message passing) followed by a ``products[k]`` (the ACE many-body product). ``readouts[k]`` maps the
output of block ``k`` to per-atom energies. Its forward pass returns ``node_feats``: the outputs of all product blocks
concatenated, which is also what mace's own ``MACECalculator.get_descriptors`` slices. Graphs are built with mace's
``config_from_atoms`` / ``AtomicData.from_config`` and batched with its vendored ``torch_geometric.Batch``, as its
calculator does.
"""

from __future__ import annotations

from pathlib import Path

import ase
import numpy as np

from platonic.models.base import Adapter, Family, Loaded, ModelError, default_dtype

# Foundation models by the names ``mace.calculators.mace_mp`` takes; their URLs live in mace's ``mace_mp_urls``.
FOUNDATION_MODELS = ("small", "medium", "large", "medium-omat-0", "medium-mpa-0")
# A checkpoint starting with one of these is the URL of a .model file.
URL_SCHEMES = ("https://", "http://")
# mace's own per-read socket timeout for model downloads (foundations_models._DOWNLOAD_TIMEOUT in 0.3.16).
DOWNLOAD_TIMEOUT_S = 120.0


class MACEAdapter(Adapter):
    """``checkpoint`` is a MACE-MP foundation-model name (``small``, ``medium``, ``large`` for MACE-MP-0,
    ``medium-omat-0``, ``medium-mpa-0``, or any other key of mace's ``mace_mp_urls``) or the ``http(s)://`` URL of a
    released ``.model`` file, looked up in ``cache_dir`` when set, else in mace's own cache (``$XDG_CACHE_HOME/mace``,
    default ``~/.cache/mace``), under the name mace's own downloader gives it, and downloaded there with that
    downloader when missing; or the path of a ``.model`` file (a whole model written by ``torch.save``, the format
    MACE distributes; it is unpickled, so only load files you trust). A URL names releases that mace's list does not:
    its ``large`` is ``MACE_MPtrj_2022.9.model``, while the MACE-MP-0a large of mace's README (the one Li & Walsh
    used) is ``mace_mp_0/2024-01-07-mace-128-L2_epoch-199.model``.

    The default ``layer`` (0) is the invariant (``0e``) part of the node features after the first interaction and
    product block, as in Li & Walsh (2026), who took ``MACECalculator.get_descriptors(atoms, num_layers=1)``:
    ``(n_atoms, n_channels)``, e.g. 128 wide for MACE-MP-0. That call returns the first block in mace-torch 0.3.9 and
    later (ACEsuit/mace PR 695; PR 703 did the same for ``invariants_only=False``), so in the 0.3.16 that envs/mace.yaml
    and envs/venv/mace.yaml pin; up to 0.3.8 ``num_layers=1`` returned the last block's invariants. An integer ``k``
    takes the ``0e`` part after block ``k`` (0-based, negative from the end); the last block outputs scalars only.
    The forward pass runs in ``float32`` or ``float64`` (the model is cast, the graph built in that dtype). The node
    features do not depend on the readout head; multi-head models take ``options.head`` (default: the model's
    ``Default`` head, else its last head, as mace's data pipeline does).
    """

    family = "mace"
    package = "mace-torch"
    default_checkpoint = "medium"
    dtypes = ("float32", "float64")

    def _load(self) -> Loaded:
        import torch
        from mace.modules.models import MACE
        from mace.tools.utils import AtomicNumberTable

        path = self._resolve_checkpoint()
        try:
            # MACE distributes pickled nn.Modules, which weights_only loading refuses.
            model = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as err:  # noqa: BLE001 -- zip, pickle and device errors alike mean "not loadable"
            raise ModelError(
                f"MACE checkpoint {self.checkpoint!r} ({path}) cannot be read by torch.load: {type(err).__name__}: "
                f"{err}. Is it complete (re-download it) and a model written with torch.save?"
            ) from err
        if not isinstance(model, MACE):
            raise ModelError(
                f"{path} holds a {type(model).__name__}, not a MACE energy model (mace.modules.models.MACE or "
                "ScaleShiftMACE); dipole and polarisability models have no node-feature output to take"
            )
        self.model = model.to(device=self.device, dtype=self.torch_dtype).eval()
        self._z_table = AtomicNumberTable([int(z) for z in model.atomic_numbers])
        self._r_max = float(model.r_max)
        self._heads = list(getattr(model, "heads", None) or ["Default"])
        self._head = self._choose_head()

        # Width of each block's output within node_feats, and where its 0e channels sit.
        self._widths, self._scalars = [], []
        for product in model.products:
            width, scalars = _scalar_slices(product.linear.irreps_out)
            self._widths.append(width)
            self._scalars.append(scalars)
        n_blocks = len(self._widths)
        try:
            index = 0 if self.layer is None else int(self.layer)
        except (TypeError, ValueError) as err:
            raise ModelError(f"MACE layer must be an interaction-block index, not {self.layer!r}") from err
        if not -n_blocks <= index < n_blocks:
            raise ModelError(f"MACE model has {n_blocks} interaction blocks; layer {index} does not exist")
        self._block = index % n_blocks
        if not self._scalars[self._block]:
            raise ModelError(f"MACE block {self._block} outputs no invariant (0e) channels")
        supported = frozenset(int(z) for z in model.atomic_numbers)
        return Loaded(path, supported, f"block {self._block} scalars (products[{self._block}] 0e)")

    def _choose_head(self) -> str:
        """The readout head named in ``options.head``, else the one mace's calculator would pick."""
        head = self.options.get("head")
        if head is not None:
            if head not in self._heads:
                raise ModelError(f"MACE model has heads {self._heads}; options.head {head!r} is not one of them")
            return str(head)
        defaults = [h for h in self._heads if h.lower() == "default"]
        return defaults[0] if defaults else self._heads[-1]

    def _resolve_checkpoint(self) -> Path:
        """An existing file, or a foundation-model name or URL found in (or downloaded into) the cache folder."""
        name = str(self.checkpoint)
        path = Path(name).expanduser()
        if path.is_file():
            return path
        from mace.calculators import foundations_models

        urls = foundations_models.mace_mp_urls
        if name.startswith(URL_SCHEMES):
            url = name
        elif name in urls:
            # medium-mpa-0 may ship inside the mace package; download_mace_mp_checkpoint then uses that copy.
            if name == "medium-mpa-0" and Path(foundations_models.local_model_path).is_file():
                return Path(foundations_models.local_model_path)
            url = urls[name]
        else:
            raise ModelError(
                f"MACE checkpoint {name!r} is neither an existing file nor a MACE-MP foundation model "
                f"({', '.join(FOUNDATION_MODELS)}; also {', '.join(k for k in urls if k not in FOUNDATION_MODELS)}) "
                "nor the URL (https://...) of a .model file"
            )
        from mace.tools.utils import get_cache_dir

        cache = self.cache_dir or Path(get_cache_dir())
        cached = cache / _cached_name(url)
        if cached.is_file():  # no network needed, and none is tried
            return cached
        return self._download(url, cached)

    def _download(self, url: str, target: Path) -> Path:
        """Fetch ``url`` into ``target`` with mace's own downloader, which streams into ``target.part`` and renames
        only a complete file, so a failed download leaves nothing behind."""
        from mace.calculators.foundations_models import _urlretrieve_with_timeout

        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _, headers = _urlretrieve_with_timeout(url, str(target), timeout=DOWNLOAD_TIMEOUT_S)
        except Exception as err:  # noqa: BLE001 -- URL, socket and file errors alike
            raise _download_error(self.checkpoint, url, target.parent, err) from err
        # GitHub answers an unknown release asset with an HTML page, not an error status (mace checks the same).
        if "text/html" in str(headers.get("Content-Type", "")):
            target.unlink(missing_ok=True)
            raise _download_error(self.checkpoint, url, target.parent, ValueError("the server sent an HTML page"))
        return target

    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        import torch
        from mace.data import AtomicData, KeySpecification, config_from_atoms
        from mace.tools import torch_geometric

        for atoms in structures:
            if unknown := self.unsupported(atoms):
                raise ModelError(f"MACE model has no species {unknown} ({atoms.get_chemical_formula()})")
        # AtomicData.from_config makes its float tensors (positions, cell, shifts) in torch's default dtype.
        with default_dtype(self.torch_dtype):
            graphs = [
                AtomicData.from_config(
                    config_from_atoms(atoms, key_specification=KeySpecification(), head_name=self._head),
                    z_table=self._z_table,
                    cutoff=self._r_max,
                    heads=self._heads,
                )
                for atoms in structures
            ]
            batch = torch_geometric.Batch.from_data_list(graphs).to(self.device)
            with torch.no_grad():
                output = self.model(batch.to_dict(), training=False, compute_force=False)
        features = output["node_feats"]  # (n_atoms, sum of block widths): products[0] output, products[1] output, ...
        if features.shape[1] != sum(self._widths):
            raise ModelError(
                f"MACE node_feats are {features.shape[1]} wide, but its product blocks output {self._widths} channels"
            )
        block = features.split(self._widths, dim=1)[self._block]
        scalars = torch.cat([block[:, s] for s in self._scalars[self._block]], dim=1)
        counts = [len(atoms) for atoms in structures]
        return [x.cpu().numpy() for x in torch.split(scalars.detach(), counts)]


def _scalar_slices(irreps) -> tuple[int, list[slice]]:
    """Total dimension of ``irreps`` and the column slices of its ``0e`` (invariant) channels; pseudo-scalars
    (``0o``) change sign under inversion and are left out."""
    from e3nn import o3

    irreps = o3.Irreps(str(irreps))
    scalar = o3.Irrep("0e")
    return irreps.dim, [s for s, (_, ir) in zip(irreps.slices(), irreps, strict=True) if ir == scalar]


def _cached_name(url: str) -> str:
    """The file name ``download_mace_mp_checkpoint`` caches ``url`` under (its base name, alphanumerics and ``_``),
    so that models fetched by ``mace_mp()`` are found in, and can be copied into, the cache folder."""
    return "".join(c for c in url.rsplit("/", 1)[-1] if c.isalnum() or c == "_")


def _download_error(checkpoint, url: str, cache: Path, err: BaseException) -> ModelError:
    return ModelError(
        f"MACE checkpoint {checkpoint!r} is not in {cache} and downloading it from {url} failed "
        f"({type(err).__name__}: {err}). On a machine with network access download that file into {cache} as "
        f"{_cached_name(url)} (embed.cache_dir chooses the folder), or give the checkpoint as a file path."
    )


# Named models (`platonic models`; the README's table of named models is generated from them): how to load each and
# what it is, with where that is stated (`platonic.models.base.Family`).
MACE_DOCS = "https://github.com/ACEsuit/mace-foundations (README: table of foundation models)"
PRESETS = {
    # MACE-MP foundation models (names as mace.calculators.mace_mp takes them; omat-0 is under the ASL licence);
    # mace-torch needs its own environment (envs/mace.yaml)
    "mace-mp-0-small": {
        "checkpoint": "small",
        "download": True,
        "architecture": "MACE",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": MACE_DOCS + " (MACE-MP-0a: MPTrj, DFT (PBE+U))",
    },
    "mace-mp-0-medium": {
        "checkpoint": "medium",
        "download": True,
        "architecture": "MACE",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": MACE_DOCS + " (MACE-MP-0a: MPTrj, DFT (PBE+U))",
    },
    "mace-mp-0-large": {
        "checkpoint": "large",
        "download": True,
        "architecture": "MACE",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": MACE_DOCS + " (MACE-MP-0a: MPTrj, DFT (PBE+U))",
    },
    "mace-omat-0": {
        "checkpoint": "medium-omat-0",
        "download": True,
        "architecture": "MACE",
        "training_data": ["OMat24"],
        "fidelity": "PBE/PBE+U",
        "source": MACE_DOCS + " (MACE-OMAT-0: OMAT, DFT (PBE+U), VASP 54)",
    },
    "mace-mpa-0": {
        "checkpoint": "medium-mpa-0",
        "download": True,
        "architecture": "MACE",
        "training_data": ["MPtrj", "sAlex"],
        "fidelity": "PBE/PBE+U",
        "source": MACE_DOCS + " (MACE-MPA-0: MPTrj + sAlex, DFT (PBE+U))",
    },
}

FAMILY = Family(MACEAdapter, extra="mace", presets=PRESETS, own_venv=True)
