# What the shared space makes possible: zero-shot stitching of property heads across models, a
# consistency audit (where the models disagree, and which model departs on which element),
# embedding arithmetic on mean element vectors, how the anchor space's agreement depends on
# its anchors (their number and how they are chosen) and whether disagreement in the shared space
# flags the models' prediction failures.


rule transfer:
    input:
        structures="results/structures/{dataset}.zarr",
        embeddings=embedding_stores,
        projections=projection_stores,
        anchors="results/anchors/{dataset}.zarr",
    output:
        store=directory("results/analysis/{dataset}/transfer.zarr"),
        table=report(
            "results/analysis/{dataset}/transfer.csv",
            caption="../report/transfer_table.rst",
            category="Shared-space analyses",
        ),
        figure=report(
            "results/analysis/{dataset}/transfer.png",
            caption="../report/transfer.rst",
            category="Shared-space analyses",
        ),
    log:
        "results/logs/transfer/{dataset}.log",
    benchmark:
        "results/benchmarks/transfer/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: config["analysis"]["transfer"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
    params:
        controls=CONTROLS,
        settings=section("analysis", "transfer"),
    shell:
        "python -m platonic transfer {output.store:q} {output.table:q} --figure {output.figure:q}"
        " --structures {input.structures:q} --embeddings {input.embeddings:q}"
        " --projections {input.projections:q} --anchors {input.anchors:q}"
        " --settings {params.settings:q} --controls {params.controls:q} --threads {threads} > {log} 2>&1"


rule audit:
    input:
        structures="results/structures/{dataset}.zarr",
        projections=projection_stores,
        anchors="results/anchors/{dataset}.zarr",
        training_counts=list(
            config["analysis"]["audit"]["training_element_counts"].values()
        ),
    output:
        store=directory("results/analysis/{dataset}/audit.zarr"),
        elements=report(
            "results/analysis/{dataset}/contested_elements.csv",
            caption="../report/contested_elements.rst",
            category="Shared-space analyses",
        ),
        structures=report(
            "results/analysis/{dataset}/contested_structures.csv",
            caption="../report/contested_structures.rst",
            category="Shared-space analyses",
        ),
        bias=report(
            "results/analysis/{dataset}/element_bias.csv",
            caption="../report/element_bias.rst",
            category="Shared-space analyses",
        ),
        figure=report(
            "results/analysis/{dataset}/element_departure.png",
            caption="../report/element_departure.rst",
            category="Shared-space analyses",
        ),
    log:
        "results/logs/audit/{dataset}.log",
    benchmark:
        "results/benchmarks/audit/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
    params:
        controls=CONTROLS,
        settings=section("analysis", "audit"),
    shell:
        "python -m platonic audit {output.store:q} --projections {input.projections:q}"
        " --anchors {input.anchors:q} --structures {input.structures:q}"
        " --elements-table {output.elements:q} --structures-table {output.structures:q}"
        " --bias-table {output.bias:q} --figure {output.figure:q}"
        " --settings {params.settings:q} --controls {params.controls:q} > {log} 2>&1"


rule arithmetic:
    input:
        projections=projection_stores,
        anchors="results/anchors/{dataset}.zarr",
    output:
        report(
            "results/analysis/{dataset}/analogies.csv",
            caption="../report/analogies.rst",
            category="Shared-space analyses",
        ),
    log:
        "results/logs/arithmetic/{dataset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=section("analysis", "arithmetic"),
    shell:
        "python -m platonic arithmetic {output:q} --projections {input.projections:q}"
        " --anchors {input.anchors:q} --settings {params.settings:q} > {log} 2>&1"


