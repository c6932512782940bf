"""The periodic table as the figures and analyses use it: groups, periodic order, per-element mean vectors and the
periodic trends of their cosine similarities.

Everything here takes arrays and returns arrays (``trend_matrices`` a labelled Dataset).
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


def element_pairs(atomic_numbers, structure, valid=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (element, structure) pairs of the valid atoms, sorted by element, then structure.

    ``structure`` (n_atoms,) non-negative integers naming each atom's structure. Returns (elements (n_elements,)
    sorted Z, pair_element (n_pairs,) each pair's index into elements, pair_structure (n_pairs,) its structure,
    atom_pair (n_atoms,) each atom's pair, -1 for the atoms left out).
    """
    z = np.asarray(atomic_numbers, dtype=np.int64)
    structure = np.asarray(structure, dtype=np.int64)
    keep = np.ones(z.shape, bool) if valid is None else np.asarray(valid, bool)
    elements, element = np.unique(z[keep], return_inverse=True)
    n_structures = int(structure[keep].max()) + 1 if keep.any() else 1
    pairs, pair = np.unique(element * n_structures + structure[keep], return_inverse=True)
    atom_pair = np.full(z.shape, -1, dtype=np.int64)
    atom_pair[keep] = pair
    return elements, pairs // n_structures, pairs % n_structures, atom_pair


