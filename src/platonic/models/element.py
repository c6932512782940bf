"""Element identity as a control representation: a one-hot of Z, optionally with tabulated properties."""

from __future__ import annotations

import hashlib

import ase
import ase.data
import numpy as np

from platonic.models.base import CONTROL, Family, ModelError, WeightFreeAdapter, option_list, package_version

MAX_Z = 94  # H..Pu: every element of MP-20 and of the widest default model (CHGNet)

# property name -> (package it is read from, how); each column is standardised over Z = 1..MAX_Z
PROPERTIES: dict[str, tuple[str, str]] = {
    "electronegativity": ("pymatgen", "Pauling electronegativity, pymatgen Element.X"),
    "covalent_radius": ("ase", "covalent radius in A, ase.data.covalent_radii"),
    "atomic_mass": ("ase", "atomic mass in u, ase.data.atomic_masses"),
    "row": ("pymatgen", "period, pymatgen Element.row (lanthanides 6, actinides 7)"),
    "group": ("pymatgen", "group 1-18, pymatgen Element.group (f-block 3)"),
    "mendeleev_number": ("pymatgen", "Pettifor's Mendeleev number, pymatgen Element.mendeleev_no"),
}


def property_values(name: str, max_z: int = MAX_Z) -> np.ndarray:
    """Raw values of one property for Z = 1..max_z, shape ``(max_z,)``; NaN where the table has none."""
    if name not in PROPERTIES:
        raise ModelError(f"unknown element property {name!r}; known: {', '.join(PROPERTIES)}")
    numbers = range(1, max_z + 1)
    if name == "covalent_radius":
        return np.array([ase.data.covalent_radii[z] for z in numbers], dtype=float)
    if name == "atomic_mass":
        return np.array([ase.data.atomic_masses[z] for z in numbers], dtype=float)
    import warnings

    from pymatgen.core.periodic_table import Element

    attribute = {"electronegativity": "X", "row": "row", "group": "group", "mendeleev_number": "mendeleev_no"}[name]
    with warnings.catch_warnings():  # pymatgen warns for each missing value (He, Ne, Ar have no Pauling X)
        warnings.simplefilter("ignore")
        values = [getattr(Element.from_Z(z), attribute) for z in numbers]
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def standardise(values: np.ndarray) -> np.ndarray:
    """Zero mean and unit standard deviation over the known values of each column of ``(n, k)``; a
    missing value becomes 0 (the mean)."""
    mean = np.nanmean(values, axis=0)
    std = np.nanstd(values, axis=0)
    return np.nan_to_num((values - mean) / np.where(std > 0, std, 1.0), nan=0.0)


def element_table(properties: list[str], max_z: int = MAX_Z) -> np.ndarray:
    """Row ``Z - 1`` is the feature vector of element ``Z``: the one-hot of Z followed by the
    standardised properties, shape ``(max_z, max_z + len(properties))``."""
    columns = np.stack([property_values(name, max_z) for name in properties], axis=1) if properties else None
    one_hot = np.eye(max_z)
    return one_hot if columns is None else np.concatenate([one_hot, standardise(columns)], axis=1)


class ElementAdapter(WeightFreeAdapter):
    """Each atom is its element: column ``Z - 1`` of ``MAX_Z`` (94, H..Pu) is 1, the others 0;
    ``options.properties`` (names in ``PROPERTIES``) appends standardised tabulated values. No
    geometry enters: this is the chance-level-plus-chemistry control every model must beat."""

    family = "element"
    package = "ase"

    def _prepare(self) -> tuple[frozenset[int], str]:
        if set(self.options) - {"properties"}:
            raise ModelError(f"unknown element options {sorted(set(self.options) - {'properties'})}; known: properties")
        self.properties = [str(name) for name in option_list(self.options.get("properties", []))]
        if len(set(self.properties)) != len(self.properties):
            raise ModelError(f"element options.properties lists a property twice: {self.properties}")
        self.table = element_table(self.properties)
        if any(PROPERTIES[name][0] == "pymatgen" for name in self.properties):
            self.package = "pymatgen"
        layer = f"one-hot Z 1-{MAX_Z}" + "".join(f" + {name}" for name in self.properties)
        return frozenset(range(1, MAX_Z + 1)), layer

    def settings(self) -> dict:
        self.load()
        return {
            "max_z": MAX_Z,
            "properties": self.properties,
            "sources": {name: PROPERTIES[name][1] for name in self.properties},
            "package_version": package_version(self.package),
            "table_sha256": hashlib.sha256(np.ascontiguousarray(self.table).tobytes()).hexdigest(),
        }

    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        return [self.table[atoms.get_atomic_numbers() - 1] for atoms in structures]


# Named models (`platonic models`; the README's table of named models is generated from them): how to load each and
# what it is, with where that is stated (`platonic.models.base.Family`).
PRESETS = {
    "element": {
        "checkpoint": "none",
        "architecture": "element one-hot",
        **CONTROL,
        "source": "platonic.models.element (a fixed recipe, no weights)",
    },
}

FAMILY = Family(ElementAdapter, extra="element", presets=PRESETS)
