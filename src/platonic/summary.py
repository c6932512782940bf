"""Per-model summaries behind the overview figures: periodic-table groups, per-element means, norms, model distances.

Everything here takes arrays and returns arrays; the figures module draws them.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

# Lanthanides (La-Lu, Z 57-71) and actinides (Ac-Lr, Z 89-103) get their own label instead of group 3:
# where La/Lu and Ac/Lr belong is contested, and f-block environments form their own family.
F_BLOCK = 19
GROUP_LABELS = {**{g: str(g) for g in range(1, 19)}, F_BLOCK: "f"}
# the first Z of each period and its group layout (period 1: H, He; periods 2-3: 2 + 6; periods 4-5: 18 columns)
_PERIOD_STARTS = (1, 3, 11, 19, 37, 55, 87, 119)


def periodic_group(atomic_numbers, f_block: int = F_BLOCK) -> np.ndarray:
    """Periodic-table group 1-18 of each atomic number, ``f_block`` for La-Lu and Ac-Lr (default ``F_BLOCK``, 19,
    a label of their own; 3 puts them in group 3 with Sc and Y, keeping every element in one of 18 classes)."""
    z = np.asarray(atomic_numbers, dtype=np.int64)
    if z.size and (z.min() < 1 or z.max() > 118):
        raise ValueError(f"atomic numbers must lie in 1..118, got {z.min()}..{z.max()}")
    period = np.searchsorted(_PERIOD_STARTS, z, side="right")  # 1-based
    offset = z - np.asarray(_PERIOD_STARTS)[period - 1]  # 0-based position in the period
    group = np.empty_like(z)
    # period 1: H in group 1, He in group 18
    group[period == 1] = np.where(offset[period == 1] == 0, 1, 18)
    short = (period == 2) | (period == 3)  # s block, then p block in groups 13-18
    group[short] = np.where(offset[short] < 2, offset[short] + 1, offset[short] + 11)
    medium = (period == 4) | (period == 5)
    group[medium] = offset[medium] + 1
    long = period >= 6  # 2 s, 15 f (La-Lu / Ac-Lr), then groups 4-18
    off = offset[long]
    group[long] = np.where(off < 2, off + 1, np.where(off < 17, f_block, off - 13))
    return group


def element_means(
    features, atomic_numbers, valid=None, chunk: int = 65536
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean feature vector of each element over the valid atoms, streamed over atom chunks.

    ``features`` (n_atoms, n_features), array-like with slicing (numpy, dask, xarray);
    returns (elements (n_elements,) sorted Z, means (n_elements, n_features) float64, counts (n_elements,)).
    """
    z = np.asarray(atomic_numbers, dtype=np.int64)
    keep = np.ones(z.shape, bool) if valid is None else np.asarray(valid, bool)
    elements = np.unique(z[keep])
    index = np.searchsorted(elements, z)
    n_features = features.shape[1]
    sums = np.zeros((elements.size, n_features))
    counts = np.zeros(elements.size, dtype=np.int64)
    for start in range(0, z.size, chunk):
        block = np.asarray(features[start : start + chunk], dtype=np.float64)
        rows = keep[start : start + chunk]
        np.add.at(sums, index[start : start + chunk][rows], block[rows])
        counts += np.bincount(index[start : start + chunk][rows], minlength=elements.size)
    return elements, sums / counts[:, None], counts


def embedding_norms(features, valid=None, chunk: int = 65536) -> np.ndarray:
    """Euclidean norm of each valid atom's feature vector, streamed over atom chunks; (n_valid,) float64."""
    keep = None if valid is None else np.asarray(valid, bool)
    parts = []
    for start in range(0, features.shape[0], chunk):
        block = np.asarray(features[start : start + chunk], dtype=np.float64)
        norms = np.linalg.norm(block, axis=1)
        parts.append(norms if keep is None else norms[keep[start : start + chunk]])
    return np.concatenate(parts) if parts else np.zeros(0)


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity between the rows of ``vectors`` (n, d); (n, n)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-300)
    return unit @ unit.T


def periodic_order(elements) -> np.ndarray:
    """Indices that sort ``elements`` (atomic numbers) by periodic-table group, then atomic number."""
    z = np.asarray(elements, dtype=np.int64)
    return np.lexsort((z, periodic_group(z)))


# metrics where larger means more alike (the others are distances or errors, 0 = identical)
SIMILARITY_METRICS = frozenset({"linear_cka", "debiased_cka", "mutual_knn", "cknna", "svcca", "distance_correlation"})


def model_distances(ds: xr.Dataset, metric: str, space: str) -> np.ndarray:
    """Symmetric model x model dissimilarity from ``ds.similarity`` (metric, space, model_a, model_b).

    Similarities become 1 - s (clipped at 0); distances and errors are used as they are. Directed metrics are
    averaged over both directions; the diagonal is 0. Returns (n_models, n_models) float64.
    """
    values = ds["similarity"].sel(metric=metric, space=space).values.astype(np.float64)
    distance = np.clip(1.0 - values, 0.0, None) if metric in SIMILARITY_METRICS else values
    distance = 0.5 * (distance + distance.T)
    np.fill_diagonal(distance, 0.0)
    return distance


def classical_mds(distances: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Classical (Torgerson) multidimensional scaling of a distance matrix (n, n); returns (n, n_components).

    Components beyond the number of positive eigenvalues are 0; signs are fixed so that each axis's largest
    coordinate is positive (deterministic output).
    """
    d = np.asarray(distances, dtype=np.float64)
    n = d.shape[0]
    centring = np.eye(n) - 1.0 / n
    gram = -0.5 * centring @ (d**2) @ centring
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1][:n_components]
    scale = np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    coordinates = np.zeros((n, n_components))
    coordinates[:, : order.size] = eigenvectors[:, order] * scale
    for column in range(coordinates.shape[1]):
        pivot = np.argmax(np.abs(coordinates[:, column]))
        if coordinates[pivot, column] < 0:
            coordinates[:, column] *= -1
    return coordinates


def shared_sample(valid, size: int, seed: int) -> np.ndarray:
    """Sorted seeded sample of at most ``size`` indices of the True entries of ``valid`` (n_atoms,) bool."""
    candidates = np.flatnonzero(np.asarray(valid, bool))
    if candidates.size <= size:
        return candidates
    return np.sort(np.random.default_rng(seed).choice(candidates, size=size, replace=False))
