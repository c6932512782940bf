# The fan-in: one summary job per model, one job per pair of models (oriented by name), one gather job. Adding
# a model adds its summary and its pairs; no finished pair is computed again. On SLURM, profiles/slurm groups the
# many small summary and pair jobs into a few cluster jobs (groups, group-components).


rule summarise:
    input:
        embedding="results/embeddings/{dataset}/{model}.zarr",
        projection="results/platonic/{dataset}/{model}.zarr",
        anchors="results/anchors/{dataset}.zarr",
    output:
        directory("results/fan_in/{dataset}/models/{model}.zarr"),
    log:
        "results/logs/summarise/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/summarise/{dataset}/{model}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: config["similarity"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: config["similarity"]["mem_mb"] * attempt,
    params:
        settings=section("similarity"),
        # not passed on: the stores hold every space, so a change of the list re-runs the fan-in
        spaces=SPACES,
    shell:
        "python -m platonic summarise {output:q} --embedding {input.embedding:q}"
        " --projection {input.projection:q} --anchors {input.anchors:q}"
        " --settings {params.settings:q} --threads {threads} > {log} 2>&1"


rule compare_pair:
    input:
        embeddings=[
            "results/embeddings/{dataset}/{model_a}.zarr",
            "results/embeddings/{dataset}/{model_b}.zarr",
        ],
        projections=[
            "results/platonic/{dataset}/{model_a}.zarr",
            "results/platonic/{dataset}/{model_b}.zarr",
        ],
        summaries=[
            "results/fan_in/{dataset}/models/{model_a}.zarr",
            "results/fan_in/{dataset}/models/{model_b}.zarr",
        ],
        anchors="results/anchors/{dataset}.zarr",
    output:
        directory("results/fan_in/{dataset}/pairs/{model_a}__{model_b}.zarr"),
    log:
        "results/logs/compare_pair/{dataset}/{model_a}__{model_b}.log",
    benchmark:
        "results/benchmarks/compare_pair/{dataset}/{model_a}__{model_b}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: config["similarity"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: config["similarity"]["mem_mb"] * attempt,
    params:
        settings=section("similarity"),
        spaces=SPACES,
    shell:
        "python -m platonic compare-pair {output:q} --embeddings {input.embeddings:q}"
        " --projections {input.projections:q} --summaries {input.summaries:q}"
        " --anchors {input.anchors:q} --settings {params.settings:q} --threads {threads}"
        " > {log} 2>&1"


rule gather:
    input:
        summaries=expand("results/fan_in/{{dataset}}/models/{model}.zarr", model=MODELS),
        pairs=[f"results/fan_in/{{dataset}}/pairs/{a}__{b}.zarr" for a, b in PAIRS],
        anchors="results/anchors/{dataset}.zarr",
    output:
        store=directory("results/similarity/{dataset}.zarr"),
        table=report(
            "results/similarity/{dataset}.csv",
            caption="../report/similarity_table.rst",
            category="Similarity",
        ),
    log:
        "results/logs/similarity/{dataset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=section("similarity"),
        controls=CONTROLS,
    shell:
        "python -m platonic gather {output.store:q} {output.table:q}"
        " --summaries {input.summaries:q} --pairs {input.pairs:q}"
        " --anchors {input.anchors:q} --settings {params.settings:q}"
        " --controls {params.controls:q} > {log} 2>&1"


rule layers:
    input:
        embeddings=layer_embedding_stores,
        anchors="results/anchors/{dataset}.zarr",
    output:
        store=directory("results/layers/{dataset}.zarr"),
        table=report(
            "results/layers/{dataset}.csv",
            caption="../report/layers_table.rst",
            category="Layers",
        ),
        heatmaps=report(
            "results/figures/{dataset}/layers/heatmaps.png",
            caption="../report/layer_heatmaps.rst",
            category="Layers",
            labels={"figure": "layer x layer"},
        ),
        depth=report(
            "results/figures/{dataset}/layers/depth.png",
            caption="../report/layer_depth.rst",
            category="Layers",
            labels={"figure": "agreement by depth"},
        ),
    log:
        "results/logs/layers/{dataset}.log",
    benchmark:
        "results/benchmarks/layers/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: config["analysis"]["layers"]["threads"]
    params:
        settings=section("similarity"),
        layers=section("analysis", "layers"),
    shell:
        "python -m platonic layers {output.store:q} {output.table:q}"
        " --embeddings {input.embeddings:q} --anchors {input.anchors:q}"
        " --settings {params.settings:q} --layers {params.layers:q} --layers-threads {threads}"
        " --heatmaps {output.heatmaps:q} --depth {output.depth:q} > {log} 2>&1"


