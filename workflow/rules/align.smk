rule anchors:
    input:
        structures="results/structures/{dataset}.zarr",
        embedding=reference_embedding_store,
        embeddings=anchor_candidate_stores,
        given=given_anchor_files,
    output:
        directory("results/anchors/{dataset}.zarr"),
    log:
        "results/logs/anchors/{dataset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=section("anchors"),
    shell:
        "python -m platonic anchors {output:q} --structures {input.structures:q}"
        " --embedding {input.embedding:q} --embeddings {input.embeddings:q}"
        " --settings {params.settings:q} > {log} 2>&1"


rule anchor_set:
    input:
        anchors="results/anchors/{dataset}.zarr",
        structures="results/structures/{dataset}.zarr",
    output:
        "results/anchors/{dataset}_anchor_set.extxyz",
    log:
        "results/logs/anchor_set/{dataset}.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m platonic anchor-set {output:q} --anchors {input.anchors:q}"
        " --structures {input.structures:q} > {log} 2>&1"


rule project:
    input:
        embedding="results/embeddings/{dataset}/{model}.zarr",
        anchors="results/anchors/{dataset}.zarr",
    output:
        directory("results/platonic/{dataset}/{model}.zarr"),
    log:
        "results/logs/project/{dataset}/{model}.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m platonic project {input.embedding:q} {input.anchors:q} {output:q} > {log} 2>&1"
