"""Per-family virtualenvs (platonic.venvs): the recipes, how a build runs, when it is kept, and how the workflow
picks them."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from platonic import venvs
from platonic.models import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / venvs.RECIPES).glob("*.yaml"))
OWN_VENV = sorted(name for name, family in FAMILIES.items() if family.own_venv)  # the registry says which


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_pins_the_same_mlip_package_as_the_family_conda_env(path):
    steps = venvs.read_recipe(path.stem, ROOT)
    pinned = {p for step in steps for p in step.packages if "==" in p}
    conda = yaml.safe_load((ROOT / "envs" / f"{path.stem}.yaml").read_text())
    conda_pip = {p for d in conda["dependencies"] if isinstance(d, dict) for p in d["pip"] if "==" in p}
    shared = {p.split("==")[0] for p in pinned} & {p.split("==")[0] for p in conda_pip}
    assert shared, f"{path.stem}: the recipe and envs/{path.stem}.yaml pin no package in common"
    assert {p for p in pinned if p.split("==")[0] in shared} == {p for p in conda_pip if p.split("==")[0] in shared}
    # torch comes from the project's own environment, never from a recipe (a CUDA build would replace the CPU wheel)
    assert not any(p.split("=")[0].split("<")[0].split(">")[0] == "torch" for s in steps for p in s.packages)


def test_families_with_a_recipe_are_those_that_cannot_share_the_project_venv():
    assert [p.stem for p in RECIPES] == OWN_VENV
    assert not venvs.has_recipe("chgnet", ROOT)


@pytest.mark.parametrize(
    "text, message",
    [
        ("steps: []\n", "non-empty list 'steps'"),
        ("steps:\n  - packages: []\n", "step 1 must have a non-empty list 'packages'"),
        ("steps:\n  - packages: [a]\n  - packages: [b]\n    pip_opts: [--no-deps]\n", "step 2 .*unknown keys"),
    ],
)
def test_a_bad_recipe_is_rejected_naming_the_step(tmp_path, text, message):
    (tmp_path / venvs.RECIPES).mkdir(parents=True)
    (tmp_path / venvs.RECIPES / "x.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        venvs.read_recipe("x", tmp_path)


def test_a_family_without_a_recipe_names_those_that_have_one():
    with pytest.raises(ValueError, match=f"families with one: {', '.join(OWN_VENV)}\\."):
        venvs.read_recipe("chgnet", ROOT)


@pytest.fixture
def project(tmp_path):
    """A checkout with one recipe of two steps."""
    (tmp_path / venvs.RECIPES).mkdir(parents=True)
    (tmp_path / venvs.RECIPES / "fam.yaml").write_text(
        "steps:\n  - packages: [a==1, b]\n    pip_options: [--no-build-isolation]\n"
        "  - packages: [c==2]\n    pip_options: [--no-deps]\n    why: c declares what it does not need\n"
    )
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return tmp_path


@pytest.fixture
def pip_calls(monkeypatch):
    """Record pip's command lines instead of running them (and create the venv without pip); ``fail_at`` makes
    that call fail."""
    calls, state = [], {"fail_at": None}
    monkeypatch.setattr(venvs.venv, "EnvBuilder", lambda **kw: type("B", (), {"create": lambda self, p: None})())

    def run(command, check):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1 if len(calls) == state["fail_at"] else 0)

    monkeypatch.setattr(venvs.subprocess, "run", run)
    return calls, state


def test_build_installs_torch_then_the_project_then_the_steps_in_order(project, pip_calls, tmp_path):
    calls, _ = pip_calls
    prefix = tmp_path / "venv"
    prefix.mkdir()
    python = venvs.build("fam", prefix, project)
    assert python == prefix / "bin" / "python"
    torch = venvs.torch_requirement()
    assert [c[3:] for c in calls] == [
        ["install", "--quiet", "--no-compile", torch],
        ["install", "--quiet", "--no-compile", "-e", str(project.resolve()), "pytest"],
        ["install", "--quiet", "--no-compile", "--no-build-isolation", "a==1", "b"],
        ["install", "--quiet", "--no-compile", "--no-deps", "c==2"],
    ]
    assert all(c[:3] == [str(python), "-m", "pip"] for c in calls)
    stamp = json.loads((prefix / venvs.STAMP).read_text())
    assert stamp["fingerprint"] == venvs.fingerprint("fam", project) and stamp["torch"] == torch
    # current: kept as it is
    venvs.build("fam", prefix, project)
    assert len(calls) == 4
    # a changed recipe (or pyproject.toml) rebuilds it
    (project / venvs.RECIPES / "fam.yaml").write_text("steps:\n  - packages: [d]\n")
    venvs.build("fam", prefix, project)
    assert len(calls) == 7 and calls[-1][5:] == ["--no-compile", "d"]


def test_a_failed_step_names_it_and_leaves_no_stamp(project, pip_calls, tmp_path):
    calls, state = pip_calls
    prefix = tmp_path / "venv"
    prefix.mkdir()
    (prefix / venvs.STAMP).write_text("{}")
    state["fail_at"] = 3
    with pytest.raises(RuntimeError, match=r"failed at step 3 \(pip install --no-compile --no-build-isolation a==1 b"):
        venvs.build("fam", prefix, project)
    assert len(calls) == 3 and not (prefix / venvs.STAMP).exists()


def test_fingerprint_follows_recipe_and_pyproject(project):
    before = venvs.fingerprint("fam", project)
    (project / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    assert venvs.fingerprint("fam", project) != before
