"""Stages ``anchors`` and ``project``: choose the anchor atoms once, then put every model into the shared space."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import xarray as xr

from platonic.settings import AnchorSettings, SimilaritySettings
from platonic.stages.command import command
from platonic.stages.common import model_stores, open_structures, valid_mask
from platonic.store import check_same_structures

log = logging.getLogger("platonic")


@command(help="choose anchor atoms on a reference model")
def anchors(
    output: str,
    *,
    structures: str,
    embedding: Annotated[str, "the reference model's embedding store"],
    settings: AnchorSettings,
    embeddings: Annotated[tuple[str, ...], "every model's embedding store, read with --candidates common only"] = (),
) -> None:
    """Anchor store ``output``: ``settings.n`` atoms chosen on the reference model (its embedding store
    ``embedding``) among the compared atoms (with ``settings.atoms == "unique"``, one per crystallographic orbit of
    the structure store ``structures``; else every atom) it embedded. With ``settings.candidates == "common"`` the
    anchors are chosen among the compared atoms every model of ``embeddings`` (every configured model's store)
    embedded too; otherwise the store depends on the reference model alone. With ``settings.method == "indices"``
    the anchors are not chosen but given (`given_anchors`), and must be among those candidates."""
    from platonic.anchors import anchor_dataset
    from platonic.store import open_store, write_store

    reference = open_store(embedding, kind="embedding")
    pool = anchor_candidates(structures, reference, settings, embeddings)
    n_candidates = int(pool.candidates.sum())
    if settings.n > n_candidates:
        embedded_by = "every model" if pool.candidate_models else pool.reference_model
        raise ValueError(
            f"anchors.n is {settings.n} but only {n_candidates} atoms can be anchors: of the {int(pool.compared.sum())}"
            f" compared atoms (anchors.atoms: {pool.atoms}), those {embedded_by} embedded (anchors.candidates:"
            f" {settings.candidates}); set anchors.n to at most {n_candidates}"
        )
    extra = {"candidate_models": pool.candidate_models} if pool.candidate_models else {}
    if settings.method == "indices":
        chosen, given = given_anchors(settings, pool)
        extra.update(given)
        how = f"given by {given['indices_source']}"
    else:
        chosen = choose_anchors(
            reference["embedding"].values, settings.n, settings.method, settings.seed, pool.candidates,
            settings.threshold_init,
        )  # fmt: skip
        how = settings.method + (f", threshold_init {settings.threshold_init:g}" if settings.method == "direct" else "")
    ds = anchor_dataset(
        chosen,
        pool.reference_valid,
        reference["Z"].values,
        reference["structure_id"].values,
        compared=pool.compared,
        multiplicity=pool.structures["multiplicity"].values,
        atoms=pool.atoms,
        symprec=pool.structures.attrs["symprec"],
        reference_model=pool.reference_model,
        method=settings.method,
        threshold_init=settings.threshold_init,
        seed=settings.seed,
        candidates=settings.candidates,
        n_candidates=n_candidates,
        structure_set_hash=reference.attrs["structure_set_hash"],
        **extra,
    )
    write_store(ds, output)
    log.info(
        "%d anchors on %s (%s, seed %d) among %d candidates (%s); %d atoms compared (atoms: %s), %d of them"
        " embedded by %s",
        len(chosen),
        pool.reference_model,
        how,
        settings.seed,
        n_candidates,
        settings.candidates,
        int(pool.compared.sum()),
        pool.atoms,
        int((pool.compared & pool.reference_valid).sum()),
        pool.reference_model,
    )


@dataclass(frozen=True)
class AnchorPool:
    """Where the anchors are chosen: the reference model's name, the atoms the study compares (``atoms``: unique or
    all; ``compared (N,)``, before any model's exclusions), those the reference model embedded (``reference_valid
    (N,)``) and the candidates ``(N,)`` among them, the structure store, and the models whose exclusions the
    candidates honour (``candidate_models``; None with ``candidates: reference``)."""

    reference_model: str
    atoms: str
    compared: np.ndarray
    reference_valid: np.ndarray
    candidates: np.ndarray
    structures: xr.Dataset
    candidate_models: list[str] | None


def anchor_candidates(
    structures: str, reference: xr.Dataset, settings: AnchorSettings, embeddings: tuple[str, ...] = ()
) -> AnchorPool:
    """The ``AnchorPool`` of the reference model's embedding store ``reference`` on the structure store
    ``structures``; with ``settings.candidates == "common"``, every model's embedding store ``embeddings`` too."""
    from platonic.anchors import compared_atoms

    reference_model = str(reference.attrs["model"])
    if settings.reference_model and settings.reference_model != reference_model:
        raise ValueError(
            f"the store given is the embedding store of {reference_model!r}, not of the reference model"
            f" {settings.reference_model!r} (anchors.reference_model)"
        )
    structure_store = open_structures(structures, reference)
    # null: the similarity stage's setting (validate_config writes it in; by hand, its schema default)
    atoms = settings.atoms or SimilaritySettings().atoms
    orbit = structure_store["orbit"].values
    compared = compared_atoms(np.ones(len(orbit), bool), orbit, atoms)
    reference_valid = reference["valid"].values.astype(bool)
    if len(reference_valid) != len(compared):
        raise ValueError(
            f"the embedding store of {reference_model} has {len(reference_valid)} atoms, {structures}"
            f" {len(compared)}; re-run embed"
        )
    candidates = compared & reference_valid
    candidate_models = None
    if settings.candidates == "common":
        if not embeddings:
            raise ValueError(
                "anchors.candidates 'common' chooses among the atoms every model embedded: give every model's"
                " embedding store (--embeddings)"
            )
        stores = model_stores(embeddings, "embedding")
        stores.setdefault(reference_model, reference)
        check_same_structures(*stores.values())
        candidates &= valid_mask(stores)
        candidate_models = list(stores)
    elif embeddings:
        log.info("anchors.candidates is 'reference': the other models' embedding stores are not read")
    return AnchorPool(reference_model, atoms, compared, reference_valid, candidates, structure_store, candidate_models)


