"""The Snakemake workflow: config schema, env files, dry-runs of both configs, and a tiny real run."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from platonic.compare.oracle import linear_cka
from platonic.compare.registry import NAMES as METRICS
from platonic.store import open_store

ROOT = Path(__file__).resolve().parents[1]
OVERVIEW = ["agreement", "shared_space", "periodic_trends", "model_statistics", "model_tree"]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
pytestmark = [
    pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake is not installed (pip install 'platonic[workflow]')"),
    pytest.mark.slow,  # full workflow runs: `make test-fast` leaves them out
]


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


def test_the_reference_model_embeds_first():
    """The anchors wait for the reference model's embedding alone: its embed job has priority 1, every other 0, so
    the projections, summaries and pairs of finished models run beside the remaining embeds."""
    out = snakemake("--profile", "profiles/default", "-n", "--forceall").stdout
    jobs = [block for block in out.split("\n\n") if re.search(r"^(local)?rule embed:", block, re.M)]
    prioritised = [re.search(r"model=(\S+)", block).group(1) for block in jobs if "priority: 1" in block]
    assert len(jobs) == 12 and prioritised == ["chgnet-0.3.0"]


def test_screen_dry_run_embeds_projects_and_maps_the_screened_structures():
    """`snakemake screen` with screen.structures: per model one embed and one projection of the new structures, the
    study's map with them marked (the screen's page links it), and nothing of the study re-planned but what it lacks."""
    run = snakemake("--profile", "profiles/default", "-n", "--forceall", "screen", "-p",
                    "--config", "screen={structures: data/mp20_sample/val.csv, name: val}")  # fmt: skip
    counts = job_counts(run.stdout)
    for rule, n in (("screen_prepare", 1), ("screen_embed", 12), ("screen_project", 12), ("screen_map", 1),
                    ("screen", 1)):  # fmt: skip
        assert counts[rule] == n, (rule, counts)
    assert "--screened-projections results/screen/val/platonic/" in run.stdout
    assert "results/screen/val/map.html" in run.stdout


def test_phonons_dry_run_adds_supercells_one_force_job_per_potential_and_the_comparison():
    """config/phonons.yaml over the default study: the study's jobs as before, then one supercell job, one embed of
    the supercells per trained potential (predictions on, without the layers the study stores) and the comparison,
    which reads the study's audit and symmetry table; the default study plans none of them."""
    run = snakemake("--profile", "profiles/default", "-n", "--forceall", "-p", "--configfile", "config/config.yaml",
                    "config/phonons.yaml")  # fmt: skip
    counts = job_counts(run.stdout)
    potentials = ["chgnet-0.3.0", "chgnet-0.2.0", "chgnet-r2scan", "sevennet-0-11jul2024", "sevennet-0-22may2024",
                  "sevennet-l3i5", "sevennet-mf-0", "diep", "hienet-v3"]  # fmt: skip
    assert (counts["phonon_supercells"], counts["phonons_embed"], counts["phonons"]) == (1, len(potentials), 1)
    assert counts["embed"] == 12 and counts["compare_pair"] == 66
    embeds = [line for line in run.stdout.splitlines() if "-m platonic embed results/phonons/" in line]
    assert sorted(re.search(r"--model (\S+)", line).group(1) for line in embeds) == sorted(potentials)
    assert all('"predictions": true' in line and '"layers"' not in line for line in embeds)
    assert ".venv-hienet/bin/python -m platonic embed results/phonons/" in run.stdout
    line = next(line for line in run.stdout.splitlines() if "python -m platonic phonons " in line)
    assert "--audit results/analysis/mp20_sample_train/audit.zarr" in line
    assert json.loads(re.search(r"--settings '([^']*)'", line).group(1))["structures"][:2] == ["mp-76", "mp-1958"]
    default = job_counts(snakemake("--profile", "profiles/default", "-n", "--forceall").stdout)
    assert not {"phonon_supercells", "phonons_embed", "phonons"} & set(default)


