"""The interactive map: the compared environments of a study (and any screened ones) in the shared space, with
their map coordinates and per-environment properties, as one self-contained chemiscope page."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from platonic.settings import MapSettings
from platonic.stages.command import Controls, command
from platonic.stages.common import model_stores, open_structures, shared_space, valid_mask

log = logging.getLogger("platonic")


def symmetry_spread(stores: dict, structure_store, rows: np.ndarray) -> np.ndarray:
    """Per atom of ``rows`` (global indices), the largest over the models ``stores`` (embedding stores) of its
    orbit's relative spread (``platonic.symmetry.symmetry_breaking``, on the atoms every model embedded); NaN for
    an atom whose orbit has no copy."""
    from platonic.symmetry import symmetry_breaking

    valid = valid_mask(stores)
    orbit = structure_store["orbit"].values
    spread = np.full(len(orbit), np.nan)
    for store in stores.values():
        result = symmetry_breaking(
            store["embedding"].values[valid], orbit[valid], structure_store["structure_index"].values[valid],
            structure_store["Z"].values[valid],
        )  # fmt: skip
        copied = result.multiplicity > 1
        labels, relative = np.asarray(result.orbit)[copied], result.relative[copied]
        spread[labels] = np.fmax(spread[labels], relative)
    return spread[orbit[rows]]


def map_dataset(
    *,
    structures: str,
    projections: list[str],
    embeddings: list[str],
    anchors: str,
    audit: str,
    settings: MapSettings,
    controls: tuple[str, ...] = (),
    screened_structures: str | None = None,
    screened_projections: tuple[str, ...] = (),
    name: str = "platonic",
) -> dict:
    """The chemiscope dataset of the map (``platonic.interactive_map.chemiscope_dataset``): the compared
    environments (at most ``settings.max_points``) of the study's trained models (not ``controls``), and the
    screened structures' environments where ``screened_structures`` and their ``screened_projections`` are given."""
    from ase.data import chemical_symbols

    from platonic import atom_maps, elements
    from platonic import interactive_map as page
    from platonic.analysis.atypicality import atypicality, consensus_percentile, percentile_in, query_atypicality
    from platonic.store import check_same_structures, open_store

    valid, projected, first, _ = shared_space(anchors, projections)
    raw = model_stores(embeddings, "embedding")
    check_same_structures(first, *raw.values())
    trained = [m for m in projected if m not in controls]
    if not trained:
        raise ValueError(f"the map needs a model that is not a control; the controls are {list(controls)}")
    structure_store = open_structures(structures, first).load()
    rows = np.flatnonzero(valid)
    if len(rows) > settings.max_points:
        rows = np.sort(np.random.default_rng(settings.seed).choice(rows, settings.max_points, replace=False))
    picked = np.isin(np.flatnonzero(valid), rows)
    coordinates = {m: np.asarray(projected[m], dtype=np.float64)[picked] for m in trained}
    structure_index = structure_store["structure_index"].values
    z = structure_store["Z"].values

    maps = atom_maps.joint_maps(coordinates, ("pca",)).sel(reduction="pca").values  # (model, atom, axis)
    distances = np.stack([atypicality(x, structure_index[rows], settings.k) for x in coordinates.values()])
    audit_store = open_store(audit, kind="audit")
    disagreement = audit_store["disagreement"].reindex(atom=rows).values  # NaN where the audit has no value
    spread = symmetry_spread({m: raw[m] for m in trained}, structure_store, rows)

    columns = {
        "joint PC1": maps[:, :, 0].mean(axis=0),
        "joint PC2": maps[:, :, 1].mean(axis=0),
        **{f"{m} PC{i + 1}": maps[j, :, i] for j, m in enumerate(trained) for i in range(2)},
        "element": np.array([chemical_symbols[int(v)] for v in z[rows]]),
        "group": elements.periodic_group(z[rows], f_block=3),
        "disagreement": disagreement,
        "atypicality": consensus_percentile(distances),
        "symmetry-breaking spread": spread,
        "screened": np.full(len(rows), "study"),
    }
    # the models' predictions of the same forward pass, where their stores hold them (embed.predictions)
    predicted = [m for m in trained if "forces" in raw[m]]
    for m in predicted:
        columns[f"{m} |force|"] = np.linalg.norm(raw[m]["forces"].values[rows], axis=1)
    structures_shown = np.unique(structure_index[rows])
    local = {s: i for i, s in enumerate(structures_shown)}
    first_atom = structure_store["first_atom"].values
    environments = [(local[s], a - first_atom[s]) for s, a in zip(structure_index[rows], rows, strict=True)]
    entries = _entries(structure_store, structures_shown)
    names = [str(structure_store["material_id"].values[s]) for s in structures_shown]

    if screened_structures:
        screened = _screened(screened_structures, screened_projections, anchors, trained)
        # the study's joint plane, recovered from all its trained models' rows together (its centre is theirs)
        stacked = np.concatenate([coordinates[m] for m in trained])
        plane = maps.reshape(-1, 2)
        extra = {m: page.onto_plane(stacked, plane, screened["coordinates"][m]) for m in trained}
        percentiles = [
            percentile_in(query_atypicality(screened["coordinates"][m], coordinates[m], settings.k)[0], d)
            for m, d in zip(trained, distances, strict=True)
        ]
        added = {
            "joint PC1": np.mean([extra[m][:, 0] for m in trained], axis=0),
            "joint PC2": np.mean([extra[m][:, 1] for m in trained], axis=0),
            **{f"{m} PC{i + 1}": extra[m][:, i] for m in trained for i in range(2)},
            "element": np.array([chemical_symbols[int(v)] for v in screened["Z"]]),
            "group": elements.periodic_group(screened["Z"], f_block=3),
            "disagreement": np.full(len(screened["Z"]), np.nan),
            "atypicality": np.mean(percentiles, axis=0),
            "symmetry-breaking spread": np.full(len(screened["Z"]), np.nan),
            **{f"{m} |force|": np.full(len(screened["Z"]), np.nan) for m in predicted},
            "screened": np.full(len(screened["Z"]), "screened"),
        }
        columns = {key: np.concatenate([values, added[key]]) for key, values in columns.items()}
        environments += [(len(entries) + s, a) for s, a in screened["environments"]]
        entries += screened["entries"]
        names += screened["names"]

    descriptions = {
        "joint PC1": "mean over the trained models of the environment's place on the first principal axis of their"
        " anchor coordinates, fitted once on every trained model together",
        "joint PC2": "the same on the second principal axis",
        "element": "chemical element",
        "group": "periodic-table group (lanthanides and actinides in group 3)",
        "disagreement": "cross-model disagreement: mean over the trained models of the distance of their unit-length"
        " anchor row to the models' mean unit row (the audit's); NaN for screened environments",
        "atypicality": f"consensus percentile (0-100) of the mean cosine distance to the {settings.k} nearest"
        " environments of other structures, per model within the study's distribution",
        "symmetry-breaking spread": "largest over the models of the relative spread of the embeddings of the"
        " environment's symmetry copies; NaN where it has no copy",
        "screened": "'screened' for an environment of a screened structure, 'study' for one of the study",
    }
    for m in trained:
        for i in range(2):
            descriptions[f"{m} PC{i + 1}"] = f"{m}'s place on the joint principal axis {i + 1}"
        descriptions[f"{m} |force|"] = f"length of the force {m} predicts on the atom (eV/Å); NaN where screened"
    per_structure = {"material_id": (np.array(names), "structure identifier")}
    for m in [m for m in predicted if "energy_per_atom" in raw[m]]:
        energy = raw[m]["energy_per_atom"].values[structures_shown]
        energy = np.concatenate([energy, np.full(len(names) - len(energy), np.nan)])
        per_structure[f"{m} energy per atom"] = (energy, f"energy per atom {m} predicts (eV/atom)")
    return page.chemiscope_dataset(
        entries,
        np.array(environments, dtype=np.int64),
        {key: (values, descriptions[key]) for key, values in columns.items()},
        structure_properties=per_structure,
        name=f"{name}: the shared space of {len(trained)} models",
        description=f"{len(rows)} compared environments of {len(structures_shown)} structures in the shared"
        f" (anchor) space of {', '.join(trained)}; map axes: principal components of the anchor coordinates",
        x="joint PC1",
        y="joint PC2",
        color="atypicality",
        symbol="screened" if screened_structures else None,
    )


