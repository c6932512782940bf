"""``platonic`` command line: one subcommand per workflow stage, each calling its ``platonic.stages`` function.

A stage's settings come whole as JSON (``--settings '{"k": 10}'``, what every Snakemake rule passes: its config
section) and/or one flag per setting (``--k 10``), generated from the stage's settings class; what neither gives
takes the schema's default. Paths are arguments of their own.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
import typing

from platonic import process, venvs
from platonic import settings as S
from platonic.stages import (
    align,
    analysis,
    embed,
    fan_in,
    figures,
    ladder,
    layers,
    prediction_failure,
    prepare,
    sensitivity,
    similarity,
)

log = logging.getLogger("platonic")

STORES = {"nargs": "+", "required": True}
CONTROLS = {"nargs": "*", "default": (), "help": "the models that are control representations (config: control)"}
METADATA = {
    "help": "the models' metadata as JSON, {model: {architecture, training_data, control, ...}} (what the"
    " rules pass: model_metadata())"
}
# subcommand -> (help, stage function, {settings argument: class}, path and run-time arguments (flags, argparse kwargs))
COMMANDS: dict[str, tuple] = {
    "prepare": ("parse and validate structures into a structure store", prepare.run, {"settings": S.DatasetSettings},
                [("input", {"help": "MP-20 CSV, extxyz file, CIF or folder of CIFs"}), ("output", {})]),
    "embed": ("embed a structure store with one model", embed.run,
              {"spec": S.ModelSpec, "settings": S.EmbedSettings},
              [("structures", {}), ("output", {}), ("--model", {"required": True, "help": "model name (a preset, or "
               "give --family/--checkpoint)"}), ("--no-progress", {"action": "store_false", "dest": "progress"})]),
    "prefetch": ("load a model once so that its weights are downloaded and cached", embed.prefetch,
                 {"spec": S.ModelSpec, "settings": S.EmbedSettings}, [("output", {}), ("--model", {"required": True})]),
    "anchors": ("choose anchor atoms on a reference model", align.anchors, {"settings": S.AnchorSettings},
                [("output", {}), ("--structures", {"required": True}),
                 ("--embedding", {"required": True, "help": "the reference model's embedding store"}),
                 ("--embeddings", {"nargs": "*", "default": (), "help": "every model's embedding store, read with"
                                   " --candidates common only"})]),
    "project": ("project one model's embeddings onto the anchors", align.project, {},
                [("embedding", {}), ("anchors", {}), ("output", {})]),
    "similarity": ("all metrics for all model pairs, in every space (raw, unit, anchor)", similarity.run,
                   {"settings": S.SimilaritySettings, "dask": S.DaskSettings},
                   [("output", {}), ("table", {}), ("--embeddings", STORES), ("--projections", STORES),
                    ("--anchors", {"required": True}), ("--scheduler", {"help": "dask scheduler address"}),
                    ("--controls", CONTROLS)]),
    "summarise": ("the fan-in's summary of one model (moments, neighbours, resampling), with itself",
                  fan_in.summarise, {"settings": S.SimilaritySettings},
                  [("output", {}), ("--embedding", {"required": True}), ("--projection", {"required": True}),
                   ("--anchors", {"required": True})]),
    "compare-pair": ("every metric for one pair of models, in every space, from their summaries",
                     fan_in.compare_pair, {"settings": S.SimilaritySettings},
                     [("output", {}), ("--embeddings", {"nargs": 2, "required": True}),
                      ("--projections", {"nargs": 2, "required": True}),
                      ("--summaries", {"nargs": 2, "required": True}), ("--anchors", {"required": True})]),
    "gather": ("the similarity store and CSV from every model's summary and every pair's result", fan_in.gather,
               {"settings": S.SimilaritySettings},
               [("output", {}), ("table", {}), ("--summaries", STORES), ("--pairs", {"nargs": "*", "default": ()}),
                ("--anchors", {"required": True}), ("--controls", CONTROLS)]),
    "layers": ("layer x layer similarity of the models whose stores hold several layers (config: layers)",
               layers.run, {"settings": S.SimilaritySettings, "layers": S.LayerSettings},
               [("output", {}), ("table", {}), ("--embeddings", STORES), ("--anchors", {"required": True}),
                ("--heatmaps", {}), ("--depth", {}), ("--also", {"nargs": "*", "default": ()})]),
    "headline": ("the run's headline: agreement within and across families and against the controls",
                similarity.headline, {}, [("similarity", {}), ("table", {}), ("text", {})]),
    "training-vs-architecture": ("similarity of model pairs that share architecture, training data, both or neither",
                                 similarity.training_vs_architecture, {},
                                 [("similarity", {}), ("table", {}), ("--figure", {"required": True}),
                                  ("--metadata", METADATA | {"required": True}), ("--also", {"nargs": "*",
                                  "default": ()})]),
    "atom-modes": ("linear CKA and mutual k-NN with all atoms, unique ones, unique + other-structure neighbours",
                   similarity.atom_modes, {"settings": S.SimilaritySettings},
                   [("table", {}), ("--structures", {"required": True}), ("--embeddings", STORES),
                    ("--projections", STORES), ("--anchors", {"required": True}), ("--controls", CONTROLS)]),
    "protocol-ladder": ("linear CKA and mutual k-NN from the reference study's protocol to platonic's, one choice at"
                        " a time, in every space", ladder.run, {"settings": S.SimilaritySettings},
                        [("table", {}), ("--figure", {"required": True}), ("--structures", {"required": True}),
                         ("--embeddings", STORES), ("--projections", STORES), ("--anchors", {"required": True}),
                         ("--controls", CONTROLS), ("--also", {"nargs": "*", "default": ()})]),
    "anchor-sensitivity": ("the anchor space's headline agreement against the number of anchors and their choice",
                           sensitivity.anchor_sensitivity,
                           {"settings": S.AnchorSensitivitySettings, "selection": S.AnchorSettings,
                            "similarity": S.SimilaritySettings},
                           [("table", {}), ("--structures", {"required": True}), ("--embeddings", STORES),
                            ("--anchors", {"required": True}), ("--figure", {}), ("--also", {"nargs": "*",
                            "default": ()}), ("--controls", CONTROLS)]),
    "figures": ("draw the model x model heatmaps", figures.heatmaps, {},
                [("similarity", {}), ("--out-dir", {}), ("--output", {}), ("--metric", {}),
                 ("--also", {"nargs": "*", "default": (), "choices": ["svg", "pdf"]})]),
    "overview-figure": ("draw one of the multi-model overview figures", figures.overview,
                        {"settings": S.FigureSettings},
                        [("figure", {"choices": figures.OVERVIEW_FIGURES}), ("similarity", {}),
                         ("--output", {"required": True}), ("--also", {"nargs": "*", "default": ()}),
                         ("--embeddings", {"nargs": "*", "default": ()}),
                         ("--projections", {"nargs": "*", "default": ()}), ("--anchors", {}),
                         ("--metadata", METADATA)]),
    "provenance": ("write the report's provenance page (HTML)", figures.provenance, {},
                   [("output", {}), ("--embeddings", STORES), ("--structures", {"required": True}),
                    ("--anchors", {"required": True}), ("--similarity", {"required": True}),
                    ("--parameters", {"help": "JSON file with the run's configuration"})]),
    "transfer": ("zero-shot stitching: heads fitted on one model, scored on every other", analysis.transfer,
                 {"settings": S.TransferSettings},
                 [("output", {}), ("table", {}), ("--structures", {"required": True}), ("--embeddings", STORES),
                  ("--projections", STORES), ("--anchors", {"required": True}), ("--figure", {}),
                  ("--controls", CONTROLS)]),
    "audit": ("where the models disagree in the shared space, and per-element bias", analysis.audit,
              {"settings": S.AuditSettings},
              [("output", {}), ("--projections", STORES), ("--anchors", {"required": True}),
               ("--structures", {"required": True}), ("--elements-table", {"required": True}),
               ("--structures-table", {"required": True}), ("--bias-table", {"required": True}), ("--figure", {}),
               ("--controls", CONTROLS)]),
    "symmetry": ("symmetry-breaking audit: how far each model spreads the copies of one environment",
                 analysis.symmetry, {"settings": S.SymmetrySettings},
                 [("table", {}), ("--flagged-table", {"required": True}), ("--structures", {"required": True}),
                  ("--embeddings", STORES), ("--anchors", {"required": True}), ("--figure", {})]),
    "prediction-failure": ("does disagreement in the shared space flag prediction failures? rank tests with controls",
                           prediction_failure.prediction_failure, {"settings": S.PredictionFailureSettings},
                           [("table", {}), ("--summary-table", {"required": True}),
                            ("--structures", {"required": True}), ("--embeddings", STORES),
                            ("--projections", STORES), ("--anchors", {"required": True}),
                            ("--audit", {"required": True}), ("--symmetry-table", {"required": True}),
                            ("--figure", {}), ("--controls", CONTROLS)]),
    "analogies": ("embedding arithmetic a - b + c on mean element vectors", analysis.analogies,
                  {"settings": S.ArithmeticSettings},
                  [("table", {}), ("--projections", STORES), ("--anchors", {"required": True})]),
    "venv": ("build the virtualenv of a model family that cannot share the project's (recipe envs/venv/<family>.yaml)",
             venvs.build, {},
             [("family", {}), ("--prefix", {"help": "where (default .venv-<family> in the checkout)"}),
              ("--force", {"action": "store_true", "help": "rebuild even when it is up to date"})]),
    "download": ("download a structure file (needs network; used on clusters)", prepare.download, {},
                 [("url", {}), ("output", {})]),
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s platonic %(levelname)s: %(message)s")
    command = args.pop("command")
    if command is None:
        parser.print_help()
        return 2
    try:
        if command == "models":
            _list_models()
            return 0
        _, run, classes, _ = COMMANDS[command]
        for option, cls in classes.items():
            base = json.loads(args.pop(option) or "{}")
            overrides = {f: args.pop(f"{option}.{f}") for f in _fields(cls) if f"{option}.{f}" in args}
            args[option] = cls.from_mapping(base, **overrides)
        process.keep_freed_memory()
        with process.limit_threads(process.job_threads(args.values())):
            run(**args)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        # expected failures (bad input, missing weights, ...) get one clear line, not a traceback
        print(f"platonic {command}: error: {err}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    from platonic import __version__

    parser = argparse.ArgumentParser(prog="platonic", description=__doc__)
    parser.add_argument("--version", action="version", version=f"platonic {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("models", help="list model families and packaged models")
    for name, (help_text, _, classes, arguments) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        for flag, kwargs in arguments:
            p.add_argument(flag, **kwargs)
        taken = {flag for flag, _ in arguments}
        for option, cls in classes.items():
            section = ".".join(k for k in cls.section if k != "*")
            p.add_argument(f"--{option}", help=f"the config section {section} as JSON (what the rules pass)")
            for field, kwargs in _setting_flags(cls).items():
                flag = f"--{field.replace('_', '-')}"
                if flag in taken:  # two sections with one key (layers' and similarity's metrics): --layers-metrics
                    flag = f"--{option}-{field.replace('_', '-')}"
                taken.add(flag)
                p.add_argument(flag, dest=f"{option}.{field}", **kwargs)
    return parser


def _fields(cls) -> list[str]:
    return list(S.field_types(cls))


def _setting_flags(cls) -> dict[str, dict]:
    """argparse keyword arguments of one flag per field of a settings class, typed from its annotation, with
    the schema's description and default as help; a flag not given leaves the field to ``--settings``/the schema."""
    properties = S.section_schema(cls.section)["properties"]
    flags = {}
    for field, hint in S.field_types(cls).items():
        schema = properties[field]
        about = f"{schema.get('description', '')} (default {json.dumps(schema.get('default'))})".replace("%", "%%")
        kwargs = {"default": argparse.SUPPRESS, "metavar": field.upper(), "help": about, "type": _parse_scalar(hint)}
        origin, parts = typing.get_origin(hint), [a for a in typing.get_args(hint) if a is not type(None)]
        if origin in (typing.Union, types.UnionType) and len(parts) == 1:
            origin, parts = typing.get_origin(parts[0]), typing.get_args(parts[0])
        if origin is tuple:
            kwargs.update(nargs="+", type=_parse_scalar(parts[0]))
        elif origin is dict or hint is dict:
            kwargs.update(action=_KeyValues, metavar="KEY=VALUE", type=str)
        flags[field] = kwargs
    return flags


