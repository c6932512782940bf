import json
import os
import re
from pathlib import Path

DATASET = config["dataset"]["name"]
MODELS = list(config["models"])
METRICS = config["similarity"]["metrics"]
# (the config was validated in the Snakefile: a named reference model is one of MODELS)
REFERENCE_MODEL = config["anchors"]["reference_model"] or MODELS[0]
# the metric the "which models think alike" figure clusters on
TREE_METRIC = config["figures"]["tree_metric"] or (
    "linear_cka" if "linear_cka" in METRICS else METRICS[0]
)
OVERVIEW_FIGURES = [
    "agreement",
    "shared_space",
    "periodic_trends",
    "model_statistics",
    "model_tree",
]

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
    metric="|".join(re.escape(m) for m in METRICS),


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


# shared-space analyses (workflow/rules/analysis.smk)
ANALYSIS = config["analysis"]

for _model in ANALYSIS["audit"]["training_element_counts"]:
    if _model not in MODELS:
        raise ValueError(
            f"analysis.audit.training_element_counts names {_model!r}, which is not one of the"
            f" configured models: {MODELS}"
        )


def transfer_arguments():
    """Command-line options of `platonic transfer` from `analysis.transfer`."""
    settings = ANALYSIS["transfer"]
    args = [
        f"--heads {' '.join(settings['heads'])}",
        f"--test-fraction {settings['test_fraction']}",
        f"--ridge-alphas {' '.join(str(a) for a in settings['ridge_alphas'])}",
        f"--cv-folds {settings['cv_folds']}",
        f"--normalisation {settings['normalisation']}",
        f"--mlp-hidden {' '.join(str(h) for h in settings['mlp_hidden'])}",
        f"--mlp-max-iter {settings['mlp_max_iter']}",
        f"--mlp-max-samples {settings['mlp_max_samples']}",
        f"--seed {settings['seed']}",
    ]
    if settings["targets"]:
        args.append(f"--targets {' '.join(settings['targets'])}")
    return " ".join(args)


def audit_arguments():
    """Command-line options of `platonic audit` from `analysis.audit`."""
    settings = ANALYSIS["audit"]
    args = [
        f"--k {settings['k']}",
        f"--min-atoms {settings['min_atoms']}",
        f"--threshold {settings['departure_threshold']}",
        f"--spread-floor {settings['spread_floor']}",
        f"--top {settings['top_structures']}",
        f"--neighbour-search {config['similarity']['neighbour_search']}",
        f"--seed {settings['seed']}",
    ]
    args += [
        f"--training-counts '{model}={path}'"
        for model, path in settings["training_element_counts"].items()
    ]
    return " ".join(args)


def analogy_arguments():
    return " ".join(
        "--analogy "
        + " ".join(item[key] for key in ("a", "b", "c", "expected") if item.get(key))
        for item in ANALYSIS["arithmetic"]["analogies"]
    )
