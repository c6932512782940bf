rule embed:
    input:
        "results/structures/{dataset}.zarr",
    output:
        directory("results/embeddings/{dataset}/{model}.zarr"),
    log:
        "results/logs/embed/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/embed/{dataset}/{model}.tsv"
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
    shell:
        "python -m platonic embed {input:q} {output:q} --model {wildcards.model}"
        " --spec {params.spec:q} --settings {params.settings:q} --threads {threads} > {log} 2>&1"
