rule similarity:
    input:
        embeddings=embedding_stores,
        projections=projection_stores,
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
    benchmark:
        "results/benchmarks/similarity/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: config["similarity"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
    params:
        metrics=" ".join(METRICS),
        k=config["similarity"]["k"],
        lfre_k=config["similarity"]["lfre_k"],
        subsample=config["similarity"]["subsample"],
        queries=config["similarity"]["queries"],
        train_fraction=config["similarity"]["train_fraction"],
        search=config["similarity"]["neighbour_search"],
        n_probe=config["similarity"]["n_probe"],
        seed=config["similarity"]["seed"],
        cluster=dask_arguments(),
    shell:
        "python -m platonic similarity {output.store:q} {output.table:q}"
        " --embeddings {input.embeddings:q} --projections {input.projections:q}"
        " --anchors {input.anchors:q} --metrics {params.metrics} --k {params.k}"
        " --lfre-k {params.lfre_k} --subsample {params.subsample} --queries {params.queries}"
        " --train-fraction {params.train_fraction} --neighbour-search {params.search}"
        " --n-probe {params.n_probe} --seed {params.seed} --threads {threads}"
        " {params.cluster} > {log} 2>&1"


rule figures:
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
        "results/logs/figures/{dataset}/{metric}.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m platonic figures {input:q} --metric {wildcards.metric} --output {output.png:q}"
        " --also svg > {log} 2>&1"
