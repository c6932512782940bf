"""Check a workflow configuration once, at the boundary: its JSON schema (filling in defaults), the
rules a schema cannot state (the reference model is one of the models, every family exists), and the
values that depend on other keys, resolved once and written back (`resolve_derived`); then, when the workflow
starts, what the configuration names outside itself (`check_inputs`: the dataset file, checkpoint names, the atoms
a structure store already written offers the anchors).

Every problem is reported with the key that holds it (``similarity.k``) and what is allowed. Only
``jsonschema`` and ``yaml`` are needed, so the Snakefile can use this from a bare Snakemake install.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import os
from collections.abc import Iterable
from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


@functools.cache
def schema() -> dict:
    """The workflow's configuration schema (parsed once)."""
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text())


class ConfigError(ValueError):
    """A configuration that does not match the schema, one line per offending key."""


def validate_config(config: dict, schema_path: str | Path | None = None, families: Iterable[str] | None = None) -> dict:
    """Validate ``config`` in place against the schema (default: the package's ``config.schema.yaml``,
    which ``workflow/schemas/config.schema.yaml`` links to), fill in its defaults and resolve the derived
    values (`resolve_derived`); return it.

    ``families`` are the adapter families a model may name (default: the model registry's, when
    it can be imported). Raises ``ConfigError`` listing every offending key.
    """
    import yaml
    from jsonschema import Draft202012Validator

    schema_path = Path(schema_path or SCHEMA_PATH)
    schema = yaml.safe_load(schema_path.read_text())
    validator = _filling_defaults(Draft202012Validator)(schema)
    problems = [
        _describe(error)
        for error in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    ]
    if not problems:  # the cross-key rules assume a config of the right shape
        problems = _cross_key_problems(config, families)
    if problems:
        raise _config_error(problems, f"fix these keys in the config file; {schema_path} documents every key")
    return resolve_derived(config)


def _config_error(problems: list[str], advice: str) -> ConfigError:
    return ConfigError("invalid configuration:\n" + "\n".join(f"  - {problem}" for problem in problems) + f"\n{advice}")


def check_inputs(config: dict, structure_store: str | Path | None = None) -> dict:
    """What a validated ``config`` (`validate_config`) names outside itself, checked when the workflow starts
    (relative paths from the working directory); returns ``config``:

    - ``dataset.path`` exists, unless ``dataset.url`` is given to fetch it;
    - each model's ``checkpoint`` is a preset's, an existing path, or a name its family lists
      (`platonic.models.base.Adapter.checkpoint_names`; families that list none, or whose package is not installed
      here, are checked by their embed job);
    - ``anchors.n`` is at most the atoms the anchors may be chosen from (``anchors.atoms``: unique counts one per
      symmetry orbit), where ``structure_store`` (the dataset's structure store) exists and was prepared from the
      configured ``dataset`` section; otherwise the anchors job checks it.

    Raises ``ConfigError`` listing every problem.
    """
    problems = _dataset_problems(config["dataset"])
    problems += _checkpoint_problems(config["models"])
    if structure_store is not None:
        problems += _anchor_count_problems(config, Path(structure_store))
    if problems:
        raise _config_error(problems, "fix these keys in the config file")
    return config


def _dataset_problems(dataset: dict) -> list[str]:
    path = dataset["path"]
    if dataset.get("url") or Path(path).expanduser().exists():
        return []
    return [
        f"dataset.path {path!r} does not exist (relative paths start in {os.getcwd()}): give the path of an MP-20 style"
        " CSV, an extxyz file, a CIF or a folder of CIFs, or set dataset.url to download it to dataset.path"
    ]


def _checkpoint_problems(models: dict) -> list[str]:
    """Checkpoints that are neither a preset's (no adapter imported), a path, nor a name their family lists."""
    try:
        from platonic.models import ModelError, adapter_class
    except ImportError:  # a bare Snakemake install: `platonic embed` checks the checkpoint
        return []
    presets = {(preset["family"], preset["checkpoint"]) for preset in _presets().values()}
    problems = []
    for name, spec in models.items():
        family, checkpoint = spec["family"], str(spec["checkpoint"])
        if (family, checkpoint) in presets or Path(checkpoint).expanduser().exists():
            continue
        try:
            adapter = adapter_class(family)
        except ModelError:  # its package is not installed here (its own environment): the embed job checks
            continue
        if adapter.known_checkpoint(checkpoint):
            continue
        known = adapter.checkpoint_names
        problems.append(
            f"{key_path(['models', name, 'checkpoint'])}: {checkpoint!r} is neither a checkpoint {family} knows"
            f" ({', '.join(known)}) nor an existing file"
            + _suggestion(checkpoint, known)
            + "; name one of those or give the path of a checkpoint file"
        )
    return problems


