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
    p.add_argument("input", help="MP-20 CSV, extxyz file or folder of CIFs")
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
    p.set_defaults(run=cmd_figures)

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
        log.info("wrote %s", save_figure(similarity_heatmaps(ds, metric), target))


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