def test_default_config_dry_run_fans_out_one_embed_per_model():
    counts = job_counts(snakemake("--profile", "profiles/default", "-n", "--forceall").stdout)
    default = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    models, metrics = default["models"], default["similarity"]["metrics"]
    assert set(metrics) == set(METRICS) - {"optimal_transport", "rsa"}  # the two opt-in metrics (config comment)
    assert len(models) == 12  # nine MLIPs of four architectures and three controls
    assert sum(spec.get("control", False) for spec in models.values()) == 3
    # every interaction layer of one CHGNet, one SevenNet and DIEP (issue: layer-wise comparison)
    assert [m for m, spec in models.items() if spec.get("layers") == "all"] == [
        "chgnet-0.3.0", "sevennet-0-11jul2024", "diep"
    ]  # fmt: skip
    assert counts == {
        "prepare": 1,
        "venv": 1,  # HIENet's own virtualenv (forced by --forceall; kept when current otherwise)
        "embed": 12,
        "anchors": 1,
        "project": 12,
        "summarise": 12,  # the fan-in: one job per model,
        "compare_pair": 12 * 11 // 2,  # one per pair of models,
        "gather": 1,  # and one to gather them
        "heatmaps": len(metrics),  # one heatmap per metric
        **{f"overview_{name}": 1 for name in OVERVIEW},
        "provenance": 1,
        "run_parameters": 1,
        "transfer": 1,
        "audit": 1,
        "arithmetic": 1,
        "symmetry": 1,
        "atom_modes": 1,
        "headline": 1,
        "lineage": 1,
        "ladder": 1,
        "anchor_sensitivity": 1,
        "prediction_failure": 1,
        "layers": 1,  # the models with `layers: all`, layer by layer
        "anchor_set": 1,  # the anchor set as a file others can enter the shared space through
        "map": 1,  # the interactive map
        "all": 1,
        "total": 31 + 12 + 66 + 1 + len(metrics) + len(OVERVIEW) + 2 + 10,
    }


def paper_dry_run(name: str) -> str:
    """Dry-run of config/<name>.yaml with the SLURM profile (conda left out: env-modules stands in for it here)."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="the SLURM executor plugin is not installed")
    return snakemake(
        "--profile",
        "profiles/slurm",
        "--sdm",
        "env-modules",
        "--configfile",
        f"config/{name}.yaml",
        "-n",
        "--forceall",
        "-p",
    ).stdout


def settings_of(out: str, command: str) -> dict:
    """The --settings JSON of the first `platonic <command>` in a dry-run's printed shell commands."""
    line = next(line for line in out.splitlines() if f"python -m platonic {command} " in line)
    return json.loads(re.search(r"--settings '([^']*)'", line).group(1))


AUTHORS_LARGE = (
    "https://github.com/ACEsuit/mace-foundations/releases/download/mace_mp_0/2024-01-07-mace-128-L2_epoch-199.model"
)


def test_paper_config_replays_the_authors_protocol_on_the_slurm_profile():
    out = paper_dry_run("paper")
    counts = job_counts(out)
    assert counts["embed"] == counts["project"] == 7 and counts["gather"] == 1
    assert counts.get("download", 0) == (0 if (ROOT / "data/mp_20/train.csv").exists() else 1)
    assert "chgnet-0.3.0" not in out  # the default's models are not merged in
    assert '"checkpoint": "' + AUTHORS_LARGE + '"' in out
    assert '"family": "sevenn", "layer": null, "options": {"cutoff": 5.0}' in out
    anchors = settings_of(out, "anchors")
    assert anchors["method"] == "indices" and anchors["n"] == 100 and anchors["atoms"] == "all"
    assert anchors["reference_model"] == "mace-mp-0-small" and anchors["threshold_init"] == 0.3
    assert anchors["indices_order"] == "data/mp_20/train.csv"  # the flattened order of the dataset itself
    indices = (ROOT / anchors["indices"]).read_text().split()
    assert len(indices) == 100
    assert settings_of(out, "prepare")["max_volume_per_atom"] is None
    similarity = yaml.safe_load((ROOT / "config/paper.yaml").read_text())["similarity"]
    assert {k: similarity[k] for k in ("k", "knn_similarity", "knn_subsample", "knn_subsample_seed", "atoms")} == {
        "k": 10,
        "knn_similarity": "inner_product",
        "knn_subsample": 1000,
        "knn_subsample_seed": 42,
        "atoms": "all",
    }
    assert similarity["ot_cost"] == "euclidean" and similarity["twonn_distance"] == "euclidean"


