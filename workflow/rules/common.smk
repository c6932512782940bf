import os
import re
from pathlib import Path

DATASET = config["dataset"]["name"]
MODELS = list(config["models"])
METRICS = config["similarity"]["metrics"]
# (the config was validated in the Snakefile: a named reference model is one of MODELS)
REFERENCE_MODEL = config["anchors"]["reference_model"] or MODELS[0]

# Every job runs the library from this checkout (`python -m platonic`), with no site install
# needed, also inside the per-model conda envs: jobs inherit this PYTHONPATH.
SRC = str(Path(workflow.basedir) / "src")
if SRC not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ.update(
        PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    )


wildcard_constraints:
    dataset=re.escape(DATASET),
    model="|".join(re.escape(m) for m in MODELS),


def model_spec(wildcards):
    return config["models"][wildcards.model]


def model_env(wildcards):
    """The conda env of a model's family (or the model's own `env`), relative to this file."""
    spec = config["models"][wildcards.model]
    return spec.get("env", f"../../envs/{spec['family']}.yaml")


def embed_arguments(wildcards):
    spec = config["models"][wildcards.model]
    args = [f"--family {spec['family']}", f"--checkpoint '{spec['checkpoint']}'"]
    if spec.get("layer") is not None:
        args.append(f"--layer {spec['layer']}")
    args += [
        f"--option '{key}={value}'" for key, value in spec.get("options", {}).items()
    ]
    return " ".join(args)


def embedding_stores(wildcards):
    return expand(
        "results/embeddings/{dataset}/{model}.zarr",
        dataset=wildcards.dataset,
        model=MODELS,
    )


def projection_stores(wildcards):
    return expand(
        "results/platonic/{dataset}/{model}.zarr",
        dataset=wildcards.dataset,
        model=MODELS,
    )


def dask_arguments():
    """Command-line options of `platonic similarity` for the configured dask cluster."""
    dask_config = config["dask"]
    args = [f"--cluster {dask_config['cluster']}"]
    if dask_config["cluster"] == "slurm":
        args += [
            f"--cluster-jobs {dask_config['jobs']}",
            f"--cluster-cores {dask_config['cores']}",
            f"--cluster-memory {dask_config['memory']}",
            f"--cluster-walltime {dask_config['walltime']}",
        ]
        args += [
            f"--cluster-{key} {dask_config[key]}"
            for key in ("queue", "account")
            if dask_config[key]
        ]
    return " ".join(args)
