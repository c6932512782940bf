"""The Snakemake workflow: config schema, env files, dry-runs of both configs, and a tiny real run."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from platonic.metrics import linear_cka
from platonic.similarity import METRICS
from platonic.store import open_store

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
pytestmark = pytest.mark.skipif(
    SNAKEMAKE is None, reason="snakemake is not installed (pip install 'platonic[workflow]')"
)


def snakemake(*args, cwd=ROOT, check=True):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry-run."""
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_default_config_dry_run_fans_out_one_embed_per_model():
    counts = job_counts(snakemake("--profile", "profiles/default", "-n", "--forceall").stdout)
    models = yaml.safe_load((ROOT / "config/config.yaml").read_text())["models"]
    assert len(models) == 7
    assert counts == {
        "prepare": 1,
        "embed": 7,
        "anchors": 1,
        "project": 7,
        "similarity": 1,
        "figures": len(METRICS),  # one heatmap per metric
        "all": 1,
        "total": 18 + len(METRICS),
    }


def test_paper_config_dry_run_replaces_the_default_models():
    out = snakemake(
        "--profile", "profiles/default", "--configfile", "config/paper.yaml", "-n", "--forceall", "-p"
    ).stdout
    counts = job_counts(out)
    assert counts["embed"] == 7 and counts["project"] == 7 and counts["similarity"] == 1
    assert counts.get("download_dataset", 0) == (0 if (ROOT / "data/mp_20/train.csv").exists() else 1)
    assert "--model mace-mp-0-medium --family mace" in out
    assert "chgnet-0.3.0" not in out  # the default's models are not merged in


def test_slurm_profile_asks_one_gpu_per_embed_job_with_its_family_env():
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="the SLURM executor plugin is not installed")
    # conda is not available here; the env-modules method stands in so the dry-run can plan
    out = snakemake("--profile", "profiles/slurm", "--sdm", "env-modules", "-n", "--forceall").stdout
    embed_jobs = [
        block for block in out.split("\n\n") if block.strip().startswith(("rule embed", "[")) and "rule embed:" in block
    ]
    assert len(embed_jobs) == 7
    for block in embed_jobs:
        assert re.search(r"\bgpu=1\b", block), block


def test_a_model_added_in_config_only_appears_in_the_dag(tmp_path):
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["models"]["chgnet-0.3.0-layer1"] = {"family": "chgnet", "checkpoint": "0.3.0", "layer": 1}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = snakemake("--configfile", str(path), "-n", "--forceall", "-p").stdout
    assert job_counts(out)["embed"] == 8
    assert "--model chgnet-0.3.0-layer1 --family chgnet --checkpoint '0.3.0' --layer 1" in out


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["similarity"].update(k=-3), "-3 is less than the minimum of 1"),
        (lambda c: c.update(anchor={"n": 5}), "Additional properties are not allowed \\('anchor' was unexpected\\)"),
        (lambda c: c["models"]["chgnet-0.3.0"].pop("family"), "'family' is a required property"),
        (lambda c: c["anchors"].update(reference_model="chgnet-9"), "anchors.reference_model 'chgnet-9'"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(tmp_path, change, message):
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    change(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("--configfile", str(path), "-n", check=False)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr)


def test_schema_fills_defaults():
    from snakemake.utils import validate

    config = {
        "dataset": {"name": "x", "path": "x.csv"},
        "models": {"a": {"family": "chgnet", "checkpoint": "0.3.0"}, "b": {"family": "sevenn", "checkpoint": "7net-0"}},
    }
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    assert config["anchors"] == {"reference_model": None, "n": 100, "method": "direct", "seed": 0}
    assert config["similarity"]["k"] == 10 and config["embed"]["device"] == "auto"
    assert config["embed"]["dtype"] == "float32" and config["embed"]["cache_dir"] is None
    assert config["models"]["a"]["options"] == {}


def test_tiny_end_to_end_run_with_two_real_models(tmp_path):
    """Two CHGNet/SevenNet models on five real structures, through Snakemake, then the report."""
    config = {
        "dataset": {"name": "tiny", "path": str(ROOT / "data/mp20_sample/train.csv"), "limit": 5},
        "models": {
            "chgnet-0.3.0": {"family": "chgnet", "checkpoint": "0.3.0"},
            "sevennet-0": {"family": "sevenn", "checkpoint": "7net-0_11Jul2024"},
        },
        "embed": {"device": "cpu", "threads": 1},
        "anchors": {"n": 10, "seed": 3},
        "similarity": {"k": 4},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    common = [
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--profile",
        str(ROOT / "profiles/default"),
        "--cores",
        "2",
    ]
    snakemake(*common, cwd=tmp_path)
    results = tmp_path / "results"
    for name in METRICS:
        assert (results / "figures/tiny" / f"{name}.png").stat().st_size > 10_000
    similarity_store = open_store(results / "similarity/tiny.zarr")
    sim = similarity_store["similarity"]
    raw = {m: open_store(results / f"embeddings/tiny/{m}.zarr") for m in config["models"]}
    a, b = (raw[m]["embedding"].values for m in config["models"])
    assert a.shape[0] == b.shape[0] == similarity_store.attrs["n_atoms"] + similarity_store.attrs["n_excluded_atoms"]
    expected = linear_cka(a.astype(np.float64), b.astype(np.float64))
    got = float(sim.sel(metric="linear_cka", space="raw", model_a="chgnet-0.3.0", model_b="sevennet-0"))
    assert got == pytest.approx(expected, abs=1e-10)
    np.testing.assert_array_equal(raw["chgnet-0.3.0"]["atom"].values, raw["sevennet-0"]["atom"].values)
    # a second invocation has nothing to do
    assert "Nothing to be done" in snakemake(*common, "-n", cwd=tmp_path).stdout
    snakemake(*common, "--report", str(tmp_path / "report.html"), cwd=tmp_path)
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert all(name in html for name in METRICS)


def test_dask_cluster_config_reaches_the_similarity_job(tmp_path):
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["dask"] = {"cluster": "slurm", "jobs": 3, "cores": 16, "memory": "64GB", "account": "proj"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = snakemake("--configfile", str(path), "-n", "--forceall", "-p").stdout
    assert (
        "--cluster slurm --cluster-jobs 3 --cluster-cores 16 --cluster-memory 64GB --cluster-walltime 02:00:00"
        " --cluster-account proj" in out
    )


def test_prefetch_target_loads_every_configured_model_on_the_submit_host():
    out = snakemake("prefetch", "-n", "--forceall").stdout
    assert job_counts(out) == {"prefetch_model": 7, "prefetch": 1, "total": 8}


def test_slurm_profile_never_double_requests_gpus():
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["software-deployment-method"] == "conda"
    for rule, resources in profile["set-resources"].items():
        assert "gres" not in str(resources.get("slurm_extra", "")), rule
        assert "gpu" not in resources, f"{rule}: the rule itself asks for gpu=1"