def test_paper_careful_config_runs_the_same_models_with_platonic_defaults():
    out = paper_dry_run("paper-careful")
    counts = job_counts(out)
    assert counts["embed"] == counts["project"] == 7 and counts["gather"] == 1
    assert '"checkpoint": "' + AUTHORS_LARGE + '"' in out
    assert '"family": "sevenn", "layer": null, "options": {}' in out
    anchors = settings_of(out, "anchors")
    assert anchors["method"] == "direct" and anchors["reference_model"] == "mace-mp-0-small"
    assert anchors["threshold_init"] == 0.5 and anchors["atoms"] == "unique"
    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    careful = yaml.safe_load((ROOT / "config/paper-careful.yaml").read_text())
    assert list(paper["models"]) == list(careful["models"])  # the same seven models, in the same order
    assert set(careful["similarity"]) == {"k", "threads"}  # everything else at the schema's defaults


def test_slurm_profile_asks_one_gpu_per_embed_job_with_its_family_env():
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="the SLURM executor plugin is not installed")
    # conda is not available here; the env-modules method stands in so the dry-run can plan
    out = snakemake("--profile", "profiles/slurm", "--sdm", "env-modules", "-n", "--forceall").stdout
    embed_jobs = [
        block for block in out.split("\n\n") if block.strip().startswith(("rule embed", "[")) and "rule embed:" in block
    ]
    assert len(embed_jobs) == 12
    for block in embed_jobs:
        assert re.search(r"\bgpu=1\b", block), block


def test_a_model_added_in_config_only_appears_in_the_dag(tmp_path):
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["models"]["chgnet-0.3.0-layer1"] = {"family": "chgnet", "checkpoint": "0.3.0", "layer": 1}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = snakemake("--configfile", str(path), "-n", "--forceall", "-p").stdout
    assert job_counts(out)["embed"] == 13
    spec = '{"checkpoint": "0.3.0", "control": false, "family": "chgnet", "layer": 1, "options": {}}'
    assert f"--model chgnet-0.3.0-layer1 --spec '{spec}'" in out


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
    assert config["anchors"] == {
        "reference_model": None,
        "n": 100,
        "method": "direct",
        "threshold_init": 0.5,
        "indices": None,
        "indices_order": None,
        "seed": 0,
        "atoms": None,
        "candidates": "reference",
    }
    assert config["similarity"]["k"] == 10 and config["embed"]["device"] == "auto"
    assert config["embed"]["dtype"] == "float32" and config["embed"]["cache_dir"] is None
    assert config["models"]["a"]["options"] == {}


def tiny_config() -> dict:
    """Two CHGNet/SevenNet models and the element control on five real structures."""
    return {
        "dataset": {"name": "tiny", "path": str(ROOT / "data/mp20_sample/train.csv"), "limit": 5},
        "models": {
            "chgnet-0.3.0": {"family": "chgnet", "checkpoint": "0.3.0"},
            "sevennet-0": {"family": "sevenn", "checkpoint": "7net-0_11Jul2024"},
            "element": {"family": "element", "checkpoint": "none", "control": True},
        },
        "embed": {"device": "cpu", "threads": 1},
        "anchors": {"n": 10, "seed": 3},
        # fewer replicates and anchor sets than the defaults: the tiny run checks the wiring, not the numbers
        "similarity": {"k": 4, "bootstrap": 30, "permutations": 2},
        "analysis": {"anchor_sensitivity": {"n_anchors": [5], "random_seeds": 2}},
    }


def planned_inputs(output: str, rule: str) -> list[str]:
    """The input files of the one job of ``rule`` in a dry-run's ``-n`` listing."""
    (block,) = [b for b in output.split("\n\n") if re.search(rf"^(localrule|rule) {rule}:$", b.strip(), re.M)]
    return re.search(r"^\s*input: (.*)$", block, re.M).group(1).split(", ")


