"""The model registry: every model family's `Family` descriptor by name, and the named models (presets) they carry.

A family is one descriptor beside its adapter (``FAMILY = Family(Adapter, extra=..., presets=...)`` in the adapter's
module): its package, extra, named models, conda env and virtualenv recipe. Built-in families and those of other
installed packages register the same way, as a name and a ``module:FAMILY`` target read by `describe`: the
built-ins from `BUILTIN`, the others from the ``platonic.models`` entry-point group. Adapter modules import no model
package (nor torch) at their top, so reading the registry, listing models or validating a config imports none.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module, metadata

from platonic.models.base import Adapter, Family, ModelError

GROUP = "platonic.models"

# The built-in families, written as an installed package's entry points are (name = "module:FAMILY") and read by the
# same `describe`. They are listed here rather than as entry points in pyproject.toml: those reach Python only
# through an installed package's metadata, which a checkout on the Python path (or an install made before a family
# was added) lacks. Within each group of the named models' table (`PRESETS`), families come in this order.
BUILTIN: dict[str, str] = {
    "chgnet": "platonic.models.chgnet:FAMILY",
    "sevenn": "platonic.models.sevenn:FAMILY",
    "matgl": "platonic.models.matgl:FAMILY",
    "diep": "platonic.models.diep:FAMILY",
    "mattersim": "platonic.models.mattersim:FAMILY",
    "mace": "platonic.models.mace:FAMILY",
    "orb": "platonic.models.orb:FAMILY",
    "hienet": "platonic.models.hienet:FAMILY",
    # control representations (no weights)
    "element": "platonic.models.element:FAMILY",
    "soap": "platonic.models.soap:FAMILY",
}


def describe(name: str, target: str) -> Family:
    """The `Family` that a registration ``name = target`` names: ``target`` is ``module:attribute``, the attribute a
    `Family` whose adapter's family is ``name``. An `Adapter` subclass (the older form of an entry point) becomes a
    family without extra or presets."""
    module_name, _, attribute = target.partition(":")
    try:
        found = getattr(import_module(module_name), attribute)
    except Exception as err:  # noqa: BLE001 -- a missing module or attribute, or one that fails on import
        raise ModelError(
            f"model family {name!r} is registered as {target!r}, which cannot be loaded ({type(err).__name__}: "
            f"{err}); fix or uninstall the package that registers it (entry-point group {GROUP!r})"
        ) from err
    if isinstance(found, type) and issubclass(found, Adapter):
        found = Family(found, extra=None)
    if not isinstance(found, Family):
        raise ModelError(
            f"model family {name!r} is registered as {target!r}, a {type(found).__name__}; it must name a "
            "platonic.models.base.Family"
        )
    if found.name != name:
        raise ModelError(
            f"model family {name!r} is registered as {target!r}, whose adapter's family is {found.name!r}: register "
            "it under that name"
        )
    return found


def _registered() -> dict[str, Family]:
    """The built-in families, then those of installed packages' entry points (a name already taken is skipped)."""
    targets = dict(BUILTIN)
    for entry in metadata.entry_points(group=GROUP):
        targets.setdefault(entry.name, entry.value)
    return {name: describe(name, target) for name, target in targets.items()}


def _table_group(family: Family, preset: Mapping) -> int:
    """Where a named model is listed: 0 trained, its weights in the wheel of a package that shares the project's
    virtualenv; 1 weight-free controls; 2 untrained networks; 3 trained, weights in the wheel, a virtualenv of its
    own; 4 weights downloaded on first use."""
    if preset.get("download", False):
        return 4
    if preset["training_data"] == [] and preset["fidelity"] is None:
        return 1 if preset["checkpoint"] == "none" else 2
    return 3 if family.own_venv else 0


def _presets(families: Mapping[str, Family]) -> dict[str, dict]:
    """Every family's named models, each with its ``family``: grouped as `_table_group` says, within a group in the
    families' order and each family's own."""
    rows, owner = [], {}
    for family in families.values():
        for name, preset in family.presets.items():
            if name in owner:
                raise ModelError(f"named model {name!r} is a preset of both {owner[name]!r} and {family.name!r}")
            owner[name] = family.name
            rows.append((_table_group(family, preset), name, {"family": family.name, **preset}))
    rows.sort(key=lambda row: row[0])  # stable: the families' order within a group
    return {name: preset for _, name, preset in rows}


FAMILIES: dict[str, Family] = _registered()
# Named models of every family; each preset also says what the model is: `architecture`, `training_data` (the data
# sets its weights were fitted on; [] for none) and `fidelity` (the level of theory of its labels; None for
# controls), and `source`: where these facts are stated (the package's own documentation where it states them;
# otherwise which other record was used). The parameter count is not written here: it is counted from the loaded
# model (provenance `parameters`).
PRESETS: dict[str, dict] = _presets(FAMILIES)
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
    """Every registered family's name -> its adapter (``module:Class``)."""
    return {name: family.target for name, family in FAMILIES.items()}


def adapter_class(family: str) -> type[Adapter]:
    """The adapter class of a family name, or of ``"module:Class"`` (an adapter of your own on the Python path)."""
    if family in FAMILIES:
        entry = FAMILIES[family]
        for module in entry.requires:
            try:
                import_module(module)
            except (ImportError, RuntimeError, OSError) as err:  # missing, or installed but broken
                install = f"pip install 'platonic[{entry.extra}]'" if entry.extra else f"pip install {entry.package}"
                raise ModelError(
                    f"model family {family!r} needs a package that is not installed ({err}); install it ({install}) "
                    f"or use {entry.env_file}"
                ) from err
        return entry.adapter
    if ":" not in family:
        raise ModelError(
            f"unknown model family {family!r}; known families: {', '.join(sorted(FAMILIES))}. Add an adapter module "
            "with its FAMILY descriptor in src/platonic/models/ and list it in BUILTIN, or register it from another "
            f"package (entry-point group {GROUP!r})."
        )
    module_name, class_name = family.split(":")
    try:
        module = import_module(module_name)
    except (ImportError, RuntimeError, OSError) as err:
        raise ModelError(f"cannot import the adapter module of family {family!r}: {err}") from err
    adapter = getattr(module, class_name, None)
    if not (isinstance(adapter, type) and issubclass(adapter, Adapter)):
        raise ModelError(f"{family} is not a subclass of platonic.models.base.Adapter")
    return adapter


def load_adapter(family: str, **kwargs) -> Adapter:
    """Instantiate the adapter of ``family`` (weights load lazily on first use)."""
    return adapter_class(family)(**kwargs)


__all__ = [
    "BUILTIN",
    "FAMILIES",
    "METADATA_KEYS",
    "PRESETS",
    "Adapter",
    "Family",
    "ModelError",
    "adapter_class",
    "describe",
    "families",
    "load_adapter",
    "markdown_table",
]
