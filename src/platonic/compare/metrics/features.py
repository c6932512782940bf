"""One space's rows with what several metrics derive from all of them (unit rows, squared norms, centring),
each computed once on first use; the chunk sizes every metric streams with."""

from __future__ import annotations

import numpy as np

from platonic.compare.neighbours import unit_rows

CHUNK = 4096


ROW_CHUNK = 16384


RANK_TOLERANCE = 1e-6  # squared distance between unit vectors (0..4); float32 cosine resolves ~1e-7


class Features:
    """One space's rows ``x (N, d)`` with what several metrics derive from all of them, each computed once, on
    first use: the float64 unit rows (the cosine geometry of neighbour ranks, CKNNA and TwoNN), their squared
    norms, and LFRE's centring (column means and root mean squared centred norm). The metric functions take
    either this or a plain array (``features``); a pair's jobs wrap each space once, so that its metrics and
    their chance levels share these instead of each computing them again."""

    def __init__(self, x, unit=None, square=None, centring=None):
        self.x = x.x if isinstance(x, Features) else x
        self._unit, self._square, self._centring = unit, square, centring

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.x.shape

    @property
    def unit(self) -> np.ndarray:
        if self._unit is None:
            self._unit = unit_rows(np.asarray(self.x, dtype=np.float64))
        return self._unit

    @property
    def square(self) -> np.ndarray:
        if self._square is None:
            self._square = np.einsum("ij,ij->i", self.unit, self.unit)
        return self._square

    @property
    def centring(self) -> tuple[np.ndarray, float]:
        if self._centring is None:
            x = np.asarray(self.x, dtype=np.float64)
            mean = x.mean(axis=0)
            self._centring = mean, float(np.sqrt(np.mean(np.sum((x - mean) ** 2, axis=1))))
        return self._centring

    def take(self, rows: np.ndarray) -> Features:
        """The rows ``rows`` (e.g. a permutation), with what is already derived taken along; the centring stays
        (a permutation does not move it)."""
        x = self.x[rows]
        if self._unit is self.x:  # the unit space: its rows are their own unit rows, taken once
            return Features(x, x, None if self._square is None else self._square[rows], self._centring)
        return Features(
            x,
            None if self._unit is None else self._unit[rows],
            None if self._square is None else self._square[rows],
            self._centring,
        )


def features(x) -> Features:
    """``x`` as ``Features`` (itself when it already is)."""
    return x if isinstance(x, Features) else Features(np.asarray(x))
