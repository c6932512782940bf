"""One frozen settings object per workflow stage, its fields the keys of that stage's config section.

The schema (``config.schema.yaml`` beside this file; ``workflow/schemas/config.schema.yaml`` links to it) is
the one place a default is written: each class below declares only names and types, and `config_section` fills in
the defaults from the schema. ``from_mapping`` builds an object from a config section (a rule hands its
section over whole, as JSON) and rejects unknown keys; the CLI generates one flag per field from the same
classes, for use by hand.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import typing
from typing import Any, ClassVar

from platonic.config import SCHEMA_PATH, schema, validate_section

__all__ = [
    "ADDED_LATER",
    "SCHEMA_PATH",
    "STAGE_SETTINGS",
    "Settings",
    "config_section",
    "schema",
    "section_schema",
    "without_later_defaults",
]


def section_schema(path: tuple[str, ...]) -> dict:
    """The schema of one config section, e.g. ``("analysis", "transfer")``; ``("models", "*")`` is one model."""
    node = schema()
    for key in path:
        node = node["additionalProperties"] if key == "*" else node["properties"][key]
    return node


def _frozen(value):
    """Lists become tuples, so that settings stay hashable and immutable; dicts are copied."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


def _thawed(value):
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    if isinstance(value, dict):
        return {k: _thawed(v) for k, v in value.items()}
    return value


class Settings:
    """Base of the stage settings: built from a config section, written back as one."""

    section: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_mapping(cls, mapping: dict | None = None, **overrides):
        """Settings from a config section (missing keys take the schema's defaults), keys in ``overrides`` replaced.

        Raises ``ConfigError`` naming the offending key (``similarity.k: -3 is less than the minimum of 1``).
        """
        values = {**copy.deepcopy(mapping or {}), **overrides}
        values = validate_section(_thawed(values), cls.section, section_schema(cls.section))
        return cls(**{f.name: _frozen(values[f.name]) for f in dataclasses.fields(cls) if f.name in values})

    def to_mapping(self) -> dict:
        """The config section these settings stand for (JSON-ready: tuples as lists)."""
        return {f.name: _thawed(getattr(self, f.name)) for f in dataclasses.fields(self)}


# keys of a config section that size the Snakemake job rather than steer the stage: rules leave them out of the
# JSON they pass (changing them does not re-run finished jobs) and hand ``threads`` over as ``--threads``
RESOURCE_KEYS = ("threads", "mem_mb", "runtime")

# keys a section gained after results were first made with it, whose defaults give the numbers those results hold:
# while at their default they are left out of what decides a re-run (a rule's params, a store's settings hash), so
# that adding them re-runs nothing
ADDED_LATER: dict[tuple[str, ...], tuple[str, ...]] = {
    ("similarity",): ("ot_cost", "twonn_distance", "twonn_duplicates", "twonn_zero_tolerance", "twonn_discard"),
}


def without_later_defaults(path: tuple[str, ...], values: dict) -> dict:
    """``values`` of config section ``path`` less its ``ADDED_LATER`` keys that hold the schema's default."""
    properties = section_schema(path)["properties"]
    later = ADDED_LATER.get(tuple(path), ())
    return {k: v for k, v in values.items() if not (k in later and v == properties[k].get("default"))}


def config_section(*path: str):
    """Class decorator: a frozen dataclass whose fields are exactly the schema keys of config section ``path``
    (less ``mem_mb`` and ``runtime``, which only size the job), with the schema's defaults (a key without a
    default is required, or ``None`` where the schema allows null)."""

    def decorate(cls):
        properties = {k: v for k, v in section_schema(path)["properties"].items() if k not in ("mem_mb", "runtime")}
        annotations = cls.__dict__.get("__annotations__", {})
        fields = [name for name in annotations if not name.startswith("_") and name != "section"]
        if sorted(fields) != sorted(properties):
            raise TypeError(
                f"{cls.__name__} declares {sorted(fields)} but the schema's {'.'.join(path)} has {sorted(properties)}"
            )
        nullable = {name for name in fields if "None" in str(annotations[name])}
        required = [name for name in fields if "default" not in properties[name] and name not in nullable]
        for name in [*required, *(n for n in fields if n not in required)]:  # required fields first
            annotations[name] = annotations.pop(name)
            if name in required:
                continue
            default = _frozen(copy.deepcopy(properties[name].get("default")))
            if isinstance(default, dict):
                setattr(cls, name, dataclasses.field(default_factory=functools.partial(copy.deepcopy, default)))
            else:
                setattr(cls, name, default)
        cls.section = path
        return dataclasses.dataclass(frozen=True)(cls)

    return decorate


@config_section("dataset")
class DatasetSettings(Settings):
    """Which structures, and which of them are kept (``prepare``)."""

    name: str | None
    path: str | None
    url: str | None
    limit: int | None
    max_volume_per_atom: float | None
    symprec: float


@config_section("models", "*")
class ModelSpec(Settings):
    """One model of the study: adapter family, checkpoint, layer (or ``layers``) and family options (``embed``), and
    what the model is (architecture, training data, fidelity: metadata for figures and tables, resolved from the
    presets by `platonic.config.resolve_derived`; the embed stage does not read them)."""

    family: str | None
    checkpoint: str | None
    layer: int | str | None
    layers: str | tuple[int | str, ...] | None
    options: dict
    env: str | None
    control: bool
    architecture: str | None
    training_data: tuple[str, ...] | None
    fidelity: str | None


