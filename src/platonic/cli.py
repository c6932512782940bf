"""``platonic`` command line: one subcommand per workflow stage (the Snakemake rules call these)."""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("platonic")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s platonic %(levelname)s: %(message)s")
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        args.run(args)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        # expected failures (bad input, missing weights, ...) get one clear line, not a traceback
        print(f"platonic {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    from platonic import __version__

    parser = argparse.ArgumentParser(prog="platonic", description=__doc__)
    parser.add_argument("--version", action="version", version=f"platonic {__version__}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("models", help="list model families and packaged models")
    p.set_defaults(run=cmd_models)

    p = sub.add_parser("prepare", help="parse and validate structures into a structure store")
    p.add_argument("input", help="MP-20 CSV, extxyz file, CIF or folder of CIFs")
    p.add_argument("output", help="structure store (.zarr)")
    p.add_argument("--limit", type=int, default=None, help="keep only the first N usable structures")
    p.add_argument(
        "--max-volume-per-atom",
        type=float,
        default=None,
        help="reject periodic cells with more volume per atom (A^3; default 500; 0 turns the check off)",
    )
    p.set_defaults(run=cmd_prepare)

    p = sub.add_parser("embed", help="embed a structure store with one model")
    p.add_argument("structures", help="structure store from `platonic prepare`")
    p.add_argument("output", help="embedding store (.zarr)")
    p.add_argument("--model", required=True, help="model name (recorded in the store)")
    p.add_argument("--family", help="adapter family; defaults to the preset of --model")
    p.add_argument("--checkpoint", help="checkpoint name or path; defaults to the preset of --model")
    p.add_argument("--layer", default=None, help="which layer's features (family default when omitted)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="family-specific option")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=16, help="structures per forward pass")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="forward-pass precision")
    p.add_argument("--cache-dir", default=None, help="where downloaded weights are kept")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--shard-size",
        type=int,
        default=1000,
        help="structures per resumable shard: a rerun after a kill redoes only unfinished shards",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=cmd_embed)

    p = sub.add_parser("anchors", help="choose anchor atoms on a reference model")
    p.add_argument("output", help="anchor store (.zarr)")
    p.add_argument("--embeddings", nargs="+", required=True, help="embedding stores of all models")
    p.add_argument("--reference", required=True, help="model whose embeddings choose the anchors")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--method", default="random")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_anchors)

    p = sub.add_parser("project", help="project one model's embeddings onto the anchors")
    p.add_argument("embedding", help="embedding store")
    p.add_argument("anchors", help="anchor store")
    p.add_argument("output", help="projection store (.zarr)")
    p.set_defaults(run=cmd_project)

    p = sub.add_parser("similarity", help="all metrics for all model pairs, raw and anchor space")
    p.add_argument("output", help="similarity store (.zarr)")
    p.add_argument("table", help="tidy CSV of the same numbers")
    p.add_argument("--embeddings", nargs="+", required=True)
    p.add_argument("--projections", nargs="+", required=True)
    p.add_argument("--anchors", required=True)
    p.add_argument("--metrics", nargs="+", default=None, help="subset of metrics (default: all)")
    p.add_argument("--k", type=int, default=10, help="neighbours for mutual k-NN and CKNNA")
    p.add_argument("--lfre-k", type=int, default=20, help="neighbourhood size of LFRE")
    p.add_argument("--subsample", type=int, default=2000, help="atoms for distance correlation and OT")
    p.add_argument("--queries", type=int, default=5000, help="query atoms for information imbalance and LFRE")
    p.add_argument("--train-fraction", type=float, default=0.5, help="structures in GFRE's training split")
    p.add_argument("--neighbour-search", default="auto", choices=["auto", "exact", "ivf"])
    p.add_argument("--n-probe", type=int, default=32, help="IVF cells searched per query")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--scheduler", default=None, help="address of a running dask scheduler")
    p.add_argument("--cluster", default="threads", choices=["threads", "local", "slurm"], help="where tasks run")
    p.add_argument("--cluster-jobs", type=int, default=1, help="slurm: worker jobs")
    p.add_argument("--cluster-cores", type=int, default=8, help="slurm: cores per worker job")
    p.add_argument("--cluster-memory", default="32GB", help="slurm: memory per worker job")
    p.add_argument("--cluster-walltime", default="02:00:00", help="slurm: walltime per worker job")
    p.add_argument("--cluster-queue", default=None, help="slurm: partition")
    p.add_argument("--cluster-account", default=None, help="slurm: account")
    p.set_defaults(run=cmd_similarity)

    p = sub.add_parser("figures", help="draw the model x model heatmaps")
    p.add_argument("similarity", help="similarity store")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out-dir", help="write <metric>.png for every metric here")
    target.add_argument("--output", help="write the figure of --metric to this file")
    p.add_argument("--metric", help="only this metric")
    p.add_argument("--also", nargs="*", default=[], choices=["svg", "pdf"], help="also write these formats")
    p.set_defaults(run=cmd_figures)

    p = sub.add_parser("overview-figure", help="draw one of the multi-model overview figures")
    p.add_argument("figure", choices=list(OVERVIEW_FIGURES), help="which figure")
    p.add_argument("similarity", help="similarity store")
    p.add_argument("--output", required=True, help="figure file (.png, .svg or .pdf)")
    p.add_argument("--also", nargs="*", default=[], choices=["svg", "pdf"], help="also write these formats")
    p.add_argument("--embeddings", nargs="*", default=[], help="embedding stores (periodic_trends, model_statistics)")
    p.add_argument("--projections", nargs="*", default=[], help="projection stores (shared_space)")
    p.add_argument("--anchors", help="anchor store (its common_valid atoms are the ones drawn)")
    p.add_argument("--metric", default="linear_cka", help="model_tree: the metric the models are clustered on")
    p.add_argument("--sample", type=int, default=3000, help="shared_space: atoms drawn (seeded, the same per model)")
    p.add_argument("--min-atoms", type=int, default=5, help="periodic_trends: leave out rarer elements")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_overview_figure)

    p = sub.add_parser("provenance", help="write the report's provenance page (HTML)")
    p.add_argument("output", help="HTML file")
    p.add_argument("--embeddings", nargs="+", required=True, help="embedding stores of all models")
    p.add_argument("--structures", required=True, help="structure store")
    p.add_argument("--anchors", required=True, help="anchor store")
    p.add_argument("--similarity", required=True, help="similarity store")
    p.add_argument("--parameters", default=None, help="JSON file with the run's configuration")
    p.set_defaults(run=cmd_provenance)

    p = sub.add_parser("transfer", help="zero-shot stitching: heads fitted on one model, scored on every other")
    p.add_argument("output", help="transfer store (.zarr)")
    p.add_argument("table", help="tidy CSV of the scores")
    p.add_argument("--structures", required=True, help="structure store (per-structure labels)")
    p.add_argument("--embeddings", nargs="+", required=True, help="embedding stores (the raw-space baseline)")
    p.add_argument("--projections", nargs="+", required=True, help="projection stores (the anchor space)")
    p.add_argument("--anchors", required=True, help="anchor store (its common_valid atoms are used)")
    p.add_argument("--figure", default=None, help="also draw the transfer matrices here (.png/.svg/.pdf)")
    p.add_argument(
        "--targets", nargs="+", default=None,
        help="per-structure labels of the structure store, and/or element, group (default: every label + both)",
    )  # fmt: skip
    p.add_argument("--heads", nargs="+", default=["ridge"], choices=["ridge", "mlp"])
    p.add_argument("--test-fraction", type=float, default=0.3, help="fraction of structures held out")
    p.add_argument(
        "--ridge-alphas", nargs="+", type=float, default=[0.1],
        help="ridge penalty relative to the mean column sum of squares; several: chosen by grouped CV",
    )  # fmt: skip
    p.add_argument("--cv-folds", type=int, default=5, help="structure-grouped folds choosing the ridge penalty")
    p.add_argument(
        "--normalisation", default="standardise", choices=["none", "centre", "standardise"],
        help="per-model column normalisation with the model's own statistics, before any head",
    )  # fmt: skip
    p.add_argument("--mlp-hidden", nargs="+", type=int, default=[64], help="hidden layer sizes of the MLP head")
    p.add_argument("--mlp-max-iter", type=int, default=300)
    p.add_argument("--mlp-max-samples", type=int, default=20000, help="training rows (seeded) of the MLP head")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(run=cmd_transfer)

    p = sub.add_parser("audit", help="where the models disagree in the shared space, and per-element bias")
    p.add_argument("output", help="audit store (.zarr)")
    p.add_argument("--projections", nargs="+", required=True, help="projection stores")
    p.add_argument("--anchors", required=True, help="anchor store (its common_valid atoms are used)")
    p.add_argument("--structures", required=True, help="structure store (ids)")
    p.add_argument("--elements-table", required=True, help="CSV: elements, most contested first")
    p.add_argument("--structures-table", required=True, help="CSV: structures, most contested first")
    p.add_argument("--bias-table", required=True, help="CSV: per model and element, departure and flag")
    p.add_argument("--figure", default=None, help="also draw the per-element departure heatmap here")
    p.add_argument("--k", type=int, default=10, help="neighbours per atom for the neighbour-set overlap")
    p.add_argument("--min-atoms", type=int, default=10, help="rarer elements are left out of rankings and flags")
    p.add_argument("--threshold", type=float, default=3.0, help="departure z-score that flags a model")
    p.add_argument("--spread-floor", type=float, default=0.1, help="floor of the others' spread (x their mean)")
    p.add_argument("--top", type=int, default=None, help="rows of the contested-structures table (default all)")
    p.add_argument(
        "--training-counts", action="append", default=[], metavar="MODEL=CSV",
        help="a model's training-data element counts (columns element, count)",
    )  # fmt: skip
    p.add_argument("--neighbour-search", default="auto", choices=["auto", "exact", "ivf"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_audit)

    p = sub.add_parser("analogies", help="embedding arithmetic a - b + c on mean element vectors")
    p.add_argument("table", help="CSV of the nearest elements per model and analogy")
    p.add_argument("--projections", nargs="+", required=True, help="projection stores")
    p.add_argument("--anchors", required=True, help="anchor store (its common_valid atoms are used)")
    p.add_argument(
        "--analogy", nargs="+", action="append", required=True, metavar="ELEMENT",
        help="A B C [EXPECTED]: A - B + C, e.g. --analogy Na Li K Rb",
    )  # fmt: skip
    p.add_argument("--top", type=int, default=5, help="nearest elements listed per analogy")
    p.set_defaults(run=cmd_analogies)

    p = sub.add_parser("prefetch", help="load a model once so that its weights are downloaded and cached")
    p.add_argument("output", help="JSON file recording the checkpoint file and its sha256")
    p.add_argument("--model", required=True)
    p.add_argument("--family")
    p.add_argument("--checkpoint")
    p.add_argument("--layer", default=None)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(run=cmd_prefetch)

    p = sub.add_parser("download", help="download a structure file (needs network; used on clusters)")
    p.add_argument("url")
    p.add_argument("output")
    p.set_defaults(run=cmd_download)
    return parser


def cmd_models(args) -> None:
    from platonic.models import PRESETS, families

    print("families:")
    for family, target in sorted(families().items()):
        print(f"  {family:10s} {target}")
    for title, downloaded in (
        ("packaged models (weights ship in the wheel)", False),
        ("models whose weights are downloaded on first use", True),
    ):
        print(f"{title}:")
        for name, preset in PRESETS.items():
            if preset.get("download", False) == downloaded:
                options = " ".join(f"{k}={v}" for k, v in preset.get("options", {}).items())
                print(f"  {name:26s} family={preset['family']:8s} checkpoint={preset['checkpoint']} {options}".rstrip())


def cmd_prepare(args) -> None:
    from platonic.store import structures_to_dataset, write_store
    from platonic.structures import MAX_VOLUME_PER_ATOM, read_structures

    max_volume = MAX_VOLUME_PER_ATOM if args.max_volume_per_atom is None else args.max_volume_per_atom
    structures = read_structures(args.input, limit=args.limit, max_volume_per_atom=max_volume or None)
    for structure_id, reason in structures.rejected:
        log.warning("rejected structure %s: %s", structure_id, reason)
    write_store(structures_to_dataset(structures, source=args.input), args.output)
    log.info(
        "%d structures, %d atoms -> %s (%d rejected; the store's rejected_ids/rejected_reasons list them)",
        len(structures),
        structures.n_atoms,
        args.output,
        len(structures.rejected),
    )


def cmd_embed(args) -> None:
    import shutil

    import torch

    from platonic.embedding import embed_sharded, embedding_dataset, shard_fingerprint
    from platonic.store import dataset_to_atoms, open_store, write_store

    if args.threads:
        torch.set_num_threads(args.threads)
    adapter = _adapter(args, device=args.device, batch_size=args.batch_size, dtype=args.dtype)
    structure_store = open_store(args.structures)
    atoms, _ = dataset_to_atoms(structure_store)
    provenance = adapter.provenance()
    output = Path(args.output)
    # finished shards live beside the output until the store is complete (Snakemake does not remove them when it
    # deletes the output of a killed job), so a rerun picks up where the killed one stopped
    shards = output.with_name(f".{output.name}.shards")
    fingerprint = shard_fingerprint(
        structure_set_hash=structure_store.attrs["structure_set_hash"],
        provenance=provenance,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
    )
    features, valid, reasons = embed_sharded(
        adapter, atoms, shards, args.shard_size, fingerprint, progress=not args.no_progress
    )
    for structure_id, reason in zip(structure_store["material_id"].values, reasons, strict=True):
        if reason:
            log.warning("excluded %s from %s: %s", structure_id, args.model, reason)
    ds = embedding_dataset(structure_store, features, valid, reasons, args.model, provenance)
    ds.attrs.update(batch_size=args.batch_size, shard_size=args.shard_size)
    write_store(ds, output)
    shutil.rmtree(shards, ignore_errors=True)
    log.info("%s: %d atoms x %d features -> %s", args.model, *features.shape, output)


def cmd_anchors(args) -> None:
    from platonic.anchors import anchor_dataset, common_valid, select_anchors
    from platonic.store import open_store, write_store

    stores = {(s := open_store(path)).attrs["model"]: s for path in args.embeddings}
    if args.reference not in stores:
        raise ValueError(f"reference model {args.reference!r} is not among the embedded models {list(stores)}")
    _check_same_structures(stores)
    valid = common_valid([s["valid"].values for s in stores.values()])
    reference = stores[args.reference]
    chosen = select_anchors(reference["embedding"].values, args.n, args.method, args.seed, candidates=valid)
    ds = anchor_dataset(
        chosen,
        valid,
        reference["Z"].values,
        reference["structure_id"].values,
        reference_model=args.reference,
        method=args.method,
        seed=args.seed,
        structure_set_hash=reference.attrs["structure_set_hash"],
    )
    write_store(ds, args.output)
    log.info(
        "%d anchors on %s (%s, seed %d); %d atoms valid in all models",
        args.n,
        args.reference,
        args.method,
        args.seed,
        int(valid.sum()),
    )


def cmd_project(args) -> None:
    import xarray as xr

    from platonic.projection import anchor_projection
    from platonic.store import open_store, write_store

    embedding = open_store(args.embedding)
    anchors = open_store(args.anchors)
    if embedding.attrs["structure_set_hash"] != anchors.attrs["structure_set_hash"]:
        raise ValueError(f"{args.embedding} and {args.anchors} were computed on different structure sets")
    features = embedding["embedding"].values
    anchor_rows = anchors["anchor_atom"].values
    projected = anchor_projection(features, features[anchor_rows])
    ds = xr.Dataset(
        {"coordinate": (("atom", "anchor"), projected), "valid": embedding["valid"]},
        coords={
            "atom": embedding["atom"].values,
            "structure_id": ("atom", embedding["structure_id"].values.astype(object)),
            "site": ("atom", embedding["site"].values),
            "Z": ("atom", embedding["Z"].values),
            "anchor": anchors["anchor"].values,
            "anchor_atom": ("anchor", anchor_rows),
        },
        attrs={**embedding.attrs, "kind": "projection", "anchor_set_hash": anchors.attrs["anchor_set_hash"]},
    )
    write_store(ds, args.output)
    log.info("%s: %d atoms x %d anchors -> %s", embedding.attrs["model"], *projected.shape, args.output)


def cmd_similarity(args) -> None:
    from platonic.cluster import ClusterSettings, make_cluster
    from platonic.similarity import METRICS, SimilaritySettings, pairwise_similarity, similarity_table
    from platonic.store import open_store, write_store

    anchors = open_store(args.anchors)
    valid = anchors["common_valid"].values
    stores = [open_store(p) for p in args.embeddings]
    raw = {s.attrs["model"]: s["embedding"].values[valid] for s in stores}
    projected = {(s := open_store(p)).attrs["model"]: s["coordinate"].values[valid] for p in args.projections}
    if list(raw) != list(projected):
        raise ValueError(f"embeddings {list(raw)} and projections {list(projected)} name different models")
    structure_ids = [str(i) for i in stores[0]["structure_id"].values[valid]]
    structure_index = np.unique(np.array(structure_ids, dtype=object), return_inverse=True)[1]
    settings = SimilaritySettings(
        k=args.k, lfre_k=args.lfre_k, subsample=args.subsample, queries=args.queries,
        train_fraction=args.train_fraction, neighbour_search=args.neighbour_search, n_probe=args.n_probe,
        seed=args.seed,
    )  # fmt: skip
    cluster = make_cluster(
        ClusterSettings(
            kind=args.cluster, jobs=args.cluster_jobs, cores=args.cluster_cores, memory=args.cluster_memory,
            walltime=args.cluster_walltime, queue=args.cluster_queue, account=args.cluster_account,
        ),
        threads=args.threads,
    )  # fmt: skip
    client = None
    if args.scheduler or cluster is not None:
        from distributed import Client

        client = Client(args.scheduler or cluster)
        log.info("dask dashboard/scheduler: %s", client.scheduler.address if client.scheduler else args.scheduler)
    try:
        ds = pairwise_similarity(
            {"raw": raw, "anchor": projected},
            structure_index=structure_index,
            settings=settings,
            metric_names=tuple(args.metrics or METRICS),
            threads=args.threads,
            client=client,
        )
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    ds.attrs.update(
        anchor_set_hash=anchors.attrs["anchor_set_hash"],
        structure_set_hash=anchors.attrs["structure_set_hash"],
        n_anchors=int(anchors.sizes["anchor"]),
        n_excluded_atoms=int((~valid).sum()),
    )
    write_store(ds, args.output)
    rows = similarity_table(ds)
    Path(args.table).parent.mkdir(parents=True, exist_ok=True)
    with open(args.table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    log.info("%d models, %d atoms -> %s", len(raw), int(valid.sum()), args.output)


def cmd_figures(args) -> None:
    from platonic.figures import save_figure, similarity_heatmaps
    from platonic.store import open_store

    ds = open_store(args.similarity).load()
    metrics = [str(m) for m in ds.metric.values]
    if args.metric is not None and args.metric not in metrics:
        raise ValueError(f"metric {args.metric!r} is not in {args.similarity} (it has {metrics})")
    if args.output is not None and args.metric is None:
        raise ValueError("--output needs --metric")
    for metric in [args.metric] if args.metric else metrics:
        target = args.output or Path(args.out_dir) / f"{metric}.png"
        also = tuple(f".{suffix}" for suffix in args.also)
        log.info("wrote %s", save_figure(similarity_heatmaps(ds, metric), target, also=also))


OVERVIEW_FIGURES = ("agreement", "shared_space", "periodic_trends", "model_statistics", "model_tree")


def cmd_overview_figure(args) -> None:
    from platonic import figures, summary
    from platonic.store import open_store

    ds = open_store(args.similarity).load()
    models = [str(m) for m in ds.model_a.values]
    valid = open_store(args.anchors)["common_valid"].values if args.anchors else None

    def by_model(paths: list[str], option: str) -> dict:
        if not paths:
            raise ValueError(f"the {args.figure} figure needs {option}")
        stores = {(s := open_store(p)).attrs["model"]: s for p in paths}
        if sorted(stores) != sorted(models):
            raise ValueError(f"{option} name the models {sorted(stores)}, the similarity store {sorted(models)}")
        return {m: stores[m] for m in models}

    if args.figure == "agreement":
        fig = figures.agreement_scatter(ds)
    elif args.figure == "model_tree":
        metrics = [str(m) for m in ds.metric.values]
        if args.metric not in metrics:
            raise ValueError(f"metric {args.metric!r} is not in {args.similarity} (it has {metrics})")
        fig = figures.model_tree(ds, args.metric)
    elif args.figure == "shared_space":
        stores = by_model(args.projections, "--projections")
        first = next(iter(stores.values()))
        keep = first["valid"].values if valid is None else valid
        rows = summary.shared_sample(keep, args.sample, args.seed)
        coordinates = {m: s["coordinate"].values[rows] for m, s in stores.items()}
        fig = figures.shared_space_maps(coordinates, first["Z"].values[rows], figures.available_maps(), args.seed)
    elif args.figure == "periodic_trends":
        stores = by_model(args.embeddings, "--embeddings")
        first = next(iter(stores.values()))
        keep = np.logical_and.reduce([s["valid"].values for s in stores.values()]) if valid is None else valid
        means = {}
        for model, store in stores.items():
            elements, means[model], counts = summary.element_means(store["embedding"].data, store["Z"].values, keep)
        common = counts >= args.min_atoms
        fig = figures.periodic_trends(elements[common], {m: v[common] for m, v in means.items()}, counts[common])
    else:  # model_statistics
        stores = by_model(args.embeddings, "--embeddings")
        keep = np.logical_and.reduce([s["valid"].values for s in stores.values()]) if valid is None else valid
        norms = {m: summary.embedding_norms(s["embedding"].data, keep) for m, s in stores.items()}
        fig = figures.model_statistics(ds["intrinsic_dimension"], norms)
    also = tuple(f".{suffix}" for suffix in args.also)
    log.info("wrote %s", figures.save_figure(fig, args.output, also=also))


def cmd_provenance(args) -> None:
    import json

    from platonic.report import provenance_html
    from platonic.store import open_store

    page = provenance_html(
        [open_store(p) for p in args.embeddings],
        open_store(args.structures),
        open_store(args.anchors),
        open_store(args.similarity),
        json.loads(Path(args.parameters).read_text()) if args.parameters else {},
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(page)
    log.info("wrote %s", args.output)


def _shared_space(anchors_path: str, projection_paths: list[str]) -> tuple[np.ndarray, dict, dict]:
    """The anchor store's ``common_valid`` mask, ``{model: coordinates (n_valid, K)}`` and the
    first projection store (for its per-atom coordinates), checked to share one anchor set."""
    from platonic.store import open_store

    anchors = open_store(anchors_path)
    valid = anchors["common_valid"].values
    stores = {(s := open_store(p)).attrs["model"]: s for p in projection_paths}
    for model, store in stores.items():
        if store.attrs.get("anchor_set_hash") != anchors.attrs["anchor_set_hash"]:
            raise ValueError(
                f"the projection of {model} was made with other anchors than {anchors_path}; re-run project"
            )
    coordinates = {m: s["coordinate"].values[valid] for m, s in stores.items()}
    return valid, coordinates, next(iter(stores.values()))


def _write_rows(path: str, rows: list[dict], columns: list[str] | None = None) -> None:
    """A CSV of ``rows``; with ``columns``, the header is written even when there are no rows."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        if rows or columns:
            writer = csv.DictWriter(handle, fieldnames=columns or list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def _structure_labels(structures) -> list[str]:
    """Per-structure numeric labels of a structure store (bookkeeping variables left out)."""
    bookkeeping = {"n_atoms", "first_atom", "spacegroup_number"}
    return [
        str(name)
        for name, var in structures.data_vars.items()
        if var.dims == ("structure",) and var.dtype.kind == "f" and name not in bookkeeping
    ]


def cmd_transfer(args) -> None:
    from platonic import summary, transfer
    from platonic.analysis_figures import save, transfer_heatmaps
    from platonic.store import open_store, write_store

    valid, projected, first = _shared_space(args.anchors, args.projections)
    structures = open_store(args.structures)
    if structures.attrs["structure_set_hash"] != first.attrs["structure_set_hash"]:
        raise ValueError(f"{args.structures} is not the structure set the projections were computed on")
    raw = {(s := open_store(p)).attrs["model"]: s["embedding"].values[valid] for p in args.embeddings}
    if list(raw) != list(projected):
        raise ValueError(f"embeddings {list(raw)} and projections {list(projected)} name different models")
    z = first["Z"].values[valid]
    labels = _structure_labels(structures)
    structure_targets, atom_targets = {}, {}
    for name in args.targets or [*labels, *transfer.ATOM_TARGETS]:
        if name == "element":
            atom_targets[name] = z
        elif name == "group":
            atom_targets[name] = summary.periodic_group(z, f_block=3)
        elif name in labels:
            structure_targets[name] = structures[name].values.astype(np.float64)
        else:
            raise ValueError(
                f"transfer target {name!r} (--targets, config analysis.transfer.targets) is neither element,"
                f" group nor a per-structure label of {args.structures}; it has {labels or 'no labels'}"
            )
    settings = transfer.TransferSettings(
        test_fraction=args.test_fraction, seed=args.seed, heads=tuple(args.heads),
        ridge_alphas=tuple(args.ridge_alphas), cv_folds=args.cv_folds, mlp_hidden=tuple(args.mlp_hidden),
        mlp_max_iter=args.mlp_max_iter, mlp_max_samples=args.mlp_max_samples, normalisation=args.normalisation,
    )  # fmt: skip
    ds = transfer.transfer_scores(
        {"raw": raw, "anchor": projected},
        structures["structure_index"].values[valid],
        structure_targets,
        atom_targets,
        settings,
        threads=args.threads,
    )
    ds.attrs.update(
        structure_set_hash=first.attrs["structure_set_hash"],
        anchor_set_hash=first.attrs["anchor_set_hash"],
        n_excluded_atoms=int((~valid).sum()),
    )
    write_store(ds, args.output)
    _write_rows(args.table, transfer.transfer_table(ds))
    if args.figure:
        save(transfer_heatmaps(ds, head=args.heads[0]), args.figure)
    anchor = ds["score"].sel(space="anchor", head=args.heads[0])
    for name in ds["target"].values:
        metric = "accuracy" if name in atom_targets else "r2"
        table = anchor.sel(target=name, metric=metric).values
        off_diagonal = table[~np.eye(len(table), dtype=bool)]
        log.info(
            "%s (%s, anchor space): A->A mean %.3f, A->B mean %.3f",
            name,
            metric,
            float(np.mean(np.diag(table))),
            float(np.mean(off_diagonal)) if off_diagonal.size else float("nan"),
        )
    log.info(
        "%d models, %d atoms, targets %s -> %s", len(raw), int(valid.sum()), list(ds["target"].values), args.output
    )


def cmd_audit(args) -> None:
    from platonic import audit
    from platonic.analysis_figures import departure_heatmap, save
    from platonic.store import open_store, write_store

    valid, projected, first = _shared_space(args.anchors, args.projections)
    structures = open_store(args.structures)
    if structures.attrs["structure_set_hash"] != first.attrs["structure_set_hash"]:
        raise ValueError(f"{args.structures} is not the structure set the projections were computed on")
    training = {}
    for item in args.training_counts:
        model, sep, path = item.partition("=")
        if not sep:
            raise ValueError(f"--training-counts expects MODEL=CSV, got {item!r}")
        if model not in projected:
            raise ValueError(
                f"training element counts (analysis.audit.training_element_counts) name {model!r}, "
                f"which is not one of the models {list(projected)}"
            )
        training[model] = audit.read_training_counts(path)
    settings = audit.AuditSettings(
        k=args.k, min_atoms=args.min_atoms, departure_threshold=args.threshold, spread_floor=args.spread_floor,
        neighbour_search=args.neighbour_search, seed=args.seed,
    )  # fmt: skip
    ds = audit.consistency_audit(
        projected,
        first["Z"].values[valid],
        structures["structure_index"].values[valid],
        structures["material_id"].values.astype(object),
        settings,
    )
    ds = ds.assign_coords(atom=np.flatnonzero(valid))
    correlation = audit.training_count_correlation(ds, training)
    ds["training_count_correlation"] = ("model", [correlation.get(str(m), np.nan) for m in ds.model.values])
    ds.attrs.update(
        structure_set_hash=first.attrs["structure_set_hash"],
        anchor_set_hash=first.attrs["anchor_set_hash"],
        n_excluded_atoms=int((~valid).sum()),
        training_element_counts=sorted(training),
    )
    write_store(ds, args.output)
    elements = audit.contested_elements(ds)
    _write_rows(args.elements_table, elements, audit.ELEMENT_COLUMNS)
    _write_rows(args.structures_table, audit.contested_structures(ds, args.top), audit.STRUCTURE_COLUMNS)
    bias = audit.bias_table(ds, training)
    _write_rows(args.bias_table, bias, audit.BIAS_COLUMNS)
    if args.figure:
        save(departure_heatmap(ds), args.figure)
    log.info(
        "most contested elements: %s", ", ".join(f"{r['element']} ({r['disagreement']:.3f})" for r in elements[:5])
    )
    flagged = [f"{r['model']}:{r['element']} (z={r['departure']:.1f})" for r in bias if r["flagged"]]
    log.info("flagged departures: %s", ", ".join(flagged) or "none")
    for model, rho in correlation.items():
        log.info("%s: Spearman(log training count, distance to consensus) = %.3f", model, rho)


def cmd_analogies(args) -> None:
    from platonic.audit import analogy_table

    analogies = []
    for item in args.analogy:
        if len(item) not in (3, 4):
            raise ValueError(f"--analogy takes A B C [EXPECTED], got {' '.join(item)!r}")
        analogies.append(dict(zip(("a", "b", "c", "expected"), item, strict=False)))
    valid, projected, first = _shared_space(args.anchors, args.projections)
    rows = analogy_table(projected, first["Z"].values[valid], analogies, top=args.top)
    _write_rows(args.table, rows)
    for row in rows:
        if row["rank"] == 1:
            log.info("%s: %s = %s (expected %s at rank %s)", row["model"], row["analogy"], row["element"],
                     row["expected"] or "-", row["expected_rank"])  # fmt: skip


def cmd_prefetch(args) -> None:
    import json

    adapter = _adapter(args, device="cpu", batch_size=1, dtype="float32")
    info = adapter.provenance()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"model": args.model, **info}, indent=2))
    log.info("%s: %s (sha256 %s)", args.model, adapter.checkpoint_path, info["checkpoint_sha256"][:12])


def cmd_download(args) -> None:
    import shutil
    import urllib.request

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".part")
    try:
        with urllib.request.urlopen(args.url, timeout=60) as response, open(partial, "wb") as handle:
            shutil.copyfileobj(response, handle)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise RuntimeError(
            f"cannot download {args.url} ({err}); download it on a machine with network access and place it at {output}"
        ) from err
    partial.rename(output)
    log.info("downloaded %s -> %s", args.url, output)


def _adapter(args, **settings):
    """The adapter an embed/prefetch command line names (a preset, or --family/--checkpoint)."""
    from platonic.models import PRESETS, load_adapter

    preset = PRESETS.get(args.model, {})
    family = args.family or preset.get("family")
    if family is None:
        raise ValueError(f"model {args.model!r} is not a packaged preset; give --family and --checkpoint")
    options = dict(preset.get("options", {}))
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--option expects KEY=VALUE, got {item!r}")
        options[key] = value
    return load_adapter(
        family,
        checkpoint=args.checkpoint or preset.get("checkpoint"),
        layer=args.layer,
        cache_dir=args.cache_dir,
        **settings,
        **options,
    )


def _check_same_structures(stores: dict) -> None:
    hashes = {name: s.attrs["structure_set_hash"] for name, s in stores.items()}
    if len(set(hashes.values())) != 1:
        raise ValueError(f"embedding stores come from different structure sets: {hashes}; re-run embed")


if __name__ == "__main__":
    raise SystemExit(main())
