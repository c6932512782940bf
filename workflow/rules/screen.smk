# Screening new structures against the finished study (opt-in: `snakemake screen`, with screen.structures set;
# not a target of rule all). Everything it writes lies under results/screen/<screen.name>/; the study's stores are
# inputs only.
SCREEN = config["screen"]
SCREEN_DIR = f"results/screen/{SCREEN['name']}"


# without screen.structures, `snakemake screen` stops at this missing input, which says what to do
SCREEN_INPUT = (
    SCREEN["structures"]
    or "screen.structures is not set: snakemake screen --config 'screen={structures: PATH}'"
)
# the dataset section's reading and symmetry settings, applied to the screened structures
SCREEN_PREPARE_SETTINGS = json.dumps(
    {
        "name": SCREEN["name"],
        "path": SCREEN["structures"],
        "limit": SCREEN["limit"],
        "max_volume_per_atom": config["dataset"]["max_volume_per_atom"],
        "symprec": config["dataset"]["symprec"],
    },
    sort_keys=True,
)


rule screen_prepare:
    input:
        SCREEN_INPUT,
    output:
        directory(f"{SCREEN_DIR}/structures.zarr"),
    log:
        f"{SCREEN_DIR}/logs/prepare.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=SCREEN_PREPARE_SETTINGS,
    shell:
        "python -m platonic prepare {input:q} {output:q} --settings {params.settings:q} > {log} 2>&1"


rule screen_embed:
    input:
        structures=f"{SCREEN_DIR}/structures.zarr",
        venv=venv_stamp,
    output:
        directory(f"{SCREEN_DIR}/embeddings/{{model}}.zarr"),
    log:
        f"{SCREEN_DIR}/logs/embed/{{model}}.log",
    conda:
        model_env
    threads: config["embed"]["threads"]
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: config["embed"]["mem_mb"] * attempt,
        runtime=lambda wildcards, attempt: config["embed"]["runtime"] * attempt,
    params:
        spec=model_spec,
        settings=section("embed"),
        python=model_python,
    shell:
        "{params.python} -m platonic embed {input.structures:q} {output:q} --model {wildcards.model}"
        " --spec {params.spec:q} --settings {params.settings:q} --threads {threads} > {log} 2>&1"


rule screen_project:
    input:
        embedding=f"{SCREEN_DIR}/embeddings/{{model}}.zarr",
        anchor_set=f"results/anchors/{DATASET}_anchor_set.extxyz",
        anchor_embedding=f"results/embeddings/{DATASET}/{{model}}.zarr",
    output:
        directory(f"{SCREEN_DIR}/platonic/{{model}}.zarr"),
    log:
        f"{SCREEN_DIR}/logs/project/{{model}}.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m platonic project {input.embedding:q} {input.anchor_set:q} {output:q}"
        " --anchor-embedding {input.anchor_embedding:q} > {log} 2>&1"


rule screen_map:
    input:
        structures=f"results/structures/{DATASET}.zarr",
        projections=expand(
            "results/platonic/{dataset}/{model}.zarr", dataset=DATASET, model=MODELS
        ),
        embeddings=expand(
            "results/embeddings/{dataset}/{model}.zarr", dataset=DATASET, model=MODELS
        ),
        anchors=f"results/anchors/{DATASET}.zarr",
        audit=f"results/analysis/{DATASET}/audit.zarr",
        screened_structures=f"{SCREEN_DIR}/structures.zarr",
        screened_projections=expand(
            f"{SCREEN_DIR}/platonic/{{model}}.zarr", model=MODELS
        ),
    output:
        f"{SCREEN_DIR}/map.html",
    log:
        f"{SCREEN_DIR}/logs/map.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
    params:
        controls=CONTROLS,
        settings=section("map"),
    shell:
        "python -m platonic map {output:q} --structures {input.structures:q}"
        " --projections {input.projections:q} --embeddings {input.embeddings:q}"
        " --anchors {input.anchors:q} --audit {input.audit:q}"
        " --screened-structures {input.screened_structures:q}"
        " --screened-projections {input.screened_projections:q}"
        " --settings {params.settings:q} --controls {params.controls:q} > {log} 2>&1"


# the screen's page links the map of the study with the screened environments marked (map.html beside it)
rule screen:
    input:
        structures=f"{SCREEN_DIR}/structures.zarr",
        map=f"{SCREEN_DIR}/map.html",
        embeddings=expand(f"{SCREEN_DIR}/embeddings/{{model}}.zarr", model=MODELS),
        projections=expand(f"{SCREEN_DIR}/platonic/{{model}}.zarr", model=MODELS),
        study_projections=expand(
            "results/platonic/{dataset}/{model}.zarr",
            dataset=DATASET,
            model=MODELS,
        ),
        study_structures=f"results/structures/{DATASET}.zarr",
        anchors=f"results/anchors/{DATASET}.zarr",
    output:
        tables=[
            f"{SCREEN_DIR}/{name}"
            for name in ("atoms.csv", "structures.csv", "rejected.csv")
        ],
        store=directory(f"{SCREEN_DIR}/screen.zarr"),
        figure=f"{SCREEN_DIR}/screen.png",
        page=f"{SCREEN_DIR}/screen.html",
    log:
        f"{SCREEN_DIR}/logs/screen.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=section("screen"),
        controls=CONTROLS,
        folder=lambda wildcards, output: str(Path(output.page).parent),
    shell:
        "python -m platonic screen {params.folder:q} --structures {input.structures:q}"
        " --embeddings {input.embeddings:q} --projections {input.projections:q}"
        " --study-projections {input.study_projections:q} --study-structures {input.study_structures:q}"
        " --anchors {input.anchors:q} --settings {params.settings:q} --controls {params.controls:q}"
        " > {log} 2>&1"