def _anchor_count_problems(config: dict, store: Path) -> list[str]:
    """``anchors.n`` against the atoms of the structure store ``store``, read from its top ``zarr.json`` (no zarr
    needed), when the store was prepared with the configured dataset section and after its file last changed."""
    dataset, anchors = config["dataset"], config["anchors"]
    try:
        attrs = json.loads((store / "zarr.json").read_text())["attributes"]
        current = store.stat().st_mtime >= Path(dataset["path"]).stat().st_mtime
    except (OSError, ValueError, KeyError):
        return []
    prepared = {key: attrs.get(key, "unrecorded") for key in ("source", *PREPARED_WITH)}
    if not current or prepared != {"source": dataset["path"], **{key: dataset[key] for key in PREPARED_WITH}}:
        return []  # prepare runs again first; the anchors job checks
    atoms = anchors["atoms"] or config["similarity"]["atoms"]
    available = attrs["n_orbits"] if atoms == "unique" else attrs["n_atoms"]
    if anchors["n"] <= available:
        return []
    what = (
        f"{available} distinct environments (one atom per symmetry orbit: anchors.atoms unique)"
        if atoms == "unique"
        else f"{available} atoms (anchors.atoms: all)"
    )
    return [f"anchors.n is {anchors['n']} but the structure store {store} holds {what}: set anchors.n to at most"
            f" {available}"]  # fmt: skip


# the dataset keys the structure store records (besides its source, dataset.path): a store prepared with others is
# prepared again before the anchors read it
PREPARED_WITH = ("limit", "max_volume_per_atom", "symprec")


def resolve_derived(config: dict) -> dict:
    """Write the values that default to other keys back into ``config`` (validated, defaults filled), so that
    every rule, caption and stage reads one resolved value:

    - ``anchors.reference_model``: null -> the first model;
    - ``figures.tree_metric``: null -> ``linear_cka`` when computed, else the first of ``similarity.metrics``;
    - ``figures.seed``: null -> ``similarity.seed`` (the shared-space sample);
    - ``analysis.audit.neighbour_search``: null -> ``similarity.neighbour_search``;
    - ``anchors.atoms``: null -> ``similarity.atoms`` (what counts as an atom, for every stage after anchors);
    - ``anchors.indices_order``: null -> ``dataset.path``, with ``anchors.method`` indices (the atom order the given
      indices count in);
    - ``figures.bootstrap``, ``analysis.transfer.bootstrap`` and ``analysis.prediction_failure.bootstrap``: null ->
      ``similarity.bootstrap``; ``analysis.prediction_failure.permutations``: null -> ``similarity.permutations``,
      at least 100;
    - ``models.<name>.architecture``, ``training_data``, ``fidelity``: see `resolve_model_metadata`;
    - ``phonons.models``: null -> every trained potential (`potentials`).
    """
    metrics = config["similarity"]["metrics"]
    if config["anchors"]["reference_model"] is None:
        config["anchors"]["reference_model"] = next(iter(config["models"]))
    figures = config["figures"]
    if figures["tree_metric"] is None:
        figures["tree_metric"] = "linear_cka" if "linear_cka" in metrics else metrics[0]
    if figures["seed"] is None:
        figures["seed"] = config["similarity"]["seed"]
    if config["anchors"]["atoms"] is None:
        config["anchors"]["atoms"] = config["similarity"]["atoms"]
    if config["anchors"]["method"] == "indices" and config["anchors"]["indices_order"] is None:
        config["anchors"]["indices_order"] = config["dataset"]["path"]
    audit = config["analysis"]["audit"]
    if audit["neighbour_search"] is None:
        audit["neighbour_search"] = config["similarity"]["neighbour_search"]
    failure = config["analysis"]["prediction_failure"]
    for section in (figures, config["analysis"]["transfer"], failure):
        if section["bootstrap"] is None:
            section["bootstrap"] = config["similarity"]["bootstrap"]
    if failure["permutations"] is None:
        failure["permutations"] = max(100, config["similarity"]["permutations"])
    presets = _presets()
    for name, spec in config["models"].items():
        resolve_model_metadata(name, spec, presets)
    if config["phonons"]["models"] is None:
        config["phonons"]["models"] = potentials(config["models"])
    return config