def _entries(structure_store, indices: np.ndarray) -> list[dict]:
    from ase.data import chemical_symbols

    from platonic.interactive_map import structure_entries

    first, count = structure_store["first_atom"].values, structure_store["n_atoms"].values
    z, xyz = structure_store["Z"].values, structure_store["positions"].values
    cell = structure_store["cell"].values
    spans = [slice(first[s], first[s] + count[s]) for s in indices]
    return structure_entries(
        [[chemical_symbols[int(v)] for v in z[span]] for span in spans],
        [xyz[span] for span in spans],
        [cell[s] for s in indices],
    )


def _screened(structures: str, projections: tuple[str, ...], anchors: str, models: list[str]) -> dict:
    """The screened environments: every atom of ``structures`` that all ``models`` projected (with the study's
    ``anchors``), one per symmetry orbit where the store has orbits."""
    from platonic.store import open_store

    anchor_hash = open_store(anchors, kind="anchors").attrs["anchor_set_hash"]
    stores = model_stores(list(projections), "projection")
    missing = [m for m in models if m not in stores]
    if missing:
        raise ValueError(f"the screened projections lack the models {missing}")
    for model, store in stores.items():
        if store.attrs.get("anchor_set_hash") != anchor_hash:
            raise ValueError(f"the screened projection of {model} was made with other anchors than {anchors}")
    store = open_structures(structures, stores[models[0]]).load()
    keep = valid_mask({m: stores[m] for m in models})
    if "orbit" in store:
        keep &= store["orbit"].values == np.arange(len(keep))
    rows = np.flatnonzero(keep)
    structure_index = store["structure_index"].values[rows]
    shown = np.unique(structure_index)
    local = {s: i for i, s in enumerate(shown)}
    first = store["first_atom"].values
    return {
        "coordinates": {m: stores[m]["coordinate"].values[rows].astype(np.float64) for m in models},
        "Z": store["Z"].values[rows],
        "environments": [(local[s], a - first[s]) for s, a in zip(structure_index, rows, strict=True)],
        "entries": _entries(store, shown),
        "names": [f"screened: {store['material_id'].values[s]}" for s in shown],
    }


