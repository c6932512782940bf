import json
import os
import re
from pathlib import Path

from platonic.compare import registry
from platonic.settings import RESOURCE_KEYS, SimilaritySettings

# (validate_config in the Snakefile resolved every derived value: anchors.reference_model,
# figures.tree_metric, figures.seed, analysis.audit.neighbour_search)
DATASET = config["dataset"]["name"]
MODELS = list(config["models"])
# control representations (element one-hot, SOAP, untrained networks): compared like models, marked as controls
CONTROLS = [m for m, spec in config["models"].items() if spec["control"]]
METRICS = config["similarity"]["metrics"]
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


def section(*path):
    """A config section, whole, as the JSON a stage's `--settings` takes; the keys that only
    size the job (threads, mem_mb, runtime) are left out, so changing them re-runs nothing.
    """
    node = config
    for key in path:
        node = node[key]
    return json.dumps(
        {k: v for k, v in node.items() if k not in RESOURCE_KEYS}, sort_keys=True
    )


def model_spec(wildcards):
    """One model's config entry, as the JSON `platonic embed --spec` takes."""
    return json.dumps(config["models"][wildcards.model], sort_keys=True)


def model_env(wildcards):
    """The conda env of a model's family (or the model's own `env`), relative to this file."""
    spec = config["models"][wildcards.model]
    return spec.get("env", f"../../envs/{spec['family']}.yaml")


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


def metric_caption(wildcards):
    """The heatmap caption's sentence on one metric, from the metric registry."""
    settings = SimilaritySettings.from_mapping(config["similarity"])
    return registry.caption(wildcards.metric, settings)


def model_metadata():
    """What each configured model is built from, as the JSON `--metadata` takes:
    {model: {architecture, training_data, fidelity, control, family}}; a missing key is null
    (unknown). Provisional: reads the model entries' keys as they are."""
    keys = ("architecture", "training_data", "fidelity", "control", "family")
    return json.dumps(
        {
            model: {key: spec.get(key) for key in keys}
            for model, spec in config["models"].items()
        },
        sort_keys=True,
    )
