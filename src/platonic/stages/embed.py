"""Stage ``embed``: one model's per-atom features of every structure (resumable in shards); ``prefetch``."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Annotated

from platonic.settings import EmbedSettings, ModelSpec
from platonic.stages.command import command

log = logging.getLogger("platonic")

Model = Annotated[str, "model name (a preset, or give --family/--checkpoint)"]


def adapter(model: str, spec: ModelSpec, settings: EmbedSettings, **overrides):
    """The adapter of ``model``: its ``spec`` (family, checkpoint, layer or layers, options), where not given the
    preset of that name (`platonic models` lists them); ``settings`` set device, batch size, dtype and the weights
    cache. With ``layers``, the weights are loaded here, so that a layer the model lacks is reported with the
    model's name."""
    from platonic.models import PRESETS, ModelError, load_adapter

    preset = PRESETS.get(model, {})
    family = spec.family or preset.get("family")
    if family is None:
        raise ValueError(f"model {model!r} is not a packaged preset; give its family and checkpoint")
    options = {**preset.get("options", {}), **spec.options}
    kwargs = dict(device=settings.device, batch_size=settings.batch_size, dtype=settings.dtype)
    try:
        loaded = load_adapter(
            family,
            checkpoint=spec.checkpoint or preset.get("checkpoint"),
            layer=spec.layer,
            layers=list(spec.layers) if isinstance(spec.layers, tuple) else spec.layers,
            cache_dir=settings.cache_dir,
            **{**kwargs, **overrides},
            **options,
        )
        if spec.layers is not None:
            loaded.load()
    except ModelError as err:
        if spec.layers is None:
            raise
        raise ModelError(f"models.{model}.layers: {err}") from err
    return loaded


def predicts(model_adapter, spec: ModelSpec, settings: EmbedSettings) -> bool:
    """Whether ``model``'s store holds predictions: with ``embed.predictions``, for a potential (its family
    `predicts`) with trained weights that is not a control."""
    return settings.predictions and model_adapter.predicts and not spec.control and model_adapter.random_seed is None


@command(help="embed a structure store with one model")
def run(structures: str, output: str, *, model: Model, spec: ModelSpec, settings: EmbedSettings,
        progress: bool = True):  # fmt: skip
    """Embed the structure store ``structures`` with ``model`` into the embedding store ``output`` (with its
    predictions where `predicts`)."""
    import torch

    from platonic.embedding import embed_sharded, embedding_dataset, shard_fingerprint
    from platonic.store import dataset_to_atoms, open_store, write_store

    torch.set_num_threads(settings.threads)
    structure_store = open_store(structures, kind="structures")  # a wrong path fails before the model loads
    model_adapter = adapter(model, spec, settings)
    atoms, _ = dataset_to_atoms(structure_store)
    provenance = model_adapter.provenance()
    predict = predicts(model_adapter, spec, settings)
    target = Path(output)
    # finished shards live beside the output until the store is complete (Snakemake does not remove them when it
    # deletes the output of a killed job), so a rerun picks up where the killed one stopped
    shards = target.with_name(f".{target.name}.shards")
    fingerprint = shard_fingerprint(
        structure_set_hash=structure_store.attrs["structure_set_hash"],
        provenance=provenance,
        batch_size=settings.batch_size,
        shard_size=settings.shard_size,
        **({"predictions": True} if predict else {}),  # without them, the fingerprint of before they existed
    )
    features, valid, reasons = embed_sharded(
        model_adapter, atoms, shards, settings.shard_size, fingerprint, progress=progress, predict=predict
    )
    for structure_id, reason in zip(structure_store["material_id"].values, reasons, strict=True):
        if reason:
            log.warning("excluded %s from %s: %s", structure_id, model, reason)
    ds = embedding_dataset(
        structure_store, features, valid, reasons, model, provenance, layers=model_adapter.selected_layers
    )
    ds.attrs.update(batch_size=settings.batch_size, shard_size=settings.shard_size)
    write_store(ds, target)
    shutil.rmtree(shards, ignore_errors=True)
    log.info("%s: %d atoms x %d features -> %s", model, *ds["embedding"].shape, target)
    if model_adapter.layers is not None:
        log.info("%s: layers %s", model, ", ".join(f"{k} ({n})" for k, n in model_adapter.selected_layers))


@command(help="load a model once so that its weights are downloaded and cached")
def prefetch(output: str, *, model: Model, spec: ModelSpec, settings: EmbedSettings) -> None:
    """Load ``model`` once (downloading its weights into ``settings.cache_dir``) and record file and sha256."""
    import json

    model_adapter = adapter(model, spec, settings, device="cpu", batch_size=1, dtype="float32")
    info = model_adapter.provenance()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps({"model": model, **info}, indent=2))
    log.info("%s: %s (sha256 %s)", model, model_adapter.checkpoint_path, info["checkpoint_sha256"][:12])