@pytest.mark.parametrize("candidates", ["reference", "common"])
def test_the_anchors_read_the_reference_model_alone_unless_candidates_common(tmp_path, candidates):
    config = tiny_config()
    config["anchors"].update(reference_model="sevennet-0", candidates=candidates)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = snakemake("--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                    str(tmp_path / "config.yaml"), "-n", "--forceall", cwd=tmp_path).stdout  # fmt: skip
    stores = [f"results/embeddings/tiny/{m}.zarr" for m in config["models"]]
    expected = ["results/embeddings/tiny/sevennet-0.zarr"] if candidates == "reference" else stores
    assert set(planned_inputs(out, "anchors")) == {"results/structures/tiny.zarr", *expected}


def test_given_anchors_make_their_files_inputs_of_the_anchors(tmp_path):
    """With anchors.method indices the anchors job reads the index file and the order CSV (null: dataset.path):
    both are its inputs, so editing either re-runs it."""
    config = tiny_config()
    index_file = ROOT / "data/reference/li-walsh-2026/mp20_train_anchor_indices_100.txt"
    config["anchors"].update(method="indices", indices=str(index_file), n=100, atoms="all")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = snakemake("--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                    str(tmp_path / "config.yaml"), "-n", "--forceall", cwd=tmp_path).stdout  # fmt: skip
    assert set(planned_inputs(out, "anchors")) == {
        "results/structures/tiny.zarr",
        "results/embeddings/tiny/chgnet-0.3.0.zarr",
        config["dataset"]["path"],
        str(index_file),
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny study (``tiny_config``) through Snakemake, then the report."""
    tmp_path = tmp_path_factory.mktemp("tiny")
    config = tiny_config()
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
    # a second invocation has nothing to do
    nothing_to_do = "Nothing to be done" in snakemake(*common, "-n", cwd=tmp_path).stdout
    snakemake(*common, "--report", str(tmp_path / "report.html"), cwd=tmp_path)
    return tmp_path, config, nothing_to_do


def test_tiny_end_to_end_run_with_two_real_models_and_a_control(tiny_run):
    tmp_path, config, nothing_to_do = tiny_run
    results = tmp_path / "results"
    for name in METRICS:
        assert (results / "figures/tiny" / f"{name}.png").stat().st_size > 10_000
    similarity_store = open_store(results / "similarity/tiny.zarr")
    sim = similarity_store["similarity"]
    raw = {m: open_store(results / f"embeddings/tiny/{m}.zarr") for m in config["models"]}
    a, b = (raw[m]["embedding"].values for m in ("chgnet-0.3.0", "sevennet-0"))
    # unique environments by default: one atom per symmetry orbit of the structure store, every model alike
    orbit = open_store(results / "structures/tiny.zarr")["orbit"].values
    compared = open_store(results / "anchors/tiny.zarr")["compared"].values
    np.testing.assert_array_equal(compared, orbit == np.arange(len(orbit)))  # nothing excluded here
    assert similarity_store.attrs["n_atoms"] == compared.sum() < len(a)
    assert similarity_store.attrs["n_symmetry_copies_left_out"] == len(a) - compared.sum()
    assert similarity_store.attrs["atoms"] == "unique" and similarity_store.attrs["weights"] == "uniform"
    expected = linear_cka(a[compared].astype(np.float64), b[compared].astype(np.float64))
    got = float(sim.sel(metric="linear_cka", space="raw", model_a="chgnet-0.3.0", model_b="sevennet-0"))
    assert got == pytest.approx(expected, abs=1e-10)
    np.testing.assert_array_equal(raw["chgnet-0.3.0"]["atom"].values, raw["sevennet-0"]["atom"].values)
    assert nothing_to_do  # a second invocation has nothing to do
    for name in METRICS:
        assert (results / "figures/tiny" / f"{name}.svg").stat().st_size > 10_000
    for name in OVERVIEW:
        for suffix in (".png", ".svg"):
            assert (results / "figures/tiny/overview" / f"{name}{suffix}").stat().st_size > 10_000, name
    # training data vs architecture: the one pair of trained models is grouped or left out, never lost
    with open(results / "analysis/tiny/training_vs_architecture.csv") as handle:
        lineage = list(csv.DictReader(handle))
    grouped = [r for r in lineage if r["kind"] == "group" and r["metric"] == "linear_cka" and r["space"] == "raw"]
    left_out = {r["group"]: int(r["n_pairs"]) for r in lineage if r["kind"] == "left out"}
    assert sum(int(r["n_pairs"]) for r in grouped) + left_out["untrained"] + left_out["unknown"] == 1
    assert left_out["control"] == 2
    for suffix in (".png", ".svg"):
        assert (results / "figures/tiny/overview" / f"training_vs_architecture{suffix}").stat().st_size > 10_000
    page = (results / "provenance/tiny.html").read_text()
    store = open_store(results / "embeddings/tiny/sevennet-0.zarr")
    assert store.attrs["model_checkpoint_sha256"] in page and "7net-0_11Jul2024" in page
    assert "Excluded structures and why" in page and "similarity.k" in page


def test_tiny_phonons_with_two_real_potentials(tiny_run):
    """The phonon rules after the tiny study: its two potentials (not the element control) compute forces on
    phonopy's supercells of two real structures in their own embed jobs, and each gets finite phonons; the study's
    own jobs are not run again."""
    tmp_path = tiny_run[0]
    # laid over the study's config as config/phonons.yaml is over the default study's (--config would pass 5.0 as text)
    overlay = tmp_path / "phonons.yaml"
    overlay.write_text(yaml.safe_dump({"phonons": {"structures": ["mp-3507", "mp-28781"], "supercell_length": 5.0}}))
    run = snakemake("--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                    str(tmp_path / "config.yaml"), str(overlay), "--profile", str(ROOT / "profiles/default"),
                    "--cores", "2", "phonons", cwd=tmp_path)  # fmt: skip
    log = run.stdout + run.stderr
    assert "rule phonons_embed:" in log and "rule embed:" not in log and "rule audit:" not in log
    results = tmp_path / "results"
    cells = open_store(results / "phonons/tiny/supercells.zarr")
    # LuPd2Si2 (I4/mmm): 2x2x2, 4 displacements; PrZr3F15: 19 atoms, one cell across 5 Angstrom, 24 displacements
    assert cells.sizes["structure"] == 5 + 25
    with open(results / "analysis/tiny/phonons.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["material_id"], r["model"]) for r in rows} == {
        (s, m) for s in ("mp-3507", "mp-28781") for m in ("chgnet-0.3.0", "sevennet-0")
    }
    for row in rows:
        assert 0.0 <= float(row["imaginary_fraction"]) <= 1.0 and float(row["max_frequency"]) > 1.0, row
        assert float(row["frequency_spread"]) > 0 and int(row["n_models_compared"]) == 2 and row["excluded"] == ""
    assert (results / "analysis/tiny/phonons.png").stat().st_size > 10_000


# the first words of each caption file (workflow/report/*.rst)
CAPTIONS = {
    "agreement.png": "What the anchors add, and what normalising does",
    "shared_space.png": "The shared (",
    "periodic_trends.png": "Periodic trends on",
    "model_statistics.png": "Per-model intrinsic dimension and embedding norms on",
    "model_tree.png": "Which models think alike, from",
    "training_vs_architecture.png": "Training data vs architecture on",
    "protocol_ladder.png": "From the reference protocol to platonic's on",
    "anchor_sensitivity.png": "agreement depends on its anchors",
    "prediction_failure.png": "Does disagreement in the shared space flag prediction failures?",
    "tiny.html": "Provenance of this run",
    "map.html": "The shared space of",
    "tiny.csv": "Every metric for every ordered pair",
}


def config_of(tiny_run) -> dict:
    """The tiny run's configuration as the workflow saw it (defaults filled, derived values resolved)."""
    from platonic.config import validate_config

    return validate_config(yaml.safe_load((tiny_run[0] / "config.yaml").read_text()))


def test_report_has_every_figure_and_caption(tiny_run):
    html = (tiny_run[0] / "report.html").read_text(errors="replace")
    for name in [f"{m}.png" for m in METRICS] + list(CAPTIONS):
        assert f'"{name}"' in html or f"filename={name}" in html, name
    assert html.count("Model x model") == len(METRICS)
    for caption in CAPTIONS.values():
        assert caption in html, caption
    # the workflow description names the models once; the captions point to it and to the provenance table
    assert html.count("(sevenn, checkpoint 7net-0_11Jul2024)") == 1
    assert html.count("Models, their order and colours: the workflow description") >= len(METRICS) + 8
    # each heatmap caption describes its metric from the registry, with the run's sample sizes
    from platonic.compare.registry import caption
    from platonic.settings import SimilaritySettings

    settings = SimilaritySettings.from_mapping(config_of(tiny_run)["similarity"])
    for name in METRICS:
        assert caption(name, settings).split(" (")[0] in html, name
    # the first page states the headline of results/headline.csv, with its intervals
    with open(tiny_run[0] / "results/headline.csv") as handle:
        rows = {(r["metric"], r["space"], r["group"]): r for r in csv.DictReader(handle)}
    assert {group for _, _, group in rows} == {"across families", "model vs control"}
    across = rows["linear_cka", "raw", "across families"]
    numbers = f"{float(across['mean']):.2f} [{float(across['ci_low']):.2f}, {float(across['ci_high']):.2f}]"
    step = rows["linear_cka", "anchor - unit", "across families"]
    change = f"{float(step['mean']):+.2f} [{float(step['ci_low']):+.2f}, {float(step['ci_high']):+.2f}]"
    assert "Headline" in html and numbers in html and change in html
    # the control is marked in the store and the table, and left out of the audit's consensus
    with open(tiny_run[0] / "results/similarity/tiny.csv") as handle:
        marked = {(r["model_a"], r["control_a"]) for r in csv.DictReader(handle)}
    assert marked == {("chgnet-0.3.0", "False"), ("sevennet-0", "False"), ("element", "True")}
    audit = open_store(tiny_run[0] / "results/analysis/tiny/audit.zarr")
    assert list(audit.attrs["controls_left_out"]) == ["element"] and "element" not in audit.model.values
    store = open_store(tiny_run[0] / "results/similarity/tiny.zarr")
    assert dict(zip(store.model.values, store.control.values, strict=True)) == {
        "chgnet-0.3.0": False,
        "sevennet-0": False,
        "element": True,
    }


# Visits every result's caption page, then shows the agreement figure; one headless run dumps the text seen
BROWSE = """<script>
window.addEventListener("load", function () {
  const paths = Object.keys(results);
  const seen = document.createElement("pre");
  seen.id = "platonic-seen";
  seen.style.display = "none";
  document.body.appendChild(seen);
  let i = 0;
  function step() {
    if (i > 0) seen.textContent += "\\n@@ " + paths[i - 1] + "\\n" + document.getElementById("app").innerText;
    if (i < paths.length) {
      app.showResultInfo(paths[i]);
      i += 1;
      setTimeout(step, 200);
      return;
    }
    const figure = paths.find(function (p) { return p.endsWith("agreement.png"); });
    app.showCategory("Overview");
    app.setView({content: "img", contentPath: results[figure].data_uri, resultPath: figure});
    seen.dataset.done = "yes";
  }
  setTimeout(step, 300);
});
</script>"""
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=20000"]
    return subprocess.run([CHROMIUM, *flags, *args, url], capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed; `apt-get install chromium` (Debian) to run this check"
)
def test_report_renders_in_a_headless_browser(tiny_run, tmp_path):
    import matplotlib.image

    html = (tiny_run[0] / "report.html").read_text(errors="replace")
    page = tmp_path / "browse.html"
    end = html.rindex("</body>")
    page.write_text(html[:end] + BROWSE + html[end:])
    dom = chromium(page.as_uri(), "--dump-dom").stdout
    assert 'data-done="yes"' in dom
    # the text the browser rendered for each result: its caption, not only the embedded data
    seen = re.search(r'<pre id="platonic-seen"[^>]*>(.*?)</pre>', dom, re.S).group(1)
    for caption in CAPTIONS.values():
        assert caption in seen, caption
    shot = tmp_path / "report.png"
    chromium(page.as_uri(), "--window-size=1600,1100", f"--screenshot={shot}")
    image = matplotlib.image.imread(shot)
    assert image.shape[:2] == (1100, 1600)
    figure_area = image[100:1000, 400:1500, :3]  # right of the navigation bar: the figure
    assert figure_area.std() > 0.05 and (figure_area.mean(axis=2) < 0.5).mean() > 0.002


def test_slurm_profile_groups_the_fan_in_jobs_into_a_few_cluster_jobs():
    """12 summaries and 66 pairs become 2 + 2 SLURM jobs (group-components 8 and 64), each listing its jobs."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="the SLURM executor plugin is not installed")
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    components = dict(item.split("=") for item in profile["group-components"])
    assert components == {"fan_in_models": "8", "fan_in_pairs": "64"}
    out = snakemake("--profile", "profiles/slurm", "--sdm", "env-modules", "-n", "--forceall").stdout
    groups = re.split(r"^\[[^\]]+\] Group job ", out, flags=re.M)[1:]
    sizes = {}
    for group in groups:
        name = group.split()[0]
        rules = re.findall(r"^\s+rule (\w+):", group, re.M)  # a group's own jobs are indented
        sizes.setdefault(name, []).append(len([r for r in rules if r in ("summarise", "compare_pair")]))
    assert sorted(sizes) == ["fan_in_models", "fan_in_pairs"]
    assert sorted(sizes["fan_in_models"]) == [4, 8] and sorted(sizes["fan_in_pairs"]) == [2, 64]


def test_adding_a_model_to_a_finished_study_runs_only_its_own_jobs(tiny_run, tmp_path):
    """A config-only model added to the finished tiny study: its embed, projection and summary, its three pairs,
    then the gather and what reads the similarity store; no anchors, no other projection, summary or pair."""
    root, config, _ = tiny_run
    grown = {**config, "models": {**config["models"], "chgnet-0.2.0": {"family": "chgnet", "checkpoint": "0.2.0"}}}
    path = tmp_path / "grown.yaml"
    path.write_text(yaml.safe_dump(grown, sort_keys=False))  # appended: the reference model stays the first one
    out = snakemake("--snakefile", str(ROOT / "Snakefile"), "--directory", str(root), "--configfile", str(path),
                    "--profile", str(ROOT / "profiles/default"), "-n", cwd=root).stdout  # fmt: skip
    counts = job_counts(out)
    assert counts["embed"] == counts["project"] == counts["summarise"] == 1
    assert counts["compare_pair"] == 3 and counts["gather"] == 1
    assert "anchors" not in counts and "prepare" not in counts
    pairs = sorted(re.findall(r"output: results/fan_in/tiny/pairs/(\S+)\.zarr", out))
    assert pairs == ["chgnet-0.2.0__chgnet-0.3.0", "chgnet-0.2.0__element", "chgnet-0.2.0__sevennet-0"]
    summaries = re.findall(r"output: results/fan_in/tiny/models/(\S+)\.zarr", out)
    assert summaries == ["chgnet-0.2.0"]


def test_prefetch_target_loads_every_configured_model_on_the_submit_host():
    out = snakemake("prefetch_all", "-n", "--forceall").stdout
    # HIENet's prefetch runs in its own virtualenv, as its embed job does
    assert job_counts(out) == {"prefetch": 12, "venv": 1, "prefetch_all": 1, "total": 14}


def test_slurm_profile_never_double_requests_gpus():
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["software-deployment-method"] == "conda"
    for rule, resources in profile["set-resources"].items():
        assert "gres" not in str(resources.get("slurm_extra", "")), rule
        assert "gpu" not in resources, f"{rule}: the rule itself asks for gpu=1"


def test_every_store_of_the_tiny_run_opens_silently(tiny_run):
    """Consolidated metadata: ``xr.open_zarr`` reads each store from its top ``zarr.json``, with no note on a
    missing consolidation and none on the ``.snakemake_timestamp`` marker Snakemake left in the folder."""
    import warnings

    import xarray as xr

    stores = sorted((tiny_run[0] / "results").rglob("*.zarr"))
    kinds = {store.relative_to(tiny_run[0] / "results").parts[0] for store in stores}
    assert {"structures", "embeddings", "anchors", "platonic", "fan_in", "similarity", "analysis"} <= kinds
    for store in stores:
        assert (store / ".snakemake_timestamp").exists(), store  # Snakemake marked every store: directory() outputs
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            xr.open_zarr(store)


def test_tiny_run_writes_the_shared_space_analyses(tiny_run):
    tmp_path, config, _ = tiny_run
    analysis = tmp_path / "results/analysis/tiny"
    transfer = open_store(analysis / "transfer.zarr")
    assert set(transfer["target"].values) == {
        "formation_energy_per_atom",
        "band_gap",
        "e_above_hull",
        "element",
        "group",
    }
    # raw spaces of different widths (CHGNet 64, SevenNet 128) cannot transfer; the anchor space can
    score = transfer["score"].sel(head="ridge", target="element", metric="accuracy")
    assert np.isnan(float(score.sel(space="raw", source_model="chgnet-0.3.0", target_model="sevennet-0")))
    assert np.isfinite(float(score.sel(space="anchor", source_model="chgnet-0.3.0", target_model="sevennet-0")))
    audit = open_store(analysis / "audit.zarr")
    assert sorted(audit["model"].values) == ["chgnet-0.3.0", "sevennet-0"]  # the element control is left out
    for name in ("contested_elements", "contested_structures", "element_bias", "analogies", "symmetry_breaking"):
        assert (analysis / f"{name}.csv").read_text().count("\n") >= 1
    # CHGNet is invariant under every symmetry operation: its copies of one environment agree to round-off.
    # SevenNet's scalars are invariant under rotations but not under inversion, so copies related by a mirror or
    # inversion can differ; whatever it flags is listed orbit by orbit, above the threshold
    import csv

    rows = {r["model"]: r for r in csv.DictReader(open(analysis / "symmetry_breaking.csv"))}
    assert sorted(rows) == sorted(config["models"])
    chgnet = rows["chgnet-0.3.0"]
    assert int(chgnet["flagged_orbits"]) == 0 and float(chgnet["max_relative_spread"]) < 1e-3, chgnet
    flagged = list(csv.DictReader(open(analysis / "symmetry_flagged.csv")))
    for model, row in rows.items():
        listed = [r for r in flagged if r["model"] == model]
        assert len(listed) == int(row["flagged_orbits"]), model
        assert all(float(r["relative_spread"]) > float(row["threshold"]) for r in listed)
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "Zero-shot stitching" in html and "Most contested elements" in html


def test_analysis_config_defaults_and_a_training_count_file_for_an_unknown_model(tmp_path):
    from snakemake.utils import validate

    config = {
        "dataset": {"name": "x", "path": "x.csv"},
        "models": {"a": {"family": "chgnet", "checkpoint": "0.3.0"}, "b": {"family": "sevenn", "checkpoint": "7net-0"}},
    }
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    analysis = config["analysis"]
    assert analysis["transfer"]["heads"] == ["ridge"] and analysis["transfer"]["ridge_alphas"] == [0.1]
    assert analysis["transfer"]["targets"] is None and analysis["audit"]["departure_threshold"] == 3.0
    assert analysis["audit"]["training_element_counts"] == {}
    assert analysis["arithmetic"]["analogies"][0] == {"a": "Na", "b": "Li", "c": "K", "expected": "Rb"}
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["analysis"]["audit"]["training_element_counts"] = {"chgnet-9": "counts.csv"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake("--configfile", str(path), "-n", check=False)
    assert result.returncode != 0
    assert "analysis.audit.training_element_counts names 'chgnet-9'" in result.stdout + result.stderr


def test_figure_settings_reach_the_overview_rules(tmp_path):
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["figures"] = {"map_sample": 123, "trend_min_atoms": 7, "tree_metric": "mutual_knn"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = snakemake("--configfile", str(path), "-n", "--forceall", "-p").stdout
    # the section whole, with the seed and the bootstrap count resolved from similarity.seed and .bootstrap
    bootstrap = config["similarity"]["bootstrap"]
    settings = (
        f'{{"bootstrap": {bootstrap}, "map_sample": 123, "seed": 0, "tree_metric": "mutual_knn", "trend_min_atoms": 7}}'
    )
    assert out.count(f"--settings '{settings}'") == 3  # overview_shared_space, _periodic_trends, _model_tree


def test_model_metadata_reaches_the_model_tree_and_the_lineage_rules():
    out = snakemake("-n", "--forceall", "-p").stdout
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    passed = re.findall(r"--metadata '(\{.*?\})'", out)
    assert len(passed) == 2  # overview_model_tree, lineage
    for text in passed:
        metadata = json.loads(text)
        assert list(metadata) == sorted(config["models"])
        for model, entry in metadata.items():
            assert set(entry) == {"architecture", "training_data", "fidelity", "control", "family"}
            assert entry["control"] == config["models"][model].get("control", False)
            assert entry["family"] == config["models"][model]["family"]


@pytest.mark.parametrize("profile, in_venv", [("default", True), ("slurm", False)])
def test_the_default_profile_runs_a_venv_family_in_its_venv_and_the_slurm_profile_in_its_conda_env(
    tmp_path, profile, in_venv
):
    if profile == "slurm":
        pytest.importorskip("snakemake_executor_plugin_slurm", reason="the SLURM executor plugin is not installed")
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["venvs"] = str(tmp_path / "venvs" / "v-{family}")  # not built: the dry-run plans its build
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    # conda is not available here; the env-modules method stands in for it so that the dry-run can plan
    extra = ["--sdm", "env-modules"] if profile == "slurm" else []
    out = snakemake("--profile", f"profiles/{profile}", "--configfile", str(path), *extra, "-n", "-p", "--forceall")
    commands = [line.removeprefix("Shell command:").strip() for line in out.stdout.splitlines()]
    hienet = next(line for line in commands if "--model hienet-v3 " in line)
    chgnet = next(line for line in commands if "--model chgnet-0.3.0 " in line)
    assert chgnet.startswith("python -m platonic embed")
    if in_venv:
        assert hienet.startswith(f"{tmp_path}/venvs/v-hienet/bin/python -m platonic embed")
        assert f"platonic venv hienet --prefix {tmp_path}/venvs/v-hienet" in out.stdout
    else:
        assert hienet.startswith("python -m platonic embed")
        assert "platonic venv" not in out.stdout
