"""A job keeps to its ``threads``: BLAS and OpenMP capped inside the process, restored after."""

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from platonic import threads
from platonic.settings import SimilaritySettings
from platonic.stages.fan_in import _threads


def _counts():
    return {info["filepath"]: info["num_threads"] for info in threadpool_info()}


def test_limit_caps_every_loaded_library_and_the_variables_then_restores_them(monkeypatch):
    np.ones((4, 4)) @ np.ones((4, 4))  # numpy's OpenBLAS is loaded
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    before = _counts()
    with threads.limit(1):
        assert set(_counts().values()) == {1}
        assert [os.environ[name] for name in threads.VARIABLES] == ["1", "1", "1"]
    assert _counts() == before
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "OPENBLAS_NUM_THREADS" not in os.environ


def test_no_limit_for_none_or_zero():
    before = _counts()
    for value in (None, 0):
        with threads.limit(value):
            assert _counts() == before


def test_job_threads_is_the_largest_of_the_settings():
    settings = [SimilaritySettings(threads=3), SimilaritySettings(threads=5), "output.zarr", None]
    assert threads.job_threads(settings) == 5
    assert threads.job_threads(["a", 1]) is None


@pytest.mark.parametrize("workers", [1, 2])
def test_fan_in_threads_keep_order_and_share_the_threads(workers):
    seen = []

    def work(item):
        seen.append(max(_counts().values()))
        return item * 2

    assert _threads(work, [1, 2, 3], workers) == [2, 4, 6]
    if workers == 2:  # two workers share two threads: one BLAS thread each
        assert seen == [1, 1, 1]