def _parse_scalar(hint):
    """A converter for one command-line word of a field typed ``hint``: ``null`` is None where allowed."""
    parts = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    nullable = type(None) in typing.get_args(hint)

    def convert(word: str):
        if nullable and word == "null":
            return None
        if dict in parts or any(typing.get_origin(p) is dict for p in parts):
            return json.loads(word)  # e.g. one analogy {"a": "Na", "b": "Li", "c": "K"}
        for kind in (int, float):
            if kind in parts:
                try:
                    return kind(word)
                except ValueError:
                    continue
        return word

    return convert


class _KeyValues(argparse.Action):
    """``--options modal=PBE --options seed=0`` -> ``{"modal": "PBE", "seed": "0"}``."""

    def __call__(self, parser, namespace, value, option_string=None):
        key, sep, item = value.partition("=")
        if not sep:
            parser.error(f"{option_string} expects KEY=VALUE, got {value!r}")
        setattr(namespace, self.dest, {**getattr(namespace, self.dest, {}), key: item})


def _list_models() -> None:
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
                print(f"  {'':26s} {describe_model(preset)}")
    print("(training data and fidelity as each package documents them; `source` in platonic.models.PRESETS)")


def describe_model(metadata: dict) -> str:
    """``architecture, trained on A + B (fidelity)`` of a preset or resolved config entry; unknown parts say so."""
    data = metadata.get("training_data")
    trained = "training data unknown" if data is None else "trained on " + " + ".join(data) if data else "no training"
    fidelity = f" ({metadata['fidelity']})" if metadata.get("fidelity") else ""
    return f"{metadata.get('architecture') or 'architecture unknown'}, {trained}{fidelity}"


if __name__ == "__main__":
    raise SystemExit(main())
