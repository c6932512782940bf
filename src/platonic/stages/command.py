"""The registry of commands: a stage function marked ``@command`` is the ``platonic`` subcommand of its name.

A step has one name: its stage function's (``platonic.stages.analysis.symmetry``), or, for a module that holds one
step in ``run``, its module's (``platonic.stages.layers.run``). The command is that name with hyphens
(``compare-pair``), the Snakemake rule the same words with underscores (``compare_pair``). ``platonic.cli`` builds
each command's arguments from its function's signature: a parameter without a default before ``*`` is a
positional argument, one after ``*`` or with a default a ``--flag``; ``Annotated`` metadata of a string is its help.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Literal

COMMANDS: dict[str, Callable] = {}

# parameter types several stages share, each with its help
Controls = Annotated[tuple[str, ...], "the models that are control representations (config: control)"]
Also = Annotated[tuple[Literal["svg", "pdf"], ...], "also write the figure in these formats"]
Metadata = Annotated[
    str,
    "the models' metadata as JSON, {model: {architecture, training_data, control, ...}} (what the rules pass:"
    " model_metadata())",
]


def command(function: Callable | None = None, *, help: str | None = None):
    """Register ``function`` as the subcommand ``command_name(function)``; its help is ``help`` or the first
    paragraph of its docstring. Usable bare (``@command``) or with arguments (``@command(help=...)``)."""

    def register(fn: Callable) -> Callable:
        name = command_name(fn)
        if COMMANDS.get(name, fn) is not fn:
            other = COMMANDS[name]
            raise ValueError(
                f"two stage functions are named {name!r} ({other.__module__}.{other.__qualname__} and"
                f" {fn.__module__}.{fn.__qualname__}); rename one: a step's name is its command's"
            )
        fn.command_help = help or " ".join((inspect.getdoc(fn) or "").split("\n\n", 1)[0].split())
        COMMANDS[name] = fn
        return fn

    return register if function is None else register(function)


def command_name(fn: Callable) -> str:
    """``compare_pair`` -> ``compare-pair``; a module's ``run`` takes the module's name (``stages.layers.run`` ->
    ``layers``)."""
    name = fn.__module__.rsplit(".", 1)[-1] if fn.__name__ == "run" else fn.__name__
    return name.replace("_", "-")