def choose_anchors(
    features: np.ndarray, n: int, method: str, seed: int, candidates: np.ndarray, threshold_init: float
) -> np.ndarray:
    """``platonic.anchors.select_anchors`` on the reference model's ``features (N, d)`` among ``candidates (N,)``
    (DIRECT from ``threshold_init``), its errors naming the config keys; sorted global atom indices ``(n,)``."""
    from platonic.anchors import select_anchors

    try:
        return select_anchors(features, n, method, seed, candidates=candidates, threshold_init=threshold_init)
    except ValueError as err:
        raise ValueError(f"{err} (anchors.n, anchors.method, anchors.threshold_init, anchors.candidates)") from err


def given_anchors(settings: AnchorSettings, pool: AnchorPool) -> tuple[np.ndarray, dict]:
    """The anchors ``settings.indices`` gives (method ``indices``), mapped from the atom order of
    ``settings.indices_order`` (null: the CSV the structure store was read from) onto the study's atoms: global atom
    indices ``(n,)`` in the order given, and the anchor store attrs that say where they come from. Every anchor must
    be a candidate of ``pool``; errors name the index, its structure and site, and the config keys."""
    from platonic.anchor_indices import file_sha256, flatten_order, indices_sha256, map_indices, read_indices

    if settings.indices is None:
        raise ValueError("anchors.method is 'indices' but anchors.indices is not given")
    try:
        indices = read_indices(settings.indices)
    except ValueError as err:
        raise ValueError(f"anchors.indices: {err}") from err
    if len(indices) != settings.n:
        raise ValueError(f"anchors.indices gives {len(indices)} atoms but anchors.n is {settings.n}: set anchors.n:"
                         f" {len(indices)}")  # fmt: skip
    store = pool.structures
    order_path = settings.indices_order or str(store.attrs["source"])
    try:
        order = flatten_order(order_path, until=max(indices))
        rejected = dict(zip(store.attrs.get("rejected_ids", []), store.attrs.get("rejected_reasons", []), strict=True))
        atoms = map_indices(indices, order, store["material_id"].values, store["first_atom"].values,
                            store["n_atoms"].values, store["Z"].values, rejected)  # fmt: skip
    except ValueError as err:
        raise ValueError(
            f"{err} (anchors.indices, anchors.indices_order: null reads dataset.path; the study's structures:"
            " dataset.path, dataset.limit)"
        ) from err
    problems = []
    ids, sites, orbit = store["structure_id"].values, store["site"].values, store["orbit"].values
    for index, atom in zip(indices, atoms, strict=True):
        if pool.candidates[atom]:
            continue
        where = f"index {index} (site {int(sites[atom])} of {ids[atom]}, atom {atom} of this study)"
        if not pool.compared[atom]:
            problems.append(
                f"{where} is a symmetry copy of atom {int(orbit[atom])}, its orbit's representative: with anchors.atoms"
                " unique only representatives are compared and can be anchors; set anchors.atoms: all (Li & Walsh"
                " compare every atom)"
            )
        elif not pool.reference_valid[atom]:
            problems.append(
                f"{where} was not embedded by the reference model {pool.reference_model}: choose another"
                " anchors.reference_model, or leave the index out"
            )
        else:
            problems.append(
                f"{where} was not embedded by every model ({', '.join(pool.candidate_models or [])}; anchors.candidates"
                " common): leave the index out, or set anchors.candidates: reference"
            )
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ValueError(f"{len(problems)} of the {len(indices)} given anchors are not anchor candidates: {shown}")
    given = {
        "indices_source": str(settings.indices) if isinstance(settings.indices, str) else "anchors.indices (a list)",
        "indices_sha256": indices_sha256(indices),
        "indices_order": str(order_path),
        "indices_order_sha256": file_sha256(order_path),
    }
    return atoms, given


