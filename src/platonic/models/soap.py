"""SOAP (package ``dscribe``): the smooth-overlap-of-atomic-positions power spectrum of each atom."""

from __future__ import annotations

import ase
import ase.data
import numpy as np

from platonic.models.base import CONTROL, Family, ModelError, WeightFreeAdapter, option_list, package_version
from platonic.models.element import MAX_Z

COMPRESSIONS = ("mu2", "crossover", "mu1nu1", "off")
MAX_FEATURES = 20_000  # above this one float32 store of MP-20 (282,847 atoms) exceeds ~23 GB

DEFAULTS = {"cutoff": 5.0, "n_max": 8, "l_max": 6, "sigma": 0.5, "rbf": "gto", "compression": "mu2"}


class SOAPAdapter(WeightFreeAdapter):
    """dscribe's SOAP with a fixed species list for the whole study (``options.species``: symbols or
    atomic numbers; default Z = 1..94, the element family's set), periodic where ``atoms.pbc`` is.

    Options (defaults): ``cutoff`` 5.0 A, ``n_max`` 8, ``l_max`` 6, ``sigma`` 0.5 A (Gaussian width),
    ``rbf`` gto, ``compression`` mu2. mu2 expands the density of all neighbours as one species, so the
    width, (n_max (n_max + 1) / 2) (l_max + 1) = 252, does not grow with the species list: a
    geometry-only control beside the chemistry-only ``element``. ``crossover`` (same-species pairs),
    ``mu1nu1`` and ``off`` (all pairs) are species-resolved and grow with the list (crossover with 94
    species: 23,688 columns); they need a narrow ``options.species``."""

    family = "soap"
    package = "dscribe"

    def _prepare(self) -> tuple[frozenset[int], str]:
        from dscribe.descriptors import SOAP

        unknown = sorted(set(self.options) - set(DEFAULTS) - {"species"})
        if unknown:
            raise ModelError(f"unknown soap options {unknown}; known: {', '.join([*DEFAULTS, 'species'])}")
        get = {key: self.options.get(key, default) for key, default in DEFAULTS.items()}
        self.hypers = {
            "r_cut": float(get["cutoff"]),
            "n_max": int(get["n_max"]),
            "l_max": int(get["l_max"]),
            "sigma": float(get["sigma"]),
            "rbf": str(get["rbf"]),
        }
        self.compression = str(get["compression"])
        if self.compression not in COMPRESSIONS:
            raise ModelError(f"soap options.compression is one of {', '.join(COMPRESSIONS)}, not {self.compression!r}")
        self.species = _atomic_numbers(self.options.get("species", range(1, MAX_Z + 1)))
        self.descriptor = SOAP(
            species=self.species,
            periodic=True,  # dscribe honours each structure's own pbc flags
            compression={"mode": self.compression},
            sparse=False,
            dtype="float64",
            **self.hypers,
        )
        n_features = self.descriptor.get_number_of_features()
        if n_features > MAX_FEATURES:
            raise ModelError(
                f"SOAP with compression {self.compression} over {len(self.species)} species has {n_features} "
                f"features per atom (at most {MAX_FEATURES}); narrow options.species or use compression mu2"
            )
        h = self.hypers
        layer = f"SOAP r_cut={h['r_cut']} n_max={h['n_max']} l_max={h['l_max']} sigma={h['sigma']} {self.compression}"
        return frozenset(self.species), layer

    def settings(self) -> dict:
        self.load()
        return {
            "library": "dscribe",
            "library_version": package_version("dscribe"),
            **self.hypers,
            "compression": self.compression,
            "species": self.species,
            "periodic": "atoms.pbc",
        }

    def _embed_batch(self, structures: list[ase.Atoms]) -> list[np.ndarray]:
        return [np.atleast_2d(self.descriptor.create(atoms)) for atoms in structures]


def _atomic_numbers(species) -> list[int]:
    """Sorted unique atomic numbers of a species list of symbols and/or numbers."""
    numbers = set()
    for item in option_list(species) if isinstance(species, str) else list(species):
        text = str(item).strip()
        if text.isdigit():
            numbers.add(int(text))
        elif text in ase.data.atomic_numbers:
            numbers.add(ase.data.atomic_numbers[text])
        else:
            raise ModelError(f"soap options.species: {item!r} is not an element symbol or atomic number")
    if not numbers or not all(1 <= z <= MAX_Z for z in numbers):
        raise ModelError(f"soap options.species must be elements with 1 <= Z <= {MAX_Z}, got {sorted(numbers)}")
    return sorted(numbers)


# Named models (`platonic models`; the README's table of named models is generated from them): how to load each and
# what it is, with where that is stated (`platonic.models.base.Family`).
PRESETS = {
    "soap": {
        "checkpoint": "none",
        "architecture": "SOAP",
        **CONTROL,
        "source": "platonic.models.soap (dscribe's SOAP power spectrum, no weights)",
    },
}

FAMILY = Family(SOAPAdapter, extra="soap", presets=PRESETS)
