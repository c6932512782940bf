"""What one job's process may use: how many threads its numerical libraries start, and how it keeps memory.

**Threads.**
A job's ``threads`` setting (the rule's ``threads``) is what Snakemake reserves for it, and Snakemake's shell sets
``OMP_NUM_THREADS`` and the BLAS variables to it. A stage run by hand, or by a script that does not set them,
would otherwise let OpenBLAS and faiss's OpenMP start one thread per core in every job, and two jobs on two cores
then spend CPU on threads that wait for each other. ``limit`` caps them from inside the process: the libraries
already loaded through ``threadpoolctl``, those loaded later (faiss is imported on first use) through the
environment variables they read when they load.

**Memory.** The metrics work through blocks of ~128 MiB (distance rows, gathered neighbourhoods, per-structure
sums), thousands of them per job. glibc's malloc hands every block above its mmap threshold (at most 32 MiB by
default) to the kernel and back, and the kernel zeroes its pages again on first touch: on a 133,064-atom pair job
that was 20 s of its 53 s, system time. ``keep_freed_memory`` raises the threshold so that such blocks come from the
heap and freed ones are reused; a job's peak memory grows by about the one block it keeps (measured in the issue
notes of the fan-in benchmark). Where malloc is not glibc's it does nothing.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def limit_threads(threads: int | None):
    """Cap BLAS and OpenMP at ``threads`` threads in this process while the block runs (no cap for None or 0)."""
    if not threads:
        yield
        return
    from threadpoolctl import threadpool_limits

    saved = {name: os.environ.get(name) for name in VARIABLES}
    os.environ.update({name: str(threads) for name in VARIABLES})
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def limit_openmp(threads: int):
    """Cap OpenMP at ``threads`` in the calling thread (its thread count is per thread: a worker thread starts
    from the process's default, not from what ``limit_threads`` set in the thread that started it)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="openmp"):
        yield


MMAP_THRESHOLD = 512 * 2**20  # blocks below this come from the heap
TRIM_THRESHOLD = 2**30  # free memory at the heap's top kept for reuse up to this much


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to serve blocks below ``MMAP_THRESHOLD`` from the heap and to keep up to
    ``TRIM_THRESHOLD`` of freed memory for reuse (``mallopt``); True where it took."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))


def job_threads(arguments) -> int | None:
    """The largest ``threads`` of the settings among a stage's ``arguments`` (None where none has one)."""
    found = [value.threads for value in arguments if isinstance(getattr(value, "threads", None), int)]
    return max(found) if found else None