rule symmetry:
    input:
        structures="results/structures/{dataset}.zarr",
        embeddings=embedding_stores,
        anchors="results/anchors/{dataset}.zarr",
    output:
        table=report(
            "results/analysis/{dataset}/symmetry_breaking.csv",
            caption="../report/symmetry_breaking_table.rst",
            category="Shared-space analyses",
        ),
        flagged=report(
            "results/analysis/{dataset}/symmetry_flagged.csv",
            caption="../report/symmetry_flagged.rst",
            category="Shared-space analyses",
        ),
        figure=report(
            "results/analysis/{dataset}/symmetry_breaking.png",
            caption="../report/symmetry_breaking.rst",
            category="Shared-space analyses",
        ),
    log:
        "results/logs/symmetry/{dataset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=section("analysis", "symmetry"),
    shell:
        "python -m platonic symmetry {output.table:q} --flagged-table {output.flagged:q}"
        " --structures {input.structures:q} --embeddings {input.embeddings:q}"
        " --anchors {input.anchors:q} --figure {output.figure:q}"
        " --settings {params.settings:q} > {log} 2>&1"


rule anchor_sensitivity:
    input:
        structures="results/structures/{dataset}.zarr",
        embeddings=embedding_stores,
        anchors="results/anchors/{dataset}.zarr",
    output:
        table=report(
            "results/analysis/{dataset}/anchor_sensitivity.csv",
            caption="../report/anchor_sensitivity.rst",
            category="Shared-space analyses",
            labels={"table": "anchor sensitivity"},
        ),
        png=report(
            "results/figures/{dataset}/overview/anchor_sensitivity.png",
            caption="../report/anchor_sensitivity.rst",
            category="Overview",
            labels={"figure": "anchor sensitivity"},
        ),
        svg="results/figures/{dataset}/overview/anchor_sensitivity.svg",
    log:
        "results/logs/analysis/{dataset}/anchor_sensitivity.log",
    benchmark:
        "results/benchmarks/anchor_sensitivity/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: config["analysis"]["anchor_sensitivity"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
    params:
        controls=CONTROLS,
        settings=section("analysis", "anchor_sensitivity"),
        selection=section("anchors"),
        similarity=section("similarity"),
    shell:
        "python -m platonic anchor-sensitivity {output.table:q} --figure {output.png:q} --also svg"
        " --structures {input.structures:q} --embeddings {input.embeddings:q} --anchors {input.anchors:q}"
        " --settings {params.settings:q} --selection {params.selection:q}"
        " --similarity {params.similarity:q} --controls {params.controls:q} --threads {threads} > {log} 2>&1"


rule prediction_failure:
    input:
        structures="results/structures/{dataset}.zarr",
        embeddings=embedding_stores,
        projections=projection_stores,
        anchors="results/anchors/{dataset}.zarr",
        audit="results/analysis/{dataset}/audit.zarr",
        symmetry="results/analysis/{dataset}/symmetry_breaking.csv",
    output:
        table=report(
            "results/analysis/{dataset}/prediction_failure.csv",
            caption="../report/prediction_failure_table.rst",
            category="Shared-space analyses",
        ),
        summary=report(
            "results/analysis/{dataset}/prediction_failure_summary.csv",
            caption="../report/prediction_failure_summary.rst",
            category="Shared-space analyses",
        ),
        figure=report(
            "results/analysis/{dataset}/prediction_failure.png",
            caption="../report/prediction_failure.rst",
            category="Shared-space analyses",
        ),
    log:
        "results/logs/prediction_failure/{dataset}.log",
    benchmark:
        "results/benchmarks/prediction_failure/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: config["analysis"]["prediction_failure"]["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
    params:
        controls=CONTROLS,
        settings=section("analysis", "prediction_failure"),
    shell:
        "python -m platonic prediction-failure {output.table:q} --summary-table {output.summary:q}"
        " --structures {input.structures:q} --embeddings {input.embeddings:q}"
        " --projections {input.projections:q} --anchors {input.anchors:q} --audit {input.audit:q}"
        " --symmetry-table {input.symmetry:q} --figure {output.figure:q}"
        " --settings {params.settings:q} --controls {params.controls:q} --threads {threads} > {log} 2>&1"
