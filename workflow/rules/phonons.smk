# The phonon comparison (opt-in: phonons.structures names the structures; config/phonons.yaml names a set for the
# default study): phonopy's displaced supercells of the named structures, every phonons.models model's forces on
# them (the embed stage on the supercells' structure store, in the model's own environment) and the comparison with
# the structures' latent signals in the study. Its outputs lie under results/phonons/<dataset>/ and beside the
# study's analyses; the study's stores are inputs only.
PHONONS = config["phonons"]
PHONON_MODELS = PHONONS["models"]
PHONON_DIR = f"results/phonons/{DATASET}"


# the embed section with the predictions on, whatever the study chose: the forces are what the phonons read
PHONON_EMBED_SETTINGS = json.dumps(
    {**json.loads(section("embed")), "predictions": True}, sort_keys=True
)


rule phonon_supercells:
    input:
        f"results/structures/{DATASET}.zarr",
    output:
        directory(f"{PHONON_DIR}/supercells.zarr"),
    log:
        f"{PHONON_DIR}/logs/supercells.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=section("phonons"),
    shell:
        "python -m platonic phonon-supercells {output:q} --structures {input:q}"
        " --settings {params.settings:q} > {log} 2>&1"


rule phonons_embed:
    input:
        structures=f"{PHONON_DIR}/supercells.zarr",
        venv=venv_stamp,
    output:
        directory(f"{PHONON_DIR}/forces/{{model}}.zarr"),
    log:
        f"{PHONON_DIR}/logs/embed/{{model}}.log",
    benchmark:
        f"{PHONON_DIR}/benchmarks/embed/{{model}}.tsv"
    conda:
        model_env
    threads: config["embed"]["threads"]
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: config["embed"]["mem_mb"] * attempt,
        runtime=lambda wildcards, attempt: config["embed"]["runtime"] * attempt,
    params:
        spec=phonon_model_spec,
        settings=PHONON_EMBED_SETTINGS,
        python=model_python,
    shell:
        "{params.python} -m platonic embed {input.structures:q} {output:q} --model {wildcards.model}"
        " --spec {params.spec:q} --settings {params.settings:q} --threads {threads} > {log} 2>&1"


rule phonons:
    input:
        structures=f"results/structures/{DATASET}.zarr",
        supercells=f"{PHONON_DIR}/supercells.zarr",
        forces=expand(f"{PHONON_DIR}/forces/{{model}}.zarr", model=PHONON_MODELS),
        embeddings=expand(
            "results/embeddings/{dataset}/{model}.zarr", dataset=DATASET, model=MODELS
        ),
        projections=expand(
            "results/platonic/{dataset}/{model}.zarr", dataset=DATASET, model=MODELS
        ),
        anchors=f"results/anchors/{DATASET}.zarr",
        audit=f"results/analysis/{DATASET}/audit.zarr",
        symmetry=f"results/analysis/{DATASET}/symmetry_breaking.csv",
    output:
        table=report(
            f"results/analysis/{DATASET}/phonons.csv",
            caption="../report/phonons_table.rst",
            category="Phonons",
        ),
        correlations=report(
            f"results/analysis/{DATASET}/phonons_correlation.csv",
            caption="../report/phonons_correlation.rst",
            category="Phonons",
        ),
        figure=report(
            f"results/analysis/{DATASET}/phonons.png",
            caption="../report/phonons.rst",
            category="Phonons",
        ),
    log:
        f"{PHONON_DIR}/logs/phonons.log",
    benchmark:
        f"{PHONON_DIR}/benchmarks/phonons.tsv"
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
    params:
        controls=CONTROLS,
        settings=section("phonons"),
        signals=section("analysis", "prediction_failure"),
    shell:
        "python -m platonic phonons {output.table:q} --correlations {output.correlations:q}"
        " --structures {input.structures:q} --supercells {input.supercells:q} --forces {input.forces:q}"
        " --embeddings {input.embeddings:q} --projections {input.projections:q} --anchors {input.anchors:q}"
        " --audit {input.audit:q} --symmetry-table {input.symmetry:q} --figure {output.figure:q}"
        " --settings {params.settings:q} --signals {params.signals:q} --controls {params.controls:q} > {log} 2>&1"