rule headline:
    input:
        f"results/similarity/{DATASET}.zarr",
    output:
        table=report(
            "results/headline.csv",
            caption="../report/headline.rst",
            category="Similarity",
        ),
        text="results/headline.rst",
    log:
        "results/logs/headline.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m platonic headline {input:q} {output.table:q} {output.text:q} > {log} 2>&1"


rule lineage:
    input:
        "results/similarity/{dataset}.zarr",
    output:
        table=report(
            "results/analysis/{dataset}/training_vs_architecture.csv",
            caption="../report/training_vs_architecture.rst",
            category="Similarity",
            labels={"table": "training data vs architecture"},
        ),
        png=report(
            "results/figures/{dataset}/overview/training_vs_architecture.png",
            caption="../report/training_vs_architecture.rst",
            category="Overview",
            labels={"figure": "training data vs architecture"},
        ),
        svg="results/figures/{dataset}/overview/training_vs_architecture.svg",
    log:
        "results/logs/lineage/{dataset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        metadata=model_metadata(),
    shell:
        "python -m platonic lineage {input:q} {output.table:q} --figure {output.png:q}"
        " --also svg --metadata {params.metadata:q} > {log} 2>&1"


rule atom_modes:
    input:
        structures="results/structures/{dataset}.zarr",
        embeddings=embedding_stores,
        projections=projection_stores,
        anchors="results/anchors/{dataset}.zarr",
    output:
        report(
            "results/similarity/{dataset}_atoms.csv",
            caption="../report/atom_modes.rst",
            category="Similarity",
        ),
    log:
        "results/logs/similarity/{dataset}_atoms.log",
    conda:
        "../../envs/analysis.yaml"
    threads: config["similarity"]["threads"]
    params:
        settings=section("similarity"),
        controls=CONTROLS,
    shell:
        "python -m platonic atom-modes {output:q} --structures {input.structures:q}"
        " --embeddings {input.embeddings:q} --projections {input.projections:q}"
        " --anchors {input.anchors:q} --settings {params.settings:q} --controls {params.controls:q}"
        " --threads {threads} > {log} 2>&1"


rule ladder:
    input:
        structures="results/structures/{dataset}.zarr",
        embeddings=embedding_stores,
        projections=projection_stores,
        anchors="results/anchors/{dataset}.zarr",
    output:
        table=report(
            "results/analysis/{dataset}/protocol_ladder.csv",
            caption="../report/protocol_ladder.rst",
            category="Similarity",
            labels={"table": "protocol ladder"},
        ),
        png=report(
            "results/figures/{dataset}/overview/protocol_ladder.png",
            caption="../report/protocol_ladder.rst",
            category="Overview",
            labels={"figure": "protocol ladder"},
        ),
        svg="results/figures/{dataset}/overview/protocol_ladder.svg",
    log:
        "results/logs/ladder/{dataset}.log",
    benchmark:
        "results/benchmarks/ladder/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: config["similarity"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: config["similarity"]["mem_mb"] * attempt,
    params:
        settings=section("similarity"),
        controls=CONTROLS,
    shell:
        "python -m platonic ladder {output.table:q} --figure {output.png:q} --also svg"
        " --structures {input.structures:q} --embeddings {input.embeddings:q}"
        " --projections {input.projections:q} --anchors {input.anchors:q}"
        " --settings {params.settings:q} --controls {params.controls:q} --threads {threads}"
        " > {log} 2>&1"


rule heatmaps:
    input:
        "results/similarity/{dataset}.zarr",
    output:
        png=report(
            "results/figures/{dataset}/{metric}.png",
            caption="../report/heatmap.rst",
            category="Model comparison",
            labels={"metric": "{metric}"},
        ),
        svg="results/figures/{dataset}/{metric}.svg",
    log:
        "results/logs/heatmaps/{dataset}/{metric}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        about=metric_caption,
    shell:
        "python -m platonic heatmaps {input:q} --metric {wildcards.metric} --output {output.png:q}"
        " --also svg > {log} 2>&1"
