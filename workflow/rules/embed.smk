if VENV_FAMILIES:

    rule venv:
        input:
            recipe=f"{workflow.basedir}/{venvs.RECIPES}/{{family}}.yaml",
            project=f"{workflow.basedir}/pyproject.toml",
        output:
            f"{VENVS}/{venvs.STAMP}",
        log:
            "results/logs/venv/{family}.log",
        wildcard_constraints:
            family="|".join(VENV_FAMILIES),
        localrule: True
        # never deployed (the rule exists only where Snakemake deploys no software); the analysis env documents
        # what its builder needs
        conda:
            "../../envs/analysis.yaml"
        # pip is one process: the build overlaps with the first embed jobs instead of leaving the second of two
        # cores idle while it holds the first (the embed jobs ask for every core)
        threads: 0
        params:
            prefix=lambda wildcards: VENVS.format(family=wildcards.family),
        shell:
            "python -m platonic venv {wildcards.family} --prefix {params.prefix:q} > {log} 2>&1"


rule embed:
    input:
        structures="results/structures/{dataset}.zarr",
        venv=venv_stamp,
    output:
        directory("results/embeddings/{dataset}/{model}.zarr"),
    log:
        "results/logs/embed/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/embed/{dataset}/{model}.tsv"
    # the reference model first: the anchors, and so every projection, summary and pair, wait for it alone, and
    # run on the other cores while the remaining models embed one after another (one gpu slot)
    priority: reference_first
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
