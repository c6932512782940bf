"""k-nearest-neighbour lists by cosine similarity (or by the raw inner product), exact or from an inverted-file
index (faiss).

Exact search costs N^2 d: fine up to a few 10^4 atoms, hours at MP-20's 282,847. Above
``exact_limit`` atoms an IVF index (faiss ``IndexIVFFlat`` on unit vectors, inner product) is
used: ``n_lists ~ 4 sqrt(N)`` k-means cells, ``n_probe`` of them searched per query. Its recall
against the exact lists is measured in ``benchmarks/fan_in.py``.

``similarity="inner_product"`` ranks by the raw rows' inner product ``x_i . x_j`` without normalisation (the
reference study's mutual k-NN, Li & Walsh 2026): the same indices on the raw rows, a row never its own neighbour
(under the inner product a row need not be nearest to itself). An IVF index clusters the raw rows then, which
suits the inner product less well than unit rows.

``similarity="euclidean"`` ranks by the Euclidean distance between the rows as given (TwoNN's own lists with
``similarity.twonn_distance: euclidean``): a faiss L2 index (flat, or IVF on the raw rows), candidates re-ranked by
their float64 distances.
"""

from __future__ import annotations

import numpy as np

EXACT_LIMIT = 50_000
SIMILARITIES = ("cosine", "inner_product")  # similarity.knn_similarity
ORDERS = (*SIMILARITIES, "euclidean")  # what nearest_neighbours ranks by


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x (N, d)`` scaled to unit length, in ``x``'s dtype; zero rows stay zero. The one cosine
    normalisation of the package (projection, metrics and k-NN search use it)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def nearest_neighbours(
    x: np.ndarray,
    k: int,
    method: str = "auto",
    exact_limit: int = EXACT_LIMIT,
    n_probe: int = 32,
    seed: int = 0,
    threads: int | None = None,
    groups: np.ndarray | None = None,
    similarity: str = "cosine",
) -> np.ndarray:
    """The ``k`` nearest neighbours of every row of ``x (N, d)`` by cosine similarity (``similarity``:
    ``cosine``), by the raw inner product (``inner_product``) or by the Euclidean distance between the rows as given
    (``euclidean``), excluding the row itself; ``(N, k)`` int64,
    nearest first. ``method``: ``exact``, ``ivf`` or ``auto`` (exact up to ``exact_limit`` rows). With
    ``groups (N,)`` (e.g. each row's structure), rows of the same group are never neighbours."""
    import faiss

    if similarity not in ORDERS:
        raise ValueError(f"unknown neighbour similarity {similarity!r}; use {', '.join(ORDERS)}")
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and N-1 = {n - 1}, got {k}")
    if method == "auto":
        method = "exact" if n <= exact_limit else "ivf"
    if threads:
        faiss.omp_set_num_threads(threads)
    # float32, C order, as faiss wants: unit rows for cosine, the raw rows for the inner product
    rows = np.asarray(x, dtype=np.float64)
    unit = np.ascontiguousarray(unit_rows(rows) if similarity == "cosine" else rows, dtype=np.float32)
    d = unit.shape[1]
    flat = faiss.IndexFlatL2 if similarity == "euclidean" else faiss.IndexFlatIP
    if method == "exact":
        index = flat(d)
    elif method == "ivf":
        n_lists = int(max(16, min(4 * np.sqrt(n), n // 40)))
        kind = faiss.METRIC_L2 if similarity == "euclidean" else faiss.METRIC_INNER_PRODUCT
        index = faiss.IndexIVFFlat(flat(d), d, n_lists, kind)
        rng = np.random.default_rng(seed)
        training = unit[rng.choice(n, size=min(n, 64 * n_lists), replace=False)]
        index.cp.seed = seed  # deterministic k-means
        index.train(training)
        index.nprobe = min(n_probe, n_lists)
    else:
        raise ValueError(f"unknown neighbour search {method!r}; use exact, ivf or auto")
    index.add(unit)
    # float32 inner products cannot order neighbours closer than ~3e-4 on the unit sphere (cosine
    # near 1 loses its digits), so fetch extra candidates and re-rank them in float64
    # (with groups, enough more that k candidates outside the row's own group always remain)
    largest = 0 if groups is None else int(np.unique(groups, return_counts=True)[1].max())
    if groups is not None and n - largest < k:
        raise ValueError(f"k = {k} neighbours from other groups need more than {n} rows (largest group {largest})")
    candidates = min(n, 2 * k + 1 + largest)
    _, found = index.search(unit, candidates)
    if (found < 0).any():
        raise RuntimeError("the neighbour index returned too few neighbours; raise n_probe")
    return _rerank(np.asarray(x), found, k, groups, similarity)


def _rerank(
    x: np.ndarray, found: np.ndarray, k: int, groups: np.ndarray | None = None, similarity: str = "cosine"
) -> np.ndarray:
    """Exact float64 order by ``similarity`` (cosine, inner product, or the negative Euclidean distance from the
    rows' differences) of each row's candidates (self removed, ties by lower index); the first ``k``. Works block by
    block, so memory stays bounded whatever N."""
    normalise = similarity == "cosine"
    chunk = max(64, 2**24 // (found.shape[1] * x.shape[1]))  # gathered candidates: <= 128 MiB per block
    norms = np.ones(len(x))
    for start in range(0, len(x), 65536) if normalise else ():
        norms[start : start + 65536] = np.linalg.norm(np.asarray(x[start : start + 65536], dtype=np.float64), axis=1)
    norms[norms == 0] = 1.0
    out = np.empty((len(found), k), dtype=np.int64)
    for start in range(0, len(found), chunk):
        rows = np.arange(start, min(start + chunk, len(found)))
        candidates = found[rows]
        gathered = np.asarray(x[candidates], dtype=np.float64)
        own = np.asarray(x[rows], dtype=np.float64)
        if similarity == "euclidean":
            difference = own[:, None, :] - gathered
            score = -np.einsum("icd,icd->ic", difference, difference)
        else:
            score = np.einsum("id,icd->ic", own, gathered)
            score /= norms[rows, None] * norms[candidates]
        score[candidates == rows[:, None]] = -np.inf  # never a row's own neighbour
        if groups is not None:
            score[groups[candidates] == groups[rows][:, None]] = -np.inf
        order = np.lexsort((candidates, -score), axis=1)[:, :k]
        out[rows] = np.take_along_axis(candidates, order, axis=1)
    return out