def missing_anchors(store, anchor_store) -> list[str]:
    """The anchor atoms the model of embedding store ``store`` did not embed (``valid`` False or a non-finite
    row), each as ``atom <global index> (<structure_id>, <element>)``."""
    import numpy as np
    from ase.data import chemical_symbols

    rows = anchor_store["anchor_atom"].values
    embedded = store["valid"].values[rows].astype(bool) & np.isfinite(store["embedding"].values[rows]).all(axis=1)
    ids, z = store["structure_id"].values, store["Z"].values
    return [f"atom {int(i)} ({ids[i]}, {chemical_symbols[int(z[i])]})" for i in rows[~embedded]]


@command(help="write a study's anchor set as an extxyz file that any model can enter the shared space through")
def anchor_set(output: str, *, anchors: str, structures: str) -> None:
    """Anchor-set file ``output`` (`platonic.anchor_set`): the structures of the structure store ``structures`` that
    hold the anchors of the anchor store ``anchors``, each anchor marked, with the set's provenance and checksums."""
    from platonic.anchor_set import anchor_set_frames, write_anchor_set
    from platonic.store import open_store

    anchor_store = open_store(anchors, kind="anchors")
    structure_store = open_store(structures, kind="structures")
    check_same_structures(anchor_store, structure_store)
    frames = anchor_set_frames(anchor_store, structure_store)
    write_anchor_set(frames, output)
    log.info(
        "%d anchors (on %s) in %d structures -> %s",
        anchor_store.sizes["anchor"],
        anchor_store.attrs.get("reference_model"),
        len(frames),
        output,
    )


def is_anchor_set_file(path: str) -> bool:
    """Whether ``path`` names an anchor-set file (extxyz) rather than an anchor store."""
    return str(path).lower().endswith((".extxyz", ".xyz"))


# what must agree between a model's embedding and its embedding of the anchor atoms: the same weights, layer and dtype
SAME_MODEL_ATTRS = ("model_checkpoint_sha256", "model_weights_sha256", "model_layer", "model_forward_dtype")


def anchor_set_rows(path: str, anchor_embedding: str | None, features_store) -> tuple[np.ndarray, np.ndarray, dict]:
    """The anchor rows of the model of ``features_store`` for the anchor-set file ``path``: its features of the
    anchor atoms ``(K, d)`` from ``anchor_embedding`` (the model's embedding store of the anchor-set frames, or of the
    study's structures), the anchors' study atom indices ``(K,)`` and the set's attrs."""
    from platonic.anchor_set import anchor_rows, read_anchor_set
    from platonic.store import open_store

    anchor_set = read_anchor_set(path)
    model = features_store.attrs["model"]
    if anchor_embedding is None:
        raise ValueError(
            f"{path} is an anchor-set file: give --anchor-embedding, {model}'s embedding store of its structures"
            f" (`platonic prepare {path} STORE`, then `platonic embed STORE OUT --model {model}`)"
        )
    store = open_store(anchor_embedding, kind="embedding")
    if store.attrs["model"] != model:
        raise ValueError(
            f"--anchor-embedding {anchor_embedding} holds {store.attrs['model']!r}, not {model!r}: a model's anchors"
            " are its own rows of the anchor atoms"
        )
    differ = [k for k in SAME_MODEL_ATTRS if store.attrs.get(k) != features_store.attrs.get(k)]
    if differ:
        shown = ", ".join(f"{k[6:]} {store.attrs.get(k)} vs {features_store.attrs.get(k)}" for k in differ)
        raise ValueError(
            f"--anchor-embedding {anchor_embedding} was embedded by another {model} than the embedding to project"
            f" ({shown}); embed both with the same model entry"
        )
    known = {anchor_set.attrs["anchor_structures_hash"], anchor_set.attrs["structure_set_hash"]}
    if store.attrs["structure_set_hash"] not in known:
        raise ValueError(
            f"--anchor-embedding {anchor_embedding} embeds neither the structures of {path} nor the study's structure"
            " set; embed the anchor-set file itself"
        )
    rows = anchor_rows(anchor_set, store["structure_id"].values, store["site"].values, store["Z"].values)
    features = store["embedding"].values[rows]
    unembedded = ~(store["valid"].values[rows].astype(bool) & np.isfinite(features).all(axis=1))
    if unembedded.any():
        shown = ", ".join(f"anchor {k} ({anchor_set.structure_id[k]})" for k in np.flatnonzero(unembedded)[:20])
        raise ValueError(f"{model} did not embed {int(unembedded.sum())} of the {len(rows)} anchor atoms: {shown}")
    attrs = {"anchor_set_hash": anchor_set.attrs["anchor_set_hash"], "anchor_set_file": str(path)}
    return features, anchor_set.study_atom, attrs


