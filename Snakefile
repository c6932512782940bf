import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# The config is checked (and its derived values resolved) by the library of this checkout, against
# src/platonic/config.schema.yaml (linked from workflow/schemas/); jobs use it through PYTHONPATH too.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from platonic.config import check_inputs, validate_config

# The embedded default; `--configfile other.yaml` replaces it instead of merging into it
# (a merge would add the default's seven models to every other study).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate_config(config)
# what the config names outside itself: the dataset file, checkpoint names, and anchors.n against the atoms of the
# structure store, where one is already prepared
check_inputs(
    config, structure_store=f"results/structures/{config['dataset']['name']}.zarr"
)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/map.smk"
include: "workflow/rules/prefetch.smk"
include: "workflow/rules/screen.smk"
include: "workflow/rules/phonons.smk"


rule all:
    default_target: True
    input:
        similarity_table=f"results/similarity/{DATASET}.csv",
        headline="results/headline.csv",
        atom_modes=f"results/similarity/{DATASET}_atoms.csv",
        figures=expand(
            "results/figures/{dataset}/{metric}.png", dataset=DATASET, metric=METRICS
        ),
        overview=expand(
            "results/figures/{dataset}/overview/{figure}.png",
            dataset=DATASET,
            figure=OVERVIEW_FIGURES,
        ),
        training_vs_architecture=[
            f"results/analysis/{DATASET}/training_vs_architecture.csv",
            f"results/figures/{DATASET}/overview/training_vs_architecture.png",
        ],
        protocol_ladder=[
            f"results/analysis/{DATASET}/protocol_ladder.csv",
            f"results/figures/{DATASET}/overview/protocol_ladder.png",
        ],
        anchor_sensitivity=[
            f"results/analysis/{DATASET}/anchor_sensitivity.csv",
            f"results/figures/{DATASET}/overview/anchor_sensitivity.png",
        ],
        provenance=f"results/provenance/{DATASET}.html",
        anchor_set=f"results/anchors/{DATASET}_anchor_set.extxyz",
        interactive_map=f"results/map/{DATASET}/map.html",
        layers=(
            [
                f"results/layers/{DATASET}.csv",
                f"results/figures/{DATASET}/layers/heatmaps.png",
                f"results/figures/{DATASET}/layers/depth.png",
            ]
            if LAYER_MODELS
            else []
        ),
        # with phonons.structures named (config/phonons.yaml): the phonon comparison
        phonons=(
            [
                f"results/analysis/{DATASET}/{name}"
                for name in ("phonons.csv", "phonons_correlation.csv", "phonons.png")
            ]
            if PHONONS["structures"]
            else []
        ),
        analysis=expand(
            "results/analysis/{dataset}/{name}",
            dataset=DATASET,
            name=(
                "transfer.csv",
                "transfer.png",
                "contested_elements.csv",
                "contested_structures.csv",
                "element_bias.csv",
                "element_departure.png",
                "analogies.csv",
                "symmetry_breaking.csv",
                "symmetry_flagged.csv",
                "symmetry_breaking.png",
                "prediction_failure.csv",
                "prediction_failure_summary.csv",
                "prediction_failure.png",
            ),
        ),
