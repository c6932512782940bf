"""``platonic`` command line: one subcommand per workflow step, each calling its stage function.

A step has one name: the stage function's (``platonic.stages.analysis.symmetry``; a module's ``run`` takes the
module's name, ``platonic.stages.layers.run``), the command's (the same words with hyphens: ``platonic
compare-pair``) and the Snakemake rule's (with underscores: ``rule compare_pair``). Each command's arguments come
from its function's signature (``platonic.stages.command``): a parameter without a default before ``*`` is a
positional argument; one after ``*`` or with a default is a ``--flag`` (required where it has no default);
``list``/``tuple`` take several words, ``bool`` is a switch, ``Literal`` gives the choices, and ``Annotated[...,
"help"]`` the help. A settings class's parameter comes whole as JSON (``--settings '{"k": 10}'``, what every
Snakemake rule passes: its config section) and/or one flag per setting (``--k 10``), generated from the class;
what neither gives takes the schema's default.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import pkgutil
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path

from platonic import process, stages
from platonic import settings as S
from platonic.stages.command import COMMANDS, command
from platonic.store import GivenPath, StoreError

log = logging.getLogger("platonic")


def main(argv: list[str] | None = None) -> int:
    """Run one command; an expected failure (``ERRORS``: a missing or wrong store, a bad setting, bad input, a
    model that cannot load) is one line ``platonic <command>: error: ...`` on stderr and exit status 2, as
    argparse answers a wrong command line. Any other exception is a bug and keeps its traceback."""
    parser = _parser()
    namespace, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's parser, which names the command and its help
        _subparser(parser, namespace.command).error(f"unrecognized arguments: {' '.join(extra)}")
    args = vars(namespace)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s platonic %(levelname)s: %(message)s")
    name = args.pop("command")
    if name is None:
        parser.print_help()
        return 2
    run = COMMANDS[name]
    given = dict(args)
    try:
        for option, cls in _settings_parameters(run).items():
            base = _settings_json(option, args.pop(option))
            overrides = {f: args.pop(f"{option}.{f}") for f in _fields(cls) if f"{option}.{f}" in args}
            try:
                args[option] = cls.from_mapping(base, **overrides)
            except ValueError as err:
                raise ArgumentError(f"{_setting_arguments(parser, name, option, overrides, err)}: {err}") from err
        args = _given_paths(run, args)
        process.keep_freed_memory()
        with process.limit_threads(process.job_threads(args.values())):
            run(**args)
    except ERRORS as err:
        print(f"platonic {name}: error: {_one_line(err, run, given)}", file=sys.stderr)
        return 2
    return 0


class ArgumentError(ValueError):
    """A command-line value the command cannot use; its message names the argument."""


# the failures a command reports in one line (StoreError, ModelError: RuntimeError; ConfigError, StructureError:
# ValueError); the stages raise ValueError for input they cannot use, with what to do
ERRORS = (StoreError, ValueError, RuntimeError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


def _settings_json(option: str, text: str | None) -> dict:
    """The JSON of a settings argument (``--settings '{"k": 10}'``), or an error naming it."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as err:
        raise ArgumentError(f"argument --{option}: not JSON ({err}): {text!r}") from err
    if not isinstance(value, dict):
        raise ArgumentError(f"argument --{option}: expected a JSON object (a config section), got {text!r}")
    return value


