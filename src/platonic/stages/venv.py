"""Stage ``venv``: the virtualenv of a model family that cannot share the project's (``platonic.venvs``)."""

from __future__ import annotations

from typing import Annotated

from platonic.stages.command import command


@command(help="build the virtualenv of a model family that cannot share the project's (recipe envs/venv/<family>.yaml)")
def run(
    family: str,
    prefix: Annotated[str | None, "where (default .venv-<family> in the checkout)"] = None,
    force: Annotated[bool, "rebuild even when it is up to date"] = False,
) -> None:
    """Build (or keep, when current) the virtualenv of ``family`` at ``prefix`` (``platonic.venvs.build``)."""
    from platonic import venvs

    venvs.build(family, prefix, force=force)
