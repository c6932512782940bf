"""Conda env files cannot be built here (no conda channels); check what can be checked."""

from pathlib import Path

import pytest
import yaml

from platonic.models import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))


def _pinned(requirements) -> dict[str, str]:
    """``{package: version}`` of the ``package==version`` items of a list of pip requirements."""
    return dict(r.split("==", 1) for r in requirements if isinstance(r, str) and "==" in r)


def _extra_pins(extra: str) -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")
    return _pinned(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][extra])


# the families whose extra pins their model package: their conda env must pin the same version
MLIP_FAMILIES = sorted(
    name for name, family in FAMILIES.items() if family.extra and family.package in _extra_pins(family.extra)
)


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.stem)
def test_env_uses_conda_forge_only_and_pins_python(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    deps = env["dependencies"]
    assert "python=3.11" in deps
    for name in ("numpy", "xarray", "dask", "ase", "pyyaml", "jsonschema", "threadpoolctl"):  # what the library imports
        assert any(isinstance(d, str) and d.split("=")[0].split(">")[0].strip() == name for d in deps), name


@pytest.mark.parametrize("family", MLIP_FAMILIES)
def test_model_env_pins_its_mlip_package_as_its_extra_does_and_torch(family):
    descriptor = FAMILIES[family]
    env = yaml.safe_load((ROOT / descriptor.env_file).read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    version = _extra_pins(descriptor.extra)[descriptor.package]
    assert f"{descriptor.package}=={version}" in pip
    assert any(p.startswith("torch==") for p in pip)
    assert "pip" in env["dependencies"]


def test_every_family_and_configured_model_has_an_env():
    envs = {family.env_file for family in FAMILIES.values()}
    for config in (ROOT / "config").glob("*.yaml"):  # an overlay (config/phonons.yaml) configures no models
        models = yaml.safe_load(config.read_text()).get("models", {})
        envs |= {FAMILIES[m["family"]].env_file for m in models.values()}
    for env in envs:
        assert (ROOT / env).is_file(), env
