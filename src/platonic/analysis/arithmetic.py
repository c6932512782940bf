"""Embedding arithmetic in the shared anchor space: mean per-element vectors (each model's coordinates
centred by its own mean, unit rows) answer analogies a - b + c by cosine."""

from __future__ import annotations

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from platonic.analysis.audit import CHUNK, column_means, normalised_rows


def element_vectors(x: np.ndarray, z: np.ndarray, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Mean normalised (centred, unit-row) vector per element of one model's coordinates ``x (N, K)``;
    returns the atomic numbers present ``(E,)`` and the vectors ``(E, K)``."""
    elements, index = np.unique(z, return_inverse=True)
    mean = column_means(x)
    sums = np.zeros((len(elements), x.shape[1]))
    for start in range(0, len(x), chunk):
        np.add.at(sums, index[start : start + chunk], normalised_rows(x[start : start + chunk], mean))
    return elements, sums / np.bincount(index, minlength=len(elements))[:, None]


def analogy(vectors: np.ndarray, elements: np.ndarray, a: int, b: int, c: int, top: int = 5) -> list[tuple[int, float]]:
    """``a - b + c``: the ``top`` elements nearest by cosine, excluding a, b and c; ``vectors (E, K)``
    are per-element vectors in the order of ``elements (E,)`` (atomic numbers)."""
    position = {int(e): i for i, e in enumerate(elements)}
    missing = [chemical_symbols[e] for e in (a, b, c) if e not in position]
    if missing:
        raise ValueError(f"element(s) {', '.join(missing)} have no atoms in this structure set")
    query = vectors[position[a]] - vectors[position[b]] + vectors[position[c]]
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
    cosine = vectors @ query / np.where(norms > 0, norms, 1.0)
    cosine[[position[a], position[b], position[c]]] = -np.inf
    order = np.argsort(-cosine, kind="stable")[: min(top, len(elements) - 3)]
    return [(int(elements[i]), float(cosine[i])) for i in order]


def analogy_table(spaces: dict[str, np.ndarray], z: np.ndarray, analogies: list[dict], top: int = 5) -> list[dict]:
    """Rows (model, analogy, expected, rank, element, cosine, expected_rank, note) for every model
    and every analogy ``{"a": "Na", "b": "Li", "c": "K", "expected": "Rb"}`` (``expected``
    optional); ``expected_rank`` is the expected element's rank among all candidates (NaN when
    absent). An analogy naming an element without atoms in the set gets one row whose ``note``
    says so; an unknown symbol is an error."""
    for item in analogies:
        unknown = [item.get(key) for key in ("a", "b", "c", "expected") if key in item or key != "expected"]
        bad = [symbol for symbol in unknown if symbol not in atomic_numbers]
        if bad:
            raise ValueError(f"analogy {item}: unknown element symbol(s) {bad}")
    rows = []
    for model, x in spaces.items():
        elements, vectors = element_vectors(x, z)
        present = {chemical_symbols[e] for e in elements}
        for item in analogies:
            label = f"{item['a']} - {item['b']} + {item['c']}"
            expected = item.get("expected") or ""
            row = {"model": model, "analogy": label, "expected": expected}
            missing = [item[key] for key in ("a", "b", "c") if item[key] not in present]
            if missing or len(elements) < 4:
                note = f"no atoms of {', '.join(missing)}" if missing else "fewer than four elements"
                nan = float("nan")
                rows.append({**row, "rank": nan, "element": "", "cosine": nan, "expected_rank": nan, "note": note})
                continue
            a, b, c = (atomic_numbers[item[key]] for key in ("a", "b", "c"))
            ranked = analogy(vectors, elements, a, b, c, top=len(elements))
            names = [chemical_symbols[e] for e, _ in ranked]
            expected_rank = names.index(expected) + 1 if expected in names else float("nan")
            for rank, (element, cosine) in enumerate(ranked[:top], start=1):
                rows.append(
                    {
                        **row,
                        "rank": rank,
                        "element": chemical_symbols[element],
                        "cosine": cosine,
                        "expected_rank": expected_rank,
                        "note": "",
                    }
                )
    return rows