def _setting_arguments(parser, name: str, option: str, overrides: dict, err: ValueError) -> str:
    """``argument --k`` where the settings error ``err`` is about a setting given by its flag, else ``argument
    --settings`` (the JSON of ``option``)."""
    sub = _subparser(parser, name)
    flags = {a.dest: a.option_strings[0] for a in sub._actions if a.option_strings}
    section = ".".join(k for k in _settings_parameters(COMMANDS[name])[option].section if k != "*")
    problems = [line for line in str(err).splitlines() if line.strip().startswith(f"- {section}.")] or [str(err)]
    named = [flags[f"{option}.{field}"] for field in overrides if f"{section}.{field}:" in str(err)]
    if len(named) < len(problems):  # a problem with no flag of its own: the JSON (or a key neither gives)
        named.insert(0, f"--{option}")
    return f"argument{'s' if len(named) > 1 else ''} {', '.join(named)}"


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser:
    """The parser of the command ``name`` (``parser`` itself for None)."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return commands[name] if name else parser


def _one_line(err: BaseException, function: Callable, args: dict) -> str:
    """The message of ``err`` on one line, led by the arguments that gave the paths it is about (a store error's
    ``paths``, a missing file's ``filename``), as argparse names an argument."""
    lines = [line.strip().removeprefix("- ") for line in str(err).splitlines() if line.strip()]
    message = " ".join(lines[:1] + ["; ".join(lines[1:])]).strip()
    paths = getattr(err, "paths", None) or ([err.filename] if getattr(err, "filename", None) else [])
    if isinstance(err, json.JSONDecodeError):  # a JSON argument a stage parses (--metadata, --analogies)
        message, paths = f"not JSON ({message}): {err.doc!r}", [err.doc]
    named = list(
        getattr(err, "arguments", None) or dict.fromkeys(a for p in paths for a in _arguments_of(p, function, args))
    )
    if not named:
        return message
    return f"argument{'s' if len(named) > 1 else ''} {', '.join(named)}: {message}"


def _given_paths(function: Callable, args: dict) -> dict:
    """``args`` with each word of a path or string parameter a ``GivenPath`` that knows its argument's name."""
    given = dict(args)
    for param, hint in _parameters(function):
        value, name = args.get(param.name), _argument_name(param)
        if hint is None:
            continue
        if isinstance(value, str):
            given[param.name] = GivenPath(value, name)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            given[param.name] = type(value)(GivenPath(v, name) for v in value)
    return given


def _argument_name(param: inspect.Parameter) -> str:
    """How argparse names the argument of ``param``: ``--anchors``, or a positional's own name."""
    positional = param.default is inspect.Parameter.empty and param.kind in (
        param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD,
    )  # fmt: skip
    return param.name if positional else f"--{param.name.replace('_', '-')}"


def _arguments_of(path: str, function: Callable, args: dict) -> list[str]:
    """The arguments of ``function`` (``--anchors``, or a positional's name) whose value in ``args`` is ``path``."""
    found = []
    for param, hint in _parameters(function):
        value = args.get(param.name)
        values = value if isinstance(value, (list, tuple)) else [value]
        if hint is not None and any(isinstance(v, (str, Path)) and _same_path(v, path) for v in values):
            found.append(_argument_name(param))
    return found


def _same_path(a: str | Path, b: str | Path) -> bool:
    return str(a) == str(b) or Path(a).absolute() == Path(b).absolute()


def commands() -> dict[str, Callable]:
    """``{command: stage function}`` of every ``@command`` in ``platonic.stages`` (importing them registers them)."""
    for module in pkgutil.iter_modules(stages.__path__):
        importlib.import_module(f"{stages.__name__}.{module.name}")
    return dict(sorted(COMMANDS.items()))


def _parser() -> argparse.ArgumentParser:
    from platonic import __version__

    parser = _ArgumentParser(prog="platonic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"platonic {__version__}")
    sub = parser.add_subparsers(dest="command")
    for name, function in commands().items():
        add_arguments(sub.add_parser(name, help=function.command_help, description=function.command_help), function)
    return parser


class _ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, its usage errors on one line (a command's usage lists every setting flag: its help
    shows them) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_arguments(parser: argparse.ArgumentParser, function: Callable) -> None:
    """The arguments of ``function``'s parameters (see the module's docstring), then one flag per field of each
    settings class; a field whose flag is taken gets its parameter's name in front (``--layers-metrics``)."""
    taken = {_add_parameter(parser, function, param, hint) for param, hint in _parameters(function) if hint}
    for option, cls in _settings_parameters(function).items():
        section = ".".join(k for k in cls.section if k != "*")
        parser.add_argument(f"--{option}", help=f"the config section {section} as JSON (what the rules pass)")
        for field, kwargs in _setting_flags(cls).items():
            flag = f"--{field.replace('_', '-')}"
            if flag in taken:  # two sections with one key (layers' and similarity's metrics): --layers-metrics
                flag = f"--{option}-{field.replace('_', '-')}"
            taken.add(flag)
            parser.add_argument(flag, dest=f"{option}.{field}", **kwargs)


def _parameters(function: Callable) -> list[tuple[inspect.Parameter, typing.Any]]:
    """``(parameter, type with its Annotated metadata)`` of ``function``; the type is None for a settings class."""
    hints = typing.get_type_hints(function, include_extras=True)
    found = []
    for param in inspect.signature(function).parameters.values():
        if param.name not in hints:
            raise TypeError(f"{function.__qualname__}: parameter {param.name!r} needs a type for the command line")
        hint = hints[param.name]
        found.append((param, None if _settings_class(hint) else hint))
    return found


def _settings_parameters(function: Callable) -> dict[str, type[S.Settings]]:
    """``{parameter: settings class}`` of ``function``'s settings parameters."""
    hints = typing.get_type_hints(function)
    return {name: hints[name] for name in inspect.signature(function).parameters if _settings_class(hints[name])}


def _settings_class(hint) -> bool:
    return isinstance(hint, type) and issubclass(hint, S.Settings)


def _add_parameter(parser: argparse.ArgumentParser, function: Callable, param: inspect.Parameter, hint) -> str:
    """Add the argument of one parameter (see the module's docstring); return its flag, or its name if positional."""
    kwargs = {}
    base = _without_none(hint)
    if typing.get_origin(base) is typing.Annotated:
        base, *metadata = typing.get_args(base)
        base = _without_none(base)
        kwargs["help"] = " ".join(m for m in metadata if isinstance(m, str)).replace("%", "%%") or None
    required = param.default is inspect.Parameter.empty
    positional = required and param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
    flag = f"--{param.name.replace('_', '-')}"
    if base is bool:
        if positional:
            raise TypeError(f"{function.__qualname__}: the switch {param.name!r} needs a default or to follow '*'")
        on = not required and param.default is True  # a switch on by default is turned off by --no-<name>
        flag = f"--no-{param.name.replace('_', '-')}" if on else flag
        parser.add_argument(flag, dest=param.name, action="store_false" if on else "store_true", **kwargs)
        return flag
    if typing.get_origin(base) in (tuple, list):
        items = typing.get_args(base) or (str, ...)
        fixed = typing.get_origin(base) is tuple and items[-1] is not Ellipsis
        kwargs["nargs"] = len(items) if fixed else "+" if required else "*"
        base = items[0]
    if typing.get_origin(base) is typing.Literal:
        kwargs["choices"] = typing.get_args(base)
    elif base not in (str, Path):
        raise TypeError(f"{function.__qualname__}: the command line cannot parse {param.name!r} of type {hint}")
    if positional:
        parser.add_argument(param.name, **kwargs)
        return param.name
    parser.add_argument(flag, dest=param.name, required=required, **({} if required else {"default": param.default}),
                        **kwargs)  # fmt: skip
    return flag


def _without_none(hint):
    """``X | None`` -> ``X``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(parts) == 1:
            return parts[0]
    return hint


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


@command(help="list model families and packaged models")
def models() -> None:
    """The model families and every preset, with what each package documents about it."""
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
