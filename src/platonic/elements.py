"""The periodic table as the figures and analyses use it: groups, periodic order, per-element mean vectors.

Everything here takes arrays and returns arrays.
"""

from __future__ import annotations

import numpy as np

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


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity between the rows of ``vectors`` (n, d); (n, n)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-300)
    return unit @ unit.T


def periodic_order(elements) -> np.ndarray:
    """Indices that sort ``elements`` (atomic numbers) by periodic-table group, then atomic number."""
    z = np.asarray(elements, dtype=np.int64)
    return np.lexsort((z, periodic_group(z)))
