"""A job keeps to its ``threads`` (BLAS and OpenMP capped in the process, restored after) and reuses freed memory."""

import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from platonic import process
from platonic.settings import SimilaritySettings
from platonic.stages.fan_in import _threads


def _counts():
    return {info["filepath"]: info["num_threads"] for info in threadpool_info()}


def test_limit_caps_every_loaded_library_and_the_variables_then_restores_them(monkeypatch):
    np.ones((4, 4)) @ np.ones((4, 4))  # numpy's OpenBLAS is loaded
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    before = _counts()
    with process.limit_threads(1):
        assert set(_counts().values()) == {1}
        assert [os.environ[name] for name in process.VARIABLES] == ["1", "1", "1"]
    assert _counts() == before
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "OPENBLAS_NUM_THREADS" not in os.environ


def test_no_limit_for_none_or_zero():
    before = _counts()
    for value in (None, 0):
        with process.limit_threads(value):
            assert _counts() == before


def test_job_threads_is_the_largest_of_the_settings():
    settings = [SimilaritySettings(threads=3), SimilaritySettings(threads=5), "output.zarr", None]
    assert process.job_threads(settings) == 5
    assert process.job_threads(["a", 1]) is None


@pytest.mark.parametrize("workers", [1, 2])
def test_fan_in_threads_keep_order_and_share_the_threads(workers):
    import faiss  # noqa: F401  (its OpenMP, whose thread count each worker thread sets for itself)

    seen = []

    def work(item):
        seen.append(max(_counts().values()))
        return item * 2

    assert _threads(work, [1, 2, 3], workers) == [2, 4, 6]
    if workers == 2:  # two workers share two threads: one BLAS thread each
        assert seen == [1, 1, 1]


FAULTS = """
import resource, sys
import numpy as np
from platonic import process
if sys.argv[1] == "keep":
    assert process.keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block = np.ones((2048, 8192))  # 128 MiB, freed at once: what the metrics' blocks do
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's; page faults counted on Linux")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    def faults(mode):
        run = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
        return int(run.stdout)

    default, kept = faults("default"), faults("keep")
    if default < 2000:
        pytest.skip(f"the default allocator faulted only {default} pages for 20 fresh 128 MiB blocks here")
    # default: every block's pages again (32,768 of 4 KiB, 576 where numpy gets huge pages); kept: the first block's
    assert kept < default / 5, (default, kept)