def pair_sums(features, atom_pair, n_pairs: int, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the feature vectors of each pair's atoms (``atom_pair`` of ``element_pairs``; -1: left out), streamed
    over atom chunks: (sums (n_pairs, n_features) float64, counts (n_pairs,) int64). ``features`` (n_atoms,
    n_features), array-like with slicing (numpy, dask, xarray)."""
    from scipy.sparse import csr_matrix

    sums = np.zeros((n_pairs, features.shape[1]))
    for start in range(0, len(atom_pair), chunk):
        pair = atom_pair[start : start + chunk]
        rows = np.flatnonzero(pair >= 0)
        if rows.size == 0:
            continue
        block = np.asarray(features[start : start + chunk], dtype=np.float64)[rows]
        local, row_pair = np.unique(pair[rows], return_inverse=True)
        gather = csr_matrix((np.ones(rows.size), (row_pair, np.arange(rows.size))), shape=(local.size, rows.size))
        sums[local] += gather @ block
    return sums, np.bincount(atom_pair[atom_pair >= 0], minlength=n_pairs).astype(np.int64)


def element_means(
    features, atomic_numbers, valid=None, chunk: int = 65536
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean feature vector of each element over the valid atoms, streamed over atom chunks.

    ``features`` (n_atoms, n_features), array-like with slicing (numpy, dask, xarray);
    returns (elements (n_elements,) sorted Z, means (n_elements, n_features) float64, counts (n_elements,)).
    """
    one_structure = np.zeros(np.shape(atomic_numbers), dtype=np.int64)
    elements, pair_element, _, atom_pair = element_pairs(atomic_numbers, one_structure, valid)
    sums, counts = pair_sums(features, atom_pair, len(pair_element), chunk)  # one pair per element
    return elements, sums / counts[:, None], counts


def drawn_element_means(
    pair_element, pair_structure, sums, counts, draws, n_elements: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-element means when structure s counts ``draws[b, s]`` times (a bootstrap replicate's counts; a row of
    ones: every structure once), from the pair ``sums`` and ``counts`` of ``pair_sums`` (pairs sorted by element,
    as ``element_pairs`` gives them): (means (B, n_elements, n_features), counts (B, n_elements)); an element
    with no atom drawn has a NaN mean and count 0."""
    weights = np.asarray(draws, dtype=np.float64)[:, pair_structure]
    bounds = np.searchsorted(pair_element, np.arange(n_elements + 1))
    totals = np.empty((len(weights), n_elements, sums.shape[1]))
    drawn = np.empty((len(weights), n_elements))
    for e in range(n_elements):
        pairs = slice(bounds[e], bounds[e + 1])
        totals[:, e] = weights[:, pairs] @ sums[pairs]
        drawn[:, e] = weights[:, pairs] @ counts[pairs]
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals / drawn[..., None], drawn


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity between the rows of ``vectors`` (..., n, d); (..., n, n)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-300)
    return unit @ np.swapaxes(unit, -1, -2)


def trend_correlation(reference: np.ndarray, other: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """Pearson r of the off-diagonal entries of two element x element matrices ``(..., n, n)`` over the elements
    ``present (..., n)`` (default all): (...); NaN where fewer than three elements are present or either matrix
    is constant there."""
    n = reference.shape[-1]
    present = np.ones(reference.shape[:-1], bool) if present is None else np.asarray(present, bool)
    mask = present[..., :, None] & present[..., None, :] & ~np.eye(n, dtype=bool)
    size = mask.sum(axis=(-2, -1), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = []
        for matrix in (reference, other):
            entries = np.where(mask, matrix, 0.0)
            centred.append(np.where(mask, entries - entries.sum(axis=(-2, -1), keepdims=True) / size, 0.0))
        dx, dy = centred
        return (dx * dy).sum(axis=(-2, -1)) / np.sqrt((dx * dx).sum(axis=(-2, -1)) * (dy * dy).sum(axis=(-2, -1)))


def periodic_trend_bootstrap(
    features: dict, atomic_numbers, structure, valid=None, min_atoms: int = 1, n_replicates: int = 0,
    seed: int = 0, chunk: int = 65536,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, dict[str, tuple[float, float]]]:  # fmt: skip
    """Per-element mean vectors of every model and the structure-bootstrap interval of each periodic-trend r.

    ``features`` ``{model: (n_atoms, n_features)}`` over the same atoms, ``structure`` (n_atoms,) labels naming each
    atom's structure (any sortable values); the elements with at least ``min_atoms`` valid atoms are kept. A
    replicate draws the structures of the valid atoms with replacement (``structure_counts(S, n_replicates,
    seed)``), the same draw for every model; each model's element means are recomputed from its per-(element,
    structure) sums and counts (no atom is read again), then their cosine matrices and each later model's r with
    the first model's (``trend_correlation``, off-diagonal) over the elements drawn at least once in that
    replicate: an element absent from a replicate is left out of that replicate's r only. The interval is the
    2.5 and 97.5 percentiles (``np.percentile``) of the replicates where r is defined, NaN with fewer than two.

    Returns (elements (n,), ``{model: means (n, n_features)}``, counts (n,), ``{model after the first: (low,
    high)}``).
    """
    from platonic.compare.bootstrap import INTERVAL, structure_counts

    z = np.asarray(atomic_numbers, dtype=np.int64)
    keep = np.ones(z.shape, bool) if valid is None else np.asarray(valid, bool)
    structures, index = np.unique(np.asarray(structure)[keep], return_inverse=True)
    structure_index = np.zeros(z.shape, dtype=np.int64)
    structure_index[keep] = index
    present, atoms = np.unique(z[keep], return_counts=True)
    shown = keep & np.isin(z, present[atoms >= min_atoms])
    elements, pair_element, pair_structure, atom_pair = element_pairs(z, structure_index, shown)
    every = np.ones((1, len(structures)), np.int64)  # every structure once: the means themselves
    draws = structure_counts(len(structures), n_replicates, seed)
    means, intervals, reference = {}, {}, None
    for model, x in features.items():
        pairs = (pair_element, pair_structure, *pair_sums(x, atom_pair, len(pair_element), chunk))
        point, point_counts = drawn_element_means(*pairs, every, len(elements))
        means[model] = point[0]
        drawn, drawn_counts = drawn_element_means(*pairs, draws, len(elements))
        matrices = cosine_matrix(drawn)
        if reference is None:
            reference, drawn_present = matrices, drawn_counts > 0
            continue
        r = trend_correlation(reference, matrices, drawn_present)
        r = r[np.isfinite(r)]
        intervals[model] = tuple(float(v) for v in np.percentile(r, INTERVAL)) if r.size > 1 else (np.nan, np.nan)
    return elements, means, point_counts[0].astype(np.int64), intervals


def periodic_order(elements) -> np.ndarray:
    """Indices that sort ``elements`` (atomic numbers) by periodic-table group, then atomic number."""
    z = np.asarray(elements, dtype=np.int64)
    return np.lexsort((z, periodic_group(z)))


def trend_matrices(elements, means: dict[str, np.ndarray]) -> xr.Dataset:
    """What the periodic-trends figure draws: each model's element x element ``cosine (model, element_a,
    element_b)`` of its per-element mean vectors (``means[model]`` (n_elements, n_features) in the order of
    ``elements``, atomic numbers), elements in ``periodic_order``, and ``r (model)``, the Pearson r of its
    off-diagonal entries with the first model's (``trend_correlation``: NaN with fewer than three elements)."""
    order = periodic_order(elements)
    ordered = np.asarray(elements, dtype=np.int64)[order]
    models = list(means)
    cosine = np.stack([cosine_matrix(np.asarray(means[m], dtype=np.float64)[order]) for m in models])
    r = np.array([float(trend_correlation(cosine[0], matrix)) for matrix in cosine])
    return xr.Dataset(
        {"cosine": (("model", "element_a", "element_b"), cosine), "r": ("model", r)},
        coords={"model": models, "element_a": ordered, "element_b": ordered},
    )
