"""Where the fan-in's dask tasks run: local threads (default), a local distributed cluster, or
SLURM jobs through dask-jobqueue. The same code path computes the metrics in every case."""

from __future__ import annotations

from platonic.settings import DaskSettings

KINDS = ("threads", "local", "slurm")  # the schema's dask.cluster enum


def make_cluster(settings: DaskSettings, threads: int = 1):
    """A dask cluster object for ``settings``, or ``None`` for the plain threads scheduler."""
    if settings.cluster not in KINDS:
        raise ValueError(f"unknown dask cluster {settings.cluster!r}; choose one of {', '.join(KINDS)}")
    if settings.cluster == "threads":
        return None
    if settings.cluster == "local":
        from distributed import LocalCluster

        # one worker process with threads: feature arrays are shared, not copied between workers
        return LocalCluster(n_workers=1, threads_per_worker=max(1, threads), processes=False, dashboard_address=None)
    cluster = slurm_cluster(settings)
    cluster.scale(jobs=settings.jobs)  # submits the worker jobs (sbatch)
    return cluster


def slurm_cluster(settings: DaskSettings):
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
