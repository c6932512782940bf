import numpy as np
import pytest

from platonic.compare.dask_cluster import make_cluster, slurm_cluster
from platonic.compare.similarity import pairwise_similarity
from platonic.settings import DaskSettings, SimilaritySettings


def _spaces():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    models = {"a": x, "b": np.tanh(x), "c": rng.normal(size=(300, 3))}
    return {"raw": models, "anchor": {m: v[:, :2] for m, v in models.items()}}


def test_a_distributed_client_gives_the_same_numbers_as_threads():
    pytest.importorskip("distributed", reason="dask.distributed is part of platonic[workflow]")
    from distributed import Client

    settings = SimilaritySettings(k=4, subsample=100, queries=50, threads=2)
    expected = pairwise_similarity(_spaces(), settings=settings)
    cluster = make_cluster(DaskSettings(cluster="local"), threads=2)
    with cluster, Client(cluster) as client:
        got = pairwise_similarity(_spaces(), settings=settings, client=client)
    np.testing.assert_array_equal(got["similarity"].values, expected["similarity"].values)
    np.testing.assert_array_equal(got["intrinsic_dimension"].values, expected["intrinsic_dimension"].values)


def test_slurm_cluster_job_script_carries_the_requested_resources():
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is part of platonic[workflow]")
    settings = DaskSettings(cluster="slurm", cores=6, memory="20GB", walltime="01:30:00", queue="cpu", account="mat")
    with slurm_cluster(settings) as cluster:  # no sbatch: nothing is submitted until the cluster is scaled
        script = cluster.job_script()
    assert "#SBATCH --cpus-per-task=6" in script
    assert "#SBATCH -t 01:30:00" in script
    assert "#SBATCH -p cpu" in script and "#SBATCH -A mat" in script
    assert "--nthreads 6" in script or "--nworkers 1 --nthreads 6" in script


def test_threads_means_no_cluster_and_unknown_kinds_fail():
    assert make_cluster(DaskSettings()) is None
    with pytest.raises(ValueError, match="unknown dask cluster 'pbs'"):
        make_cluster(DaskSettings(cluster="pbs"))
