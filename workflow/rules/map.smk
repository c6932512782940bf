# The interactive map: the compared environments in the shared space, with their disagreement,
# atypicality and symmetry-breaking spread, as one self-contained chemiscope page (opens offline).


rule map:
    input:
        structures="results/structures/{dataset}.zarr",
        projections=projection_stores,
        embeddings=embedding_stores,
        anchors="results/anchors/{dataset}.zarr",
        audit="results/analysis/{dataset}/audit.zarr",
    output:
        report(
            "results/map/{dataset}/map.html",
            caption="../report/map.rst",
            category="Interactive map",
            labels={"page": "the shared space, atom by atom"},
        ),
    log:
        "results/logs/map/{dataset}.log",
    benchmark:
        "results/benchmarks/map/{dataset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
    params:
        controls=CONTROLS,
        settings=section("map"),
    shell:
        "python -m platonic map {output:q} --structures {input.structures:q}"
        " --projections {input.projections:q} --embeddings {input.embeddings:q}"
        " --anchors {input.anchors:q} --audit {input.audit:q}"
        " --settings {params.settings:q} --controls {params.controls:q} > {log} 2>&1"
