# Compute nodes often have no network: `snakemake prefetch_all` on a login node downloads every
# configured model's weights into embed.cache_dir first (local rules run where snakemake runs).


rule prefetch:
    input:
        venv=venv_stamp,
    output:
        "results/weights/{model}.json",
    log:
        "results/logs/prefetch/{model}.log",
    localrule: True
    conda:
        model_env
    params:
        spec=model_spec,
        settings=section("embed"),
        python=model_python,
    shell:
        "{params.python} -m platonic prefetch {output:q} --model {wildcards.model}"
        " --spec {params.spec:q} --settings {params.settings:q} > {log} 2>&1"


rule prefetch_all:
    input:
        expand("results/weights/{model}.json", model=MODELS),
    localrule: True