@command(help="the interactive map: one self-contained chemiscope page of the shared space")
def run(
    output: str,
    *,
    structures: str,
    projections: list[str],
    embeddings: list[str],
    anchors: str,
    audit: str,
    settings: MapSettings,
    controls: Controls = (),
    screened_structures: str | None = None,
    screened_projections: tuple[str, ...] = (),
) -> None:
    """The compared environments in the shared space (map: principal components of the anchor coordinates, joint
    and per model; properties: element, group, disagreement, atypicality, symmetry-breaking spread), the
    ``screened_structures`` marked where given -> one HTML page ``output`` that opens offline."""
    from platonic.interactive_map import write_page

    dataset = map_dataset(
        structures=structures, projections=projections, embeddings=embeddings, anchors=anchors, audit=audit,
        settings=settings, controls=controls, screened_structures=screened_structures,
        screened_projections=screened_projections, name=Path(structures).name.split(".")[0],
    )  # fmt: skip
    meta = dataset["meta"]
    path = write_page(dataset, output, meta["name"], meta["description"])
    log.info("%d environments of %d structures, %d properties -> %s (%.1f MB)", len(dataset["environments"]),
             len(dataset["structures"]), len(dataset["properties"]), path, path.stat().st_size / 1e6)  # fmt: skip
