"""Where the fan-in's dask tasks run: local threads (default), a local distributed cluster, or
SLURM jobs through dask-jobqueue. The same code path computes the metrics in every case."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("threads", "local", "slurm")


@dataclass(frozen=True)
class ClusterSettings:
    """``kind``: threads | local | slurm. For slurm: ``jobs`` worker jobs of ``cores`` cores and
    ``memory`` each, for ``walltime``, on ``queue`` (partition) under ``account``."""

    kind: str = "threads"
    jobs: int = 1
    cores: int = 8
    memory: str = "32GB"
    walltime: str = "02:00:00"
    queue: str | None = None
    account: str | None = None


def make_cluster(settings: ClusterSettings, threads: int = 1):
    """A dask cluster object for ``settings``, or ``None`` for the plain threads scheduler."""
    if settings.kind not in KINDS:
        raise ValueError(f"unknown dask cluster {settings.kind!r}; choose one of {', '.join(KINDS)}")
    if settings.kind == "threads":
        return None
    if settings.kind == "local":
        from distributed import LocalCluster

        # one worker process with threads: feature arrays are shared, not copied between workers
        return LocalCluster(n_workers=1, threads_per_worker=max(1, threads), processes=False, dashboard_address=None)
    cluster = slurm_cluster(settings)
    cluster.scale(jobs=settings.jobs)  # submits the worker jobs (sbatch)
    return cluster


def slurm_cluster(settings: ClusterSettings):
    """A dask-jobqueue SLURMCluster with no workers yet (``.job_script()`` shows what it will submit)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as err:
        raise RuntimeError("dask.cluster: slurm needs dask-jobqueue (pip install dask-jobqueue)") from err
    return SLURMCluster(
        cores=settings.cores,
        processes=1,
        memory=settings.memory,
        walltime=settings.walltime,
        queue=settings.queue,
        account=settings.account,
        scheduler_options={"dashboard_address": None},
    )
