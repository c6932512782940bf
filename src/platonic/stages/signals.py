"""The latent signals of a finished study, per compared atom: cross-model disagreement (the audit's), atypicality
in each trained model's anchor space and its consensus percentile, and each trained model's symmetry-breaking spread
(its orbit's, on the symmetry audit's scale) with their mean. The stages that test these signals against physics
(``prediction_failure``, ``phonons``) read them from here."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass

import numpy as np
import xarray as xr

from platonic.stages.common import model_stores, open_structures, shared_space, valid_mask
from platonic.store import check_same_structures

log = logging.getLogger("platonic")


@dataclass(frozen=True)
class LatentSignals:
    """Per compared atom ``atoms (n,)`` (global indices, the shared space's) of the ``trained`` models (not controls):
    ``disagreement (n,)``, ``atypicality`` ``{model: (n,)}`` (mean cosine distance to the k nearest atoms of other
    structures) and ``consensus_atypicality (n,)`` (percentile, 0-100), ``spread`` ``{model: (n,)}`` (the relative
    spread of the atom's orbit, NaN where it has no copy) and ``consensus_spread (n,)`` (their mean). Also the
    ``structure_store`` and the embedding ``stores`` they were read with."""

    atoms: np.ndarray
    trained: list[str]
    disagreement: np.ndarray
    atypicality: dict[str, np.ndarray]
    consensus_atypicality: np.ndarray
    spread: dict[str, np.ndarray]
    consensus_spread: np.ndarray
    structure_store: xr.Dataset
    stores: dict[str, xr.Dataset]

    @property
    def structure(self) -> np.ndarray:
        """``(n,)``: each compared atom's structure index."""
        return self.structure_store["structure_index"].values[self.atoms]

    @property
    def consensus(self) -> dict[str, np.ndarray]:
        """``{signal: (n,)}``: the three consensus signals, named as the tables name them."""
        return {"disagreement": self.disagreement, "atypicality": self.consensus_atypicality,
                "symmetry_spread": self.consensus_spread}  # fmt: skip


def symmetry_scales(path: str) -> dict[str, float]:
    """``{model: scale}`` of the symmetry audit's table (its typical distance between distinct environments)."""
    with open(path, newline="") as handle:
        return {row["model"]: float(row["scale"]) for row in csv.DictReader(handle)}


def latent_signals(
    *,
    structures: str,
    embeddings: list[str],
    projections: list[str],
    anchors: str,
    audit: str,
    symmetry_table: str,
    k: int,
    controls: tuple[str, ...] = (),
) -> LatentSignals:
    """The signals of the study whose stores these are (`LatentSignals`); atypicality takes ``k`` neighbours."""
    from platonic.analysis import atypicality as atypical
    from platonic.store import open_store
    from platonic.symmetry import symmetry_breaking

    stores = model_stores(embeddings, "embedding")
    valid, projected, first, _ = shared_space(anchors, projections)
    check_same_structures(first, *stores.values())
    trained = [m for m in projected if m not in controls]
    structure_store = open_structures(structures, first)
    atoms = np.flatnonzero(valid)
    structure = structure_store["structure_index"].values

    distance = {m: atypical.atypicality(np.asarray(projected[m]), structure[atoms], k) for m in trained}
    consensus_atypicality = atypical.consensus_percentile(np.array(list(distance.values())))
    for model, values in distance.items():
        log.info("%s: atypicality (k=%d) median %.4f, 95th percentile %.4f", model, k,
                 float(np.median(values)), float(np.percentile(values, 95)))  # fmt: skip

    audit_store = open_store(audit, kind="audit")
    if not np.array_equal(audit_store["atom"].values, atoms):
        raise ValueError(f"{audit} holds other atoms than the shared space of {anchors}; re-run the audit")
    disagreement = audit_store["disagreement"].values.astype(np.float64)
    scales = symmetry_scales(symmetry_table)
    all_valid = valid_mask(stores)  # the atoms the symmetry audit compares
    orbit, z = structure_store["orbit"].values, structure_store["Z"].values
    spread = {}
    for model in trained:
        if model not in scales:
            raise ValueError(f"{symmetry_table} has no row for {model}; re-run the symmetry audit")
        result = symmetry_breaking(
            stores[model]["embedding"].values[all_valid], orbit[all_valid], structure[all_valid], z[all_valid],
            scale=scales[model],
        )  # fmt: skip
        position = np.searchsorted(result.orbit, orbit[atoms])
        found = position < len(result.orbit)
        found[found] &= result.orbit[position[found]] == orbit[atoms][found]
        copied = np.zeros(len(atoms), dtype=bool)
        copied[found] = result.multiplicity[position[found]] > 1
        values = np.full(len(atoms), np.nan)
        values[copied] = result.relative[position[copied]]
        spread[model] = values
    consensus_spread = np.mean([spread[m] for m in trained], axis=0)
    return LatentSignals(atoms, trained, disagreement, distance, consensus_atypicality, spread, consensus_spread,
                         structure_store, stores)  # fmt: skip