@config_section("embed")
class EmbedSettings(Settings):
    """How every model's forward pass runs (``embed``)."""

    device: str
    batch_size: int
    shard_size: int
    dtype: str
    cache_dir: str | None
    threads: int
    predictions: bool


@config_section("anchors")
class AnchorSettings(Settings):
    """Which atoms become the anchors of the shared space (``anchors``)."""

    reference_model: str | None
    n: int
    method: str
    threshold_init: float
    indices: str | tuple[int, ...] | None
    indices_order: str | None
    seed: int
    atoms: str | None
    candidates: str


@config_section("similarity")
class SimilaritySettings(Settings):
    """The fan-in: which metrics, on how many neighbours, subsamples and queries (``similarity``)."""

    metrics: tuple[str, ...]
    atoms: str
    weights: str
    neighbours: str
    k: int
    knn_similarity: str
    knn_subsample: int | None
    knn_subsample_seed: int
    lfre_k: int
    subsample: int
    ot_cost: str
    twonn_distance: str
    twonn_duplicates: str
    twonn_zero_tolerance: float
    twonn_discard: float
    queries: int
    train_fraction: float
    ridge: str | float
    ridge_grid: tuple[float, ...]
    svcca_max_fraction: float
    width_ratio_threshold: float
    neighbour_search: str
    n_probe: int
    bootstrap: int
    permutations: int
    seed: int
    threads: int


@config_section("dask")
class DaskSettings(Settings):
    """Where the fan-in's dask tasks run: threads, a local cluster or SLURM worker jobs."""

    cluster: str
    jobs: int
    cores: int
    memory: str
    walltime: str
    queue: str | None
    account: str | None


@config_section("figures")
class FigureSettings(Settings):
    """The overview figures of the report."""

    map_sample: int
    trend_min_atoms: int
    tree_metric: str | None
    seed: int | None
    bootstrap: int | None


@config_section("map")
class MapSettings(Settings):
    """The interactive map."""

    k: int
    max_points: int
    seed: int


@config_section("analysis", "transfer")
class TransferSettings(Settings):
    """Zero-shot stitching: property heads fitted on one model, scored on every other."""

    targets: tuple[str, ...] | None
    heads: tuple[str, ...]
    test_fraction: float
    ridge_alphas: tuple[float, ...]
    cv_folds: int
    normalisation: str
    mlp_hidden: tuple[int, ...]
    mlp_max_iter: int
    mlp_max_samples: int
    seed: int
    bootstrap: int | None
    threads: int


@config_section("analysis", "audit")
class AuditSettings(Settings):
    """The consistency audit and per-element bias."""

    k: int
    min_atoms: int
    departure_threshold: float
    spread_floor: float
    top_structures: int
    training_element_counts: dict
    neighbour_search: str | None
    seed: int


@config_section("screen")
class ScreenSettings(Settings):
    """Screening new structures against a finished study (``screen``)."""

    structures: str | None
    name: str
    limit: int | None
    k: int
    nearest: int
    top: int


@config_section("analysis", "symmetry")
class SymmetrySettings(Settings):
    """The symmetry-breaking audit."""

    threshold: float
    seed: int


@config_section("analysis", "arithmetic")
class ArithmeticSettings(Settings):
    """Embedding arithmetic a - b + c on mean element vectors."""

    analogies: tuple[dict, ...]
    top: int


@config_section("analysis", "layers")
class LayerSettings(Settings):
    """Layer x layer similarity of the multi-layer models."""

    metrics: tuple[str, ...]
    threads: int


@config_section("analysis", "anchor_sensitivity")
class AnchorSensitivitySettings(Settings):
    """The anchor space's headline agreement against the number of anchors and how they are chosen."""

    n_anchors: tuple[int, ...]
    methods: tuple[str, ...]
    random_seeds: int
    threads: int


@config_section("analysis", "prediction_failure")
class PredictionFailureSettings(Settings):
    """Whether latent signals of the shared space flag the models' prediction failures."""

    k: int
    train_fraction: float
    force_tolerance: float
    bootstrap: int | None
    permutations: int | None
    seed: int
    threads: int


@config_section("phonons")
class PhononSettings(Settings):
    """Phonons of a few named structures with each trained potential (``phonon_supercells``, ``phonons``)."""

    structures: tuple[str, ...]
    models: tuple[str, ...] | None
    supercell_length: float
    distance: float
    mesh: tuple[int, ...]
    imaginary_tolerance: float


STAGE_SETTINGS: tuple[type[Settings], ...] = (
    DatasetSettings,
    ModelSpec,
    EmbedSettings,
    AnchorSettings,
    SimilaritySettings,
    DaskSettings,
    FigureSettings,
    MapSettings,
    TransferSettings,
    AuditSettings,
    SymmetrySettings,
    ScreenSettings,
    ArithmeticSettings,
    LayerSettings,
    AnchorSensitivitySettings,
    PredictionFailureSettings,
    PhononSettings,
)


def field_types(cls: type[Settings]) -> dict[str, Any]:
    """``{field: resolved type}`` of a settings class (annotations are strings under ``from __future__``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}
