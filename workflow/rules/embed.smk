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
        model=embed_arguments,
        device=config["embed"]["device"],
        batch_size=config["embed"]["batch_size"],
        shard_size=config["embed"]["shard_size"],
        dtype=config["embed"]["dtype"],
        cache_dir=(
            f"--cache-dir '{config['embed']['cache_dir']}'"
            if config["embed"]["cache_dir"]
            else ""
        ),
    shell:
        "python -m platonic embed {input:q} {output:q} --model {wildcards.model} {params.model}"
        " --device {params.device} --batch-size {params.batch_size} --dtype {params.dtype}"
        " --shard-size {params.shard_size}"
        " {params.cache_dir} --threads {threads}"
        " > {log} 2>&1"
