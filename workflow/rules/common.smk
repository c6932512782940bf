import json
import os
import re
from pathlib import Path

from platonic import venvs
from platonic.compare import registry
from platonic.compare.fan_in import pair_key
from platonic.settings import RESOURCE_KEYS, SimilaritySettings, without_later_defaults
from platonic.spaces import SPACES

# (validate_config in the Snakefile resolved every derived value: anchors.reference_model,
# figures.tree_metric, figures.seed, analysis.audit.neighbour_search)
DATASET = config["dataset"]["name"]
MODELS = list(config["models"])
# control representations (element one-hot, SOAP, untrained networks): compared like models, marked as controls
CONTROLS = [m for m, spec in config["models"].items() if spec["control"]]
METRICS = config["similarity"]["metrics"]
# the models whose entries take `layers`: compared layer by layer (rule layers)
LAYER_MODELS = [
    m for m, spec in config["models"].items() if spec.get("layers") is not None
]
# every unordered pair of models, oriented by name (what a pair's job and store are called)
PAIRS = [pair_key(a, b) for i, a in enumerate(MODELS) for b in MODELS[i + 1 :]]
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
    model_a="|".join(re.escape(m) for m in MODELS),
    model_b="|".join(re.escape(m) for m in MODELS),
    metric="|".join(re.escape(m) for m in METRICS),


def section(*path):
    """A config section, whole, as the JSON a stage's `--settings` takes; the keys that only
    size the job (threads, mem_mb, runtime) are left out, so changing them re-runs nothing, and so
    are keys added later while at their default (settings.ADDED_LATER: adding them re-runs nothing).
    """
    node = config
    for key in path:
        node = node[key]
    kept = {k: v for k, v in node.items() if k not in RESOURCE_KEYS}
    return json.dumps(without_later_defaults(path, kept), sort_keys=True)


# what a model entry says about the model (resolved from the presets by validate_config): figures and tables read
# it; the embed stage does not, so it is left out of the spec and changing it re-embeds nothing
MODEL_METADATA_KEYS = ("architecture", "training_data", "fidelity")


def model_spec(wildcards):
    """One model's config entry, as the JSON `platonic embed --spec` takes (less its metadata)."""
    spec = config["models"][wildcards.model]
    return json.dumps(
        {k: v for k, v in spec.items() if k not in MODEL_METADATA_KEYS}, sort_keys=True
    )


def phonon_model_spec(wildcards):
    """A model's spec for its phonon forces (the phonons_embed jobs), its embed spec less `layers` (the phonons read
    only the forces)."""
    spec = json.loads(model_spec(wildcards))
    spec.pop("layers", None)
    return json.dumps(spec, sort_keys=True)


def model_metadata(wildcards=None):
    """JSON of every configured model's metadata, {model: {architecture, training_data, fidelity, control,
    family}} (training_data null: unknown; []: no training), for rules whose figures group models by it; a rule
    may call it or pass it as a params function (the wildcards are not needed).
    """
    return json.dumps(
        {
            model: {
                key: spec[key] for key in (*MODEL_METADATA_KEYS, "control", "family")
            }
            for model, spec in config["models"].items()
        },
        sort_keys=True,
    )


def model_env(wildcards):
    """The conda env of a model's family (or the model's own `env`), relative to this file."""
    spec = config["models"][wildcards.model]
    return spec.get("env", f"../../envs/{spec['family']}.yaml")


# A family that cannot share the project's virtualenv has a recipe envs/venv/<family>.yaml. Where Snakemake deploys
# software (the SLURM profile: --sdm conda, one envs/<family>.yaml per family) its jobs get that like every family;
# otherwise (the default profile) the workflow builds the family's own virtualenv (rule venv, at config `venvs`,
# relative to this checkout) and runs its embed and prefetch jobs with that virtualenv's Python. Other families run
# in the current environment.
VENVS = (
    None
    if workflow.deployment_settings.deployment_method or config["venvs"] is None
    else str(Path(workflow.basedir) / config["venvs"])
)
VENV_FAMILIES = sorted(
    {
        spec["family"]
        for spec in config["models"].values()
        if VENVS and venvs.has_recipe(spec["family"], workflow.basedir)
    }
)


def model_venv(wildcards):
    """The virtualenv a model's jobs run in (None: the current environment or its conda env)."""
    family = config["models"][wildcards.model]["family"]
    return VENVS.format(family=family) if family in VENV_FAMILIES else None


def venv_stamp(wildcards):
    """The built virtualenv of a model's family, as an input (none where the model needs none)."""
    prefix = model_venv(wildcards)
    return [] if prefix is None else [f"{prefix}/{venvs.STAMP}"]


def model_python(wildcards):
    """The Python a model's jobs run: its family's virtualenv's, or the environment's ``python``."""
    prefix = model_venv(wildcards)
    return "python" if prefix is None else f"{prefix}/bin/python"


def embedding_stores(wildcards):
    return expand(
        "results/embeddings/{dataset}/{model}.zarr",
        dataset=wildcards.dataset,
        model=MODELS,
    )


def layer_embedding_stores(wildcards):
    return expand(
        "results/embeddings/{dataset}/{model}.zarr",
        dataset=wildcards.dataset,
        model=LAYER_MODELS,
    )


def reference_embedding_store(wildcards):
    """The embedding store of anchors.reference_model: all that the anchors read by default."""
    return f"results/embeddings/{wildcards.dataset}/{config['anchors']['reference_model']}.zarr"


def reference_first(wildcards):
    """The embed job's priority: 1 for the anchors' reference model (so it embeds first), 0 for the others."""
    return int(wildcards.model == config["anchors"]["reference_model"])


def anchor_candidate_stores(wildcards):
    """With anchors.candidates common, every model's embedding store (adding a model then re-runs the anchors);
    else none: the anchors depend on the reference model alone.
    """
    if config["anchors"]["candidates"] == "common":
        return embedding_stores(wildcards)
    return []


def given_anchor_files(wildcards):
    """With anchors.method indices, the files the given anchors are read from (the index file, when
    anchors.indices is one, and the order CSV, anchors.indices_order): editing either re-runs the anchors;
    else none.
    """
    anchors = config["anchors"]
    if anchors["method"] != "indices":
        return []
    files = [anchors["indices_order"]]
    if isinstance(anchors["indices"], str):
        files.append(anchors["indices"])
    return files


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
