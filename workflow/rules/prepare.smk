if "url" in config["dataset"]:

    rule download:
        output:
            config["dataset"]["path"],
        log:
            f"results/logs/download/{DATASET}.log",
        conda:
            "../../envs/analysis.yaml"
        params:
            url=config["dataset"]["url"],
        shell:
            "python -m platonic download {params.url:q} {output:q} > {log} 2>&1"


rule prepare:
    input:
        config["dataset"]["path"],
    output:
        directory("results/structures/{dataset}.zarr"),
    log:
        "results/logs/prepare/{dataset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=section("dataset"),
    shell:
        "python -m platonic prepare {input:q} {output:q} --settings {params.settings:q} > {log} 2>&1"
