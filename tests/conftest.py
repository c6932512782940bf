"""Shared fixtures: small real structures from the bundled MP-20 sample."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "mp20_sample"

warnings.filterwarnings("ignore", category=UserWarning)


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return SAMPLE / "train.csv"


@pytest.fixture(scope="session")
def few_structures(sample_csv):
    """The first six structures of the training split (85 atoms): real crystals, quick to embed."""
    from platonic.structures import read_structures

    return read_structures(sample_csv, limit=6)
