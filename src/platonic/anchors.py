"""Anchor selection: a fixed set of atoms, chosen once on a reference model, used by every model."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import xarray as xr

METHODS = ("direct", "random", "farthest-point")

# DIRECT's first Birch threshold: maml's BirchClustering default, and the schema's default of anchors.threshold_init
DIRECT_THRESHOLD_INIT = 0.5


def common_valid(masks: list[np.ndarray]) -> np.ndarray:
    """Atoms every model of ``masks`` (their ``valid (N,)`` masks) embedded."""
    masks = [np.asarray(m, dtype=bool) for m in masks]
    if len({m.shape for m in masks}) != 1:
        raise ValueError("embedding stores disagree on the number of atoms; re-run them on the same structure store")
    return np.logical_and.reduce(masks)


def select_anchors(
    features: np.ndarray,
    n: int,
    method: str,
    seed: int,
    candidates: np.ndarray | None = None,
    threshold_init: float = DIRECT_THRESHOLD_INIT,
) -> np.ndarray:
    """Pick ``n`` anchor rows of ``features (N, d)``; returns sorted row indices, shape ``(n,)``.

    ``candidates`` (bool mask, shape ``(N,)``) restricts the choice, e.g. to the compared atoms the model embedded;
    ``threshold_init`` is DIRECT's first Birch threshold (`direct_sampling`; the other methods ignore it).
    """
    features = np.asarray(features)
    pool = np.flatnonzero(candidates) if candidates is not None else np.arange(len(features))
    if n < 1:
        raise ValueError(f"the number of anchors must be positive, got {n}")
    if n > len(pool):
        raise ValueError(f"cannot pick {n} anchors from {len(pool)} candidate atoms")
    rng = np.random.default_rng(seed)
    if method == "direct":
        chosen = pool[direct_sampling(features[pool], n, threshold_init=threshold_init)]
    elif method == "random":
        chosen = rng.choice(pool, size=n, replace=False)
    elif method == "farthest-point":
        chosen = pool[farthest_point_sampling(features[pool], n, rng)]
    else:
        raise ValueError(f"unknown anchor method {method!r}; choose one of {', '.join(METHODS)}")
    return np.sort(chosen)


def direct_sampling(
    features: np.ndarray, n: int, k: int = 1, threshold_init: float = DIRECT_THRESHOLD_INIT
) -> np.ndarray:
    """DIRECT sampling (Qi et al., npj Comput. Mater. 10, 43 (2024)); returns sorted row indices.

    Standardise the features; PCA, keeping the components whose eigenvalue exceeds 1 (Kaiser's
    rule), each scaled by its explained-variance ratio; Birch clustering into ``n`` clusters (the
    threshold starts at ``threshold_init`` and shrinks until Birch finds at least ``n`` subclusters); then
    from each cluster the ``k`` rows spread evenly over the ranking by distance to the cluster's centre
    (``k = 1``: the closest). As in the reference implementation (maml's ``DIRECTSampler``), a cluster's centre is
    the centre of a Birch subcluster carrying its label. Deterministic: no random state involved.
    """
    from sklearn.cluster import Birch
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import StandardScaler

    if not threshold_init > 0:
        raise ValueError(f"DIRECT: the initial Birch threshold must be positive, got {threshold_init}")
    x = StandardScaler().fit_transform(np.asarray(features, dtype=np.float64))
    pca = PCA().fit(x)
    kept = int(np.count_nonzero(pca.explained_variance_ > 1))
    if kept == 0:
        raise ValueError("DIRECT: no principal component has an eigenvalue above 1; the features are degenerate")
    scores = pca.transform(x)[:, :kept] * pca.explained_variance_ratio_[:kept]
    threshold = threshold_init
    with warnings.catch_warnings():
        # too few subclusters is expected on the way down; the loop lowers the threshold
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        birch = Birch(n_clusters=n, threshold=threshold).fit(scores)
        while (found := len(set(birch.subcluster_labels_))) < n:
            threshold = threshold / n * found
            birch = Birch(n_clusters=n, threshold=threshold).fit(scores)
    labels = birch.predict(scores)
    centres = dict(zip(birch.subcluster_labels_, birch.subcluster_centers_, strict=True))
    chosen: set[int] = set()
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        distance = np.linalg.norm(scores[members] - centres[label], axis=1)
        ranks = np.linspace(0, len(members) - 1, k).astype(int)
        chosen.update(members[np.argpartition(distance, ranks)[ranks]].tolist())
    return np.array(sorted(chosen), dtype=np.int64)


def farthest_point_sampling(features: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy max-min selection in Euclidean distance on standardised features; shape ``(n,)``."""
    x = np.asarray(features, dtype=np.float64)
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    chosen = [int(rng.integers(len(x)))]
    distance = np.linalg.norm(x - x[chosen[0]], axis=1)
    for _ in range(n - 1):
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(x - x[nxt], axis=1))
    return np.asarray(chosen)


def compared_atoms(valid: np.ndarray, orbit: np.ndarray, atoms: str) -> np.ndarray:
    """The ``valid (N,)`` atoms a comparison keeps: all of them, or with ``atoms == "unique"`` only the
    representative of each crystallographic orbit (``orbit (N,)``: global index of each atom's representative).
    ``valid`` all True gives the anchor store's ``compared`` mask, which no model's exclusions enter."""
    if atoms == "all":
        return np.asarray(valid, bool)
    if atoms != "unique":
        raise ValueError(f"atoms must be 'unique' or 'all', got {atoms!r}")
    return np.asarray(valid, bool) & (np.asarray(orbit) == np.arange(len(orbit)))


def anchor_dataset(
    anchor_atoms: np.ndarray,
    reference_valid: np.ndarray,
    atom_z: np.ndarray,
    structure_ids: np.ndarray,
    compared: np.ndarray | None = None,
    multiplicity: np.ndarray | None = None,
    **attrs,
) -> xr.Dataset:
    """The anchor store: global atom indices of the anchors, the atoms the reference model embedded
    (``reference_valid``), the atoms the study compares before any model's exclusions (``compared``, default every
    atom; a stage compares those of them its models embedded) and each atom's orbit multiplicity (default 1)."""
    anchor_atoms = np.asarray(anchor_atoms, dtype=np.int64)
    reference_valid = np.asarray(reference_valid, bool)
    n_atoms = len(reference_valid)
    compared = np.ones(n_atoms, bool) if compared is None else np.asarray(compared, bool)
    multiplicity = np.ones(n_atoms, np.int64) if multiplicity is None else np.asarray(multiplicity, np.int64)
    ds = xr.Dataset(
        {
            "anchor_atom": (("anchor",), anchor_atoms),
            "reference_valid": (("atom",), reference_valid),
            "compared": (("atom",), compared),
            "multiplicity": (("atom",), multiplicity),
        },
        coords={
            "anchor": np.arange(len(anchor_atoms)),
            "atom": np.arange(n_atoms),
            "anchor_Z": ("anchor", np.asarray(atom_z)[anchor_atoms]),
            "anchor_structure_id": ("anchor", np.asarray(structure_ids, dtype=object)[anchor_atoms]),
        },
    )
    ds.attrs.update(
        kind="anchors",
        anchor_set_hash=hashlib.sha256(anchor_atoms.tobytes()).hexdigest(),
        n_reference_valid=int(np.count_nonzero(reference_valid)),
        n_compared=int(np.count_nonzero(compared)),
        **attrs,
    )
    return ds
