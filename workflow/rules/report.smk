# The multi-model overview figures and the provenance page of the report (`snakemake --report`).


rule overview_agreement:
    input:
        "results/similarity/{dataset}.zarr",
    output:
        png=report(
            "results/figures/{dataset}/overview/agreement.png",
            caption="../report/agreement.rst",
            category="Overview",
            labels={"figure": "agreement between spaces"},
        ),
        svg="results/figures/{dataset}/overview/agreement.svg",
    log:
        "results/logs/overview/{dataset}/agreement.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m platonic overview agreement {input:q} --output {output.png:q} --also svg > {log} 2>&1"


rule overview_shared_space:
    input:
        similarity="results/similarity/{dataset}.zarr",
        projections=projection_stores,
        anchors="results/anchors/{dataset}.zarr",
    output:
        png=report(
            "results/figures/{dataset}/overview/shared_space.png",
            caption="../report/shared_space.rst",
            category="Overview",
            labels={"figure": "shared space map"},
        ),
        svg="results/figures/{dataset}/overview/shared_space.svg",
    log:
        "results/logs/overview/{dataset}/shared_space.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=section("figures"),
    shell:
        "python -m platonic overview shared_space {input.similarity:q} --output {output.png:q} --also svg"
        " --projections {input.projections:q} --anchors {input.anchors:q}"
        " --settings {params.settings:q} > {log} 2>&1"


rule overview_periodic_trends:
    input:
        similarity="results/similarity/{dataset}.zarr",
        embeddings=embedding_stores,
        anchors="results/anchors/{dataset}.zarr",
    output:
        png=report(
            "results/figures/{dataset}/overview/periodic_trends.png",
            caption="../report/periodic_trends.rst",
            category="Overview",
            labels={"figure": "periodic trends"},
        ),
        svg="results/figures/{dataset}/overview/periodic_trends.svg",
    log:
        "results/logs/overview/{dataset}/periodic_trends.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=section("figures"),
    shell:
        "python -m platonic overview periodic_trends {input.similarity:q} --output {output.png:q} --also svg"
        " --embeddings {input.embeddings:q} --anchors {input.anchors:q} --settings {params.settings:q} > {log} 2>&1"


rule overview_model_statistics:
    input:
        similarity="results/similarity/{dataset}.zarr",
        embeddings=embedding_stores,
        anchors="results/anchors/{dataset}.zarr",
    output:
        png=report(
            "results/figures/{dataset}/overview/model_statistics.png",
            caption="../report/model_statistics.rst",
            category="Overview",
            labels={"figure": "intrinsic dimension and norms"},
        ),
        svg="results/figures/{dataset}/overview/model_statistics.svg",
    log:
        "results/logs/overview/{dataset}/model_statistics.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m platonic overview model_statistics {input.similarity:q} --output {output.png:q} --also svg"
        " --embeddings {input.embeddings:q} --anchors {input.anchors:q} > {log} 2>&1"


rule overview_model_tree:
    input:
        "results/similarity/{dataset}.zarr",
    output:
        png=report(
            "results/figures/{dataset}/overview/model_tree.png",
            caption="../report/model_tree.rst",
            category="Overview",
            labels={"figure": "which models think alike"},
        ),
        svg="results/figures/{dataset}/overview/model_tree.svg",
    log:
        "results/logs/overview/{dataset}/model_tree.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=section("figures"),
        metadata=model_metadata(),
    shell:
        "python -m platonic overview model_tree {input:q} --output {output.png:q} --also svg"
        " --settings {params.settings:q} --metadata {params.metadata:q} > {log} 2>&1"


rule run_parameters:
    output:
        "results/provenance/{dataset}.parameters.json",
    log:
        "results/logs/provenance/{dataset}.parameters.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        # a function, so that braces in values (venvs: .venv-{family}) are not read as wildcards
        parameters=lambda wildcards: json.dumps(config, sort_keys=True, indent=1),
    shell:
        "printf '%s\\n' {params.parameters:q} > {output:q} 2> {log}"


rule provenance:
    input:
        parameters="results/provenance/{dataset}.parameters.json",
        embeddings=embedding_stores,
        structures="results/structures/{dataset}.zarr",
        anchors="results/anchors/{dataset}.zarr",
        similarity="results/similarity/{dataset}.zarr",
    output:
        report(
            "results/provenance/{dataset}.html",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"table": "models, data and parameters"},
        ),
    log:
        "results/logs/provenance/{dataset}.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m platonic provenance {output:q} --embeddings {input.embeddings:q}"
        " --structures {input.structures:q} --anchors {input.anchors:q} --similarity {input.similarity:q}"
        " --parameters {input.parameters:q} > {log} 2>&1"
