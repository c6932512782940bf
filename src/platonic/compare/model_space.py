"""Per-model summaries behind the overview figures: distances between models, their average-linkage tree and MDS
map, per-atom embedding norms, and one seeded atom sample shared by every model's panel. Arrays in, arrays out."""

from __future__ import annotations

import numpy as np
import xarray as xr

from platonic.compare.registry import SIMILARITIES


def embedding_norms(features, valid=None, chunk: int = 65536) -> np.ndarray:
    """Euclidean norm of each valid atom's feature vector, streamed over atom chunks; (n_valid,) float64."""
    keep = None if valid is None else np.asarray(valid, bool)
    parts = []
    for start in range(0, features.shape[0], chunk):
        block = np.asarray(features[start : start + chunk], dtype=np.float64)
        norms = np.linalg.norm(block, axis=1)
        parts.append(norms if keep is None else norms[keep[start : start + chunk]])
    return np.concatenate(parts) if parts else np.zeros(0)


def model_distances(ds: xr.Dataset, metric: str, space: str) -> np.ndarray:
    """Symmetric model x model dissimilarity from ``ds.similarity`` (metric, space, model_a, model_b).

    Similarities become 1 - s (clipped at 0); distances and errors are used as they are. Directed metrics are
    averaged over both directions; the diagonal is 0. Returns (n_models, n_models) float64.
    """
    values = ds["similarity"].sel(metric=metric, space=space).values.astype(np.float64)
    distance = np.clip(1.0 - values, 0.0, None) if metric in SIMILARITIES else values
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


def linkage_and_mds(ds: xr.Dataset, metric: str) -> xr.Dataset:
    """What the model tree draws, per space of ``ds``: ``distance (space, model_a, model_b)`` (``model_distances``),
    the average-linkage ``linkage (space, merge, link)`` (scipy's (n - 1, 4) matrix: the two clusters merged, their
    distance, the new cluster's size) and the classical MDS map ``mds (space, model, component)``; both NaN in a
    space where a distance is not finite or there are fewer than two models (``defined (space)`` False). Carries
    ``ds.control`` (model; all False without it) and ``ds.attrs`` with ``metric`` added."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    models = [str(m) for m in ds.model_a.values]
    spaces = [str(s) for s in ds.space.values]
    n = len(models)
    distance = np.stack([model_distances(ds, metric, space) for space in spaces])
    merges = np.full((len(spaces), max(n - 1, 0), 4), np.nan)
    mds = np.full((len(spaces), n, 2), np.nan)
    defined = np.array([bool(np.isfinite(d).all()) and n >= 2 for d in distance])
    for s in np.flatnonzero(defined):
        merges[s] = linkage(squareform(distance[s], checks=False), method="average")
        mds[s] = classical_mds(distance[s])
    control = ds["control"].sel(model=models).values.astype(bool) if "control" in ds else np.zeros(n, dtype=bool)
    return xr.Dataset(
        {
            "distance": (("space", "model_a", "model_b"), distance),
            "linkage": (("space", "merge", "link"), merges),
            "mds": (("space", "model", "component"), mds),
            "defined": ("space", defined),
            "control": ("model", control),
        },
        coords={"space": spaces, "model": models, "model_a": models, "model_b": models},
        attrs={**ds.attrs, "metric": metric},
    )
