"""Stages ``anchors`` and ``project``: choose the anchor atoms once, then put every model into the shared space."""

from __future__ import annotations

import logging

from platonic.settings import AnchorSettings, SimilaritySettings
from platonic.stages.common import check_same_structures, model_stores, open_structures

log = logging.getLogger("platonic")


def anchors(structures: str, embeddings: list[str], output: str, settings: AnchorSettings) -> None:
    """Anchor store ``output``: ``settings.n`` atoms chosen on the reference model among the compared atoms
    (every model embedded them; with ``settings.atoms == "unique"``, one per crystallographic orbit of the
    structure store ``structures``), which it records for every later stage."""
    from platonic.anchors import anchor_dataset, common_valid, compared_atoms, select_anchors
    from platonic.store import write_store

    stores = model_stores(embeddings)
    reference_model = settings.reference_model or next(iter(stores))
    if reference_model not in stores:
        raise ValueError(f"reference model {reference_model!r} is not among the embedded models {list(stores)}")
    check_same_structures(stores)
    valid = common_valid([s["valid"].values for s in stores.values()])
    structure_store = open_structures(structures, next(iter(stores.values())))
    # null: the similarity stage's setting (validate_config writes it in; by hand, its schema default)
    atoms = settings.atoms or SimilaritySettings().atoms
    compared = compared_atoms(valid, structure_store["orbit"].values, atoms)
    reference = stores[reference_model]
    try:
        chosen = select_anchors(
            reference["embedding"].values, settings.n, settings.method, settings.seed, candidates=compared
        )
    except ValueError as err:
        raise ValueError(f"{err} (anchors.n, anchors.method)") from err
    ds = anchor_dataset(
        chosen,
        valid,
        reference["Z"].values,
        reference["structure_id"].values,
        compared=compared,
        multiplicity=structure_store["multiplicity"].values,
        atoms=atoms,
        symprec=structure_store.attrs["symprec"],
        reference_model=reference_model,
        method=settings.method,
        seed=settings.seed,
        structure_set_hash=reference.attrs["structure_set_hash"],
    )
    write_store(ds, output)
    log.info(
        "%d anchors on %s (%s, seed %d); %d atoms valid in all models, %d compared (atoms: %s)",
        settings.n,
        reference_model,
        settings.method,
        settings.seed,
        int(valid.sum()),
        int(compared.sum()),
        atoms,
    )


def project(embedding: str, anchors: str, output: str) -> None:
    """Projection store ``output``: each atom's cosine to the anchor atoms, in the model of ``embedding``."""
    import xarray as xr

    from platonic.projection import anchor_projection
    from platonic.store import open_store, write_store

    features_store = open_store(embedding)
    anchor_store = open_store(anchors)
    if features_store.attrs["structure_set_hash"] != anchor_store.attrs["structure_set_hash"]:
        raise ValueError(f"{embedding} and {anchors} were computed on different structure sets")
    features = features_store["embedding"].values
    anchor_rows = anchor_store["anchor_atom"].values
    projected = anchor_projection(features, features[anchor_rows])
    ds = xr.Dataset(
        {"coordinate": (("atom", "anchor"), projected), "valid": features_store["valid"]},
        coords={
            "atom": features_store["atom"].values,
            "structure_id": ("atom", features_store["structure_id"].values.astype(object)),
            "site": ("atom", features_store["site"].values),
            "Z": ("atom", features_store["Z"].values),
            "anchor": anchor_store["anchor"].values,
            "anchor_atom": ("anchor", anchor_rows),
        },
        attrs={
            **features_store.attrs,
            "kind": "projection",
            "anchor_set_hash": anchor_store.attrs["anchor_set_hash"],
        },
    )
    write_store(ds, output)
    log.info("%s: %d atoms x %d anchors -> %s", features_store.attrs["model"], *projected.shape, output)