def potentials(models: dict) -> list[str]:
    """The configured models that compute forces: not controls, not random weights, of a family that predicts
    (where the registry cannot be imported, a bare Snakemake install, every family is taken to)."""
    try:
        from platonic.models import FAMILIES
    except ImportError:
        FAMILIES = {}  # noqa: N806
    return [
        name
        for name, spec in models.items()
        if not spec["control"]
        and str(spec.get("options", {}).get("weights", "pretrained")) != "random"
        and (spec["family"] not in FAMILIES or FAMILIES[spec["family"]].predicts)
    ]


METADATA = ("architecture", "training_data", "fidelity")


def resolve_model_metadata(name: str, spec: dict, presets: dict[str, dict]) -> dict:
    """Fill the null metadata (``architecture``, ``training_data``, ``fidelity``) of model ``name``'s config entry
    ``spec`` in place; return it. Values given in the config always win. Otherwise they come from

    - the preset of the same name, when it describes the same model (same family, checkpoint and options);
    - failing that, the first preset with the same family, checkpoint and options;
    - with ``options.weights: random`` (an untrained network): ``training_data`` is ``[]`` and ``fidelity`` null,
      and ``architecture`` comes from a preset with the same family and checkpoint (its other options alike).

    What none of these gives stays null: a null ``training_data`` means *unknown*, not "no data"
    (``[]`` is no data). ``presets`` maps names to preset dicts (`platonic.models.PRESETS`).
    """
    random = str(spec.get("options", {}).get("weights", "pretrained")) == "random"
    options = _options(spec.get("options", {}), drop_weights=random)
    same = [
        (preset_name, preset)
        for preset_name, preset in presets.items()
        if (preset.get("family"), preset.get("checkpoint")) == (spec["family"], spec["checkpoint"])
        and _options(preset.get("options", {}), drop_weights=random) == options
    ]
    same.sort(key=lambda item: item[0] != name)  # the preset of the same name first
    known: dict = {}
    if random:
        known = {"training_data": [], "fidelity": None}
        if same:
            known["architecture"] = same[0][1].get("architecture")
    elif same:
        known = {key: copy.deepcopy(same[0][1].get(key)) for key in METADATA}
    for key in METADATA:
        if spec.get(key) is None:
            spec[key] = known.get(key)
    return spec


def _options(options: dict, drop_weights: bool) -> dict[str, str]:
    """Options compared as text (the CLI gives strings, YAML gives numbers); ``weights``/``seed`` left out when
    asked (an untrained network's architecture is the pretrained preset's)."""
    return {k: str(v) for k, v in options.items() if not (drop_weights and k in ("weights", "seed"))}


def _presets() -> dict[str, dict]:
    """The model registry's presets, or none where the library's dependencies are not installed (a bare Snakemake
    install: metadata not given in the config then stays unknown)."""
    try:
        from platonic.models import PRESETS
    except ImportError:
        return {}
    return PRESETS


def validate_section(values: dict, path: tuple[str, ...], schema: dict) -> dict:
    """Check one config section (``path``, e.g. ``("similarity",)``) against its ``schema``, filling in its
    defaults; keys the schema requires of a config file may be left out here. Returns ``values``."""
    from jsonschema import Draft202012Validator

    schema = {key: value for key, value in schema.items() if key != "required"}
    validator = _filling_defaults(Draft202012Validator)(schema)
    problems = [
        _describe(error, prefix=[p for p in path if p != "*"])
        for error in sorted(validator.iter_errors(values), key=lambda e: [str(p) for p in e.absolute_path])
    ]
    if problems:
        raise ConfigError("invalid settings:\n" + "\n".join(f"  - {problem}" for problem in problems))
    return values


def key_path(path: Iterable) -> str:
    """``["models", "chgnet-0.3.0", "family"]`` -> ``models.'chgnet-0.3.0'.family``."""
    parts = [f"[{p}]" if isinstance(p, int) else (f"'{p}'" if "." in str(p) else str(p)) for p in path]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _filling_defaults(validator_class):
    """A validator that sets each missing property to (a copy of) its schema default first."""
    from jsonschema import validators

    check_properties = validator_class.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": properties_with_defaults})


def _describe(error, prefix: Iterable = ()) -> str:
    """One line: the key, jsonschema's message and, for unknown keys, the allowed ones."""
    path = [*prefix, *error.absolute_path]
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        path += unknown[:1]  # the misspelled key itself
        hints = [f"did you mean {close[0]!r}?" for k in unknown if (close := _closest(k, allowed))]
        message += f"; allowed here: {', '.join(allowed)}" + (f" ({'; '.join(hints)})" if hints else "")
    elif error.validator == "type" and "array" in error.validator_value and isinstance(error.instance, str):
        message += f"; write a list, even of one: [{error.instance}]"  # e.g. training_data: MPtrj
    elif error.validator == "minProperties" and list(error.absolute_path) == ["models"]:
        names = f": {', '.join(error.instance)}" if error.instance else ""
        message = f"configure at least two models to compare (got {len(error.instance)}{names})"
    return f"{key_path(path)}: {message}"


