# Compute nodes often have no network: `snakemake prefetch` on a login node downloads every
# configured model's weights into embed.cache_dir first (local rules run where snakemake runs).


rule prefetch_model:
    output:
        "results/weights/{model}.json",
    log:
        "results/logs/prefetch/{model}.log",
    localrule: True
    conda:
        model_env
    params:
        model=embed_arguments,
        cache_dir=(
            f"--cache-dir '{config['embed']['cache_dir']}'"
            if config["embed"]["cache_dir"]
            else ""
        ),
    shell:
        "python -m platonic prefetch {output:q} --model {wildcards.model} {params.model}"
        " {params.cache_dir} > {log} 2>&1"


rule prefetch:
    input:
        expand("results/weights/{model}.json", model=MODELS),
    localrule: True
