"""How many threads the numerical libraries of one job may use.

A job's ``threads`` setting (the rule's ``threads``) is what Snakemake reserves for it, and Snakemake's shell sets
``OMP_NUM_THREADS`` and the BLAS variables to it. A stage run by hand, or by a script that does not set them,
would otherwise let OpenBLAS and faiss's OpenMP start one thread per core in every job, and two jobs on two cores
then spend CPU on threads that wait for each other. ``limit`` caps them from inside the process: the libraries
already loaded through ``threadpoolctl``, those loaded later (faiss is imported on first use) through the
environment variables they read when they load.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def limit(threads: int | None):
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


def job_threads(arguments) -> int | None:
    """The largest ``threads`` of the settings among a stage's ``arguments`` (None where none has one)."""
    found = [value.threads for value in arguments if isinstance(getattr(value, "threads", None), int)]
    return max(found) if found else None
