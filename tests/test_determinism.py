"""Two independent runs of the workflow give identical stores, array for array; seeds are config values, recorded."""

from __future__ import annotations

import pytest
import yaml
from test_workflow import ROOT, SNAKEMAKE, snakemake

from platonic.store import open_store

pytestmark = [
    pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed (pip install 'platonic[workflow]')"),
    pytest.mark.slow,  # full workflow runs: `make test-fast` leaves them out
]

CONFIG = {
    "dataset": {"name": "twice", "path": str(ROOT / "data/mp20_sample/train.csv"), "limit": 6},
    "models": {
        "chgnet-0.3.0": {"family": "chgnet", "checkpoint": "0.3.0"},
        "chgnet-r2scan": {"family": "chgnet", "checkpoint": "r2scan"},
    },
    # shards of 4 structures in batches of 3: the shard and batch boundaries are part of what must repeat
    "embed": {"device": "cpu", "threads": 1, "batch_size": 3, "shard_size": 4},
    "anchors": {"n": 12, "seed": 7, "method": "direct"},
    "similarity": {"k": 5, "subsample": 40, "queries": 30, "seed": 11},
}


def _run(directory):
    directory.mkdir()
    (directory / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    snakemake(
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(directory),
        "--configfile",
        str(directory / "config.yaml"),
        "--profile",
        str(ROOT / "profiles/default"),
        "--cores",
        "2",
        "results/similarity/twice.zarr",
        cwd=directory,
    )
    return directory / "results"


def test_two_runs_give_identical_stores_and_record_their_seeds(tmp_path):
    first, second = _run(tmp_path / "one"), _run(tmp_path / "two")
    stores = ["structures/twice.zarr", "anchors/twice.zarr", "similarity/twice.zarr"]
    stores += [f"{stage}/twice/{model}.zarr" for stage in ("embeddings", "platonic") for model in CONFIG["models"]]
    for store in stores:
        a, b = open_store(first / store).load(), open_store(second / store).load()
        assert set(a.variables) == set(b.variables), store
        for name in a.variables:
            # exact equality, NaN where NaN (the asymmetric metrics leave nothing undefined here, but be strict)
            assert a[name].identical(b[name]), f"{store}:{name} differs between two runs"
        assert {k: v for k, v in a.attrs.items()} == {k: v for k, v in b.attrs.items()}, store
    similarity = open_store(first / "similarity/twice.zarr")
    anchors = open_store(first / "anchors/twice.zarr")
    assert similarity.attrs["seed"] == 11 and similarity.attrs["k"] == 5
    assert anchors.attrs["seed"] == 7 and anchors.attrs["method"] == "direct"
    embedding = open_store(first / "embeddings/twice/chgnet-0.3.0.zarr")
    assert embedding.attrs["batch_size"] == 3 and embedding.attrs["shard_size"] == 4
    # every pair and metric came out finite, so "identical" compared numbers, not NaNs
    assert bool(similarity["similarity"].notnull().all())