@command(help="project one model's embeddings onto the anchors")
def project(
    embedding: str,
    anchors: Annotated[str, "the study's anchor store, or an anchor-set file (extxyz; `platonic anchor-set`)"],
    output: str,
    *,
    anchor_embedding: Annotated[
        str | None, "with an anchor-set file: the same model's embedding store of the anchor-set structures"
    ] = None,
) -> None:
    """Projection store ``output``: each atom's cosine to the anchor atoms, in the model of ``embedding``. The anchors
    are the study's anchor store (then ``embedding`` is of the study's structures), or an anchor-set file, whose
    anchor rows come from ``anchor_embedding`` (then ``embedding`` may hold any structures)."""
    from platonic.projection import anchor_projection
    from platonic.store import check_same_structures, open_store, write_store

    features_store = open_store(embedding, kind="embedding")
    if is_anchor_set_file(anchors):
        anchor_features, anchor_atoms, attrs = anchor_set_rows(anchors, anchor_embedding, features_store)
        features = features_store["embedding"].values
        projected = anchor_projection(features, anchor_features)
        ds = projection_dataset(features_store, projected, anchor_atoms, attrs)
        write_store(ds, output)
        log.info("%s: %d atoms x %d anchors (%s) -> %s", features_store.attrs["model"], *projected.shape, anchors,
                 output)  # fmt: skip
        return
    anchor_store = open_store(anchors, kind="anchors")
    check_same_structures(features_store, anchor_store)
    missing = missing_anchors(features_store, anchor_store)
    if missing:
        shown = ", ".join(missing[:20]) + (f" (+{len(missing) - 20} more)" if len(missing) > 20 else "")
        raise ValueError(
            f"{features_store.attrs['model']} did not embed {len(missing)} of the {anchor_store.sizes['anchor']}"
            f" anchor atoms, chosen on {anchor_store.attrs.get('reference_model')}: {shown}. Choose another"
            " anchors.reference_model (one whose elements the other models cover), or set anchors.candidates:"
            " common to choose the anchors among the atoms every model embedded"
        )
    features = features_store["embedding"].values
    anchor_rows = anchor_store["anchor_atom"].values
    projected = anchor_projection(features, features[anchor_rows])
    ds = projection_dataset(
        features_store, projected, anchor_rows, {"anchor_set_hash": anchor_store.attrs["anchor_set_hash"]}
    )
    write_store(ds, output)
    log.info("%s: %d atoms x %d anchors -> %s", features_store.attrs["model"], *projected.shape, output)


def projection_dataset(features_store, projected: np.ndarray, anchor_atoms: np.ndarray, attrs: dict) -> xr.Dataset:
    """The projection store of ``projected (N, K)``, on the atoms of the embedding store ``features_store``, the
    anchors being the study's atoms ``anchor_atoms (K,)``."""
    return xr.Dataset(
        {"coordinate": (("atom", "anchor"), projected), "valid": features_store["valid"]},
        coords={
            "atom": features_store["atom"].values,
            "structure_id": ("atom", features_store["structure_id"].values.astype(object)),
            "site": ("atom", features_store["site"].values),
            "Z": ("atom", features_store["Z"].values),
            "anchor": np.arange(len(anchor_atoms)),
            "anchor_atom": ("anchor", anchor_atoms),
        },
        attrs={**features_store.attrs, "kind": "projection", **attrs},
    )