def _cross_key_problems(config: dict, families: Iterable[str] | None) -> list[str]:
    problems = []
    models = list(config["models"])
    reference = config["anchors"]["reference_model"]
    if reference is not None and reference not in models:
        problems.append(
            f"anchors.reference_model {reference!r} is not one of the configured models: {', '.join(models)}"
            + _suggestion(reference, models)
        )
    problems += _given_anchor_problems(config)
    metrics = config["similarity"]["metrics"]
    tree_metric = config.get("figures", {}).get("tree_metric")
    if tree_metric is not None and tree_metric not in metrics:
        problems.append(
            f"figures.tree_metric {tree_metric!r} is not one of similarity.metrics: {', '.join(metrics)}"
            + _suggestion(tree_metric, metrics)
        )
    for model in config["analysis"]["audit"]["training_element_counts"]:
        if model not in models:
            problems.append(
                f"analysis.audit.training_element_counts names {model!r}, which is not one of the configured"
                f" models: {', '.join(models)}" + _suggestion(model, models)
            )
    for model in config["phonons"]["models"] or ():
        if model not in models:
            problems.append(
                f"phonons.models names {model!r}, which is not one of the configured models: {', '.join(models)}"
                + _suggestion(model, models)
            )
        elif model not in potentials({model: config["models"][model]}):
            problems.append(
                f"phonons.models names {model!r}, which computes no forces (a control, random weights or a family"
                f" without predictions); leave it out, or set phonons.models: null for every trained potential"
            )
    for name, spec in config["models"].items():
        if spec.get("layer") is not None and spec.get("layers") is not None:
            problems.append(
                f"{key_path(['models', name])}: give layer or layers, not both (layer {spec['layer']!r}, layers "
                f"{spec['layers']!r})"
            )
    known = set(families) if families is not None else _registered_families()
    if known is not None:
        for name, spec in config["models"].items():
            if spec["family"] not in known and ":" not in spec["family"]:  # "module:Class" is imported at embed
                problems.append(
                    f"{key_path(['models', name, 'family'])}: unknown model family {spec['family']!r}; "
                    f"known families: {', '.join(sorted(known))}" + _suggestion(spec["family"], known)
                )
    return problems


def _given_anchor_problems(config: dict) -> list[str]:
    """``anchors.indices`` and ``anchors.indices_order`` with ``anchors.method`` indices only; the index list
    readable (a file: relative to the working directory), one index per anchor (``anchors.n``); the order a CSV."""
    from platonic.anchor_indices import read_indices

    anchors = config["anchors"]
    if anchors["method"] != "indices":
        return [
            f"anchors.{key} is given but anchors.method is {anchors['method']!r}: set anchors.method: indices to use"
            f" it, or leave anchors.{key} out"
            for key in ("indices", "indices_order")
            if anchors.get(key) is not None
        ]
    if anchors["indices"] is None:
        return [
            "anchors.method is 'indices' but anchors.indices is not given: list the anchor atoms' global indices, or"
            " give the path of a text file of them (one per line)"
        ]
    try:
        indices = read_indices(anchors["indices"])
    except ValueError as err:
        return [f"anchors.indices: {err}"]
    problems = []
    if len(indices) != anchors["n"]:
        problems.append(
            f"anchors.n is {anchors['n']} but anchors.indices gives {len(indices)} anchor atoms: set anchors.n:"
            f" {len(indices)}"
        )
    order = anchors.get("indices_order") or config["dataset"]["path"]
    if Path(order).suffix.lower() != ".csv":
        key = "anchors.indices_order" if anchors.get("indices_order") else "dataset.path (anchors.indices_order null)"
        problems.append(
            f"{key} {order!r} is not a CSV: anchors.indices count the atoms of an MP-20 style CSV (columns cif,"
            " material_id); set anchors.indices_order to the CSV the indices were made on"
        )
    return problems


def _registered_families() -> set[str] | None:
    """The registry's families, or None where the library's dependencies are not installed
    (a bare Snakemake install on a login node; `platonic embed` checks the family there)."""
    try:
        from platonic.models import families
    except ImportError:
        return None
    return set(families())


def _closest(word: str, choices: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)


def _suggestion(word: str, choices: Iterable[str]) -> str:
    close = _closest(word, choices)
    return f" (did you mean {close[0]!r}?)" if close else ""
