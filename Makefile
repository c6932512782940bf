# platonic: `make run` (set up + run the default study), `make test` (set up + run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# what the tests need besides (matgl, mattersim, pytest, linters, the reference implementations)
DEV_STAMP := $(VENV)/.installed-dev
# jobs find `python -m platonic` and snakemake in the project's virtualenv
WITH_VENV := PATH="$(BIN):$$PATH"

# families that cannot share .venv (their descriptor says own_venv; today mace, orb, hienet) get a virtualenv of their
# own, .venv-<family>, built by `platonic venv <family>` from its recipe envs/venv/<family>.yaml (the workflow builds
# the ones a study needs the same way, so `make run` needs no case per family); it is rebuilt only when its recipe,
# torch or pyproject.toml change. The list is that of the recipes, so a new family adds none here (and it is known
# before any virtualenv exists); tests/test_families.py checks that it is the registry's.
MODEL_VENVS := $(sort $(basename $(notdir $(wildcard envs/venv/*.yaml))))

# the virtualenvs install with --no-compile, so a module is compiled the first time a job imports it; that job must
# be able to write its bytecode cache, or every job of the run compiles every module it imports again (about 3 s of
# CPU per job, 6 minutes of a default study's 134 jobs), which PYTHONDONTWRITEBYTECODE in the caller's environment
# would cause
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup setup-dev run screen phonons report test test-fast $(addprefix test-,$(MODEL_VENVS)) browser clean

setup: $(STAMP)

# torch first, from its pinned CPU wheel, so that nothing pulls a multi-GB CUDA build; then what the default study
# runs (make run); --no-compile: each job compiles only the modules it imports, once, instead of pip compiling every
# file at install (a fresh .venv builds in about 1 minute instead of 2); the test-only packages come with setup-dev, and so does umap-learn: the shared-space figure
# draws PCA panels without it (its UMAP panels cost the default study two minutes)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-compile torch==2.13.0
	$(BIN)/pip install --quiet --no-compile -e ".[chgnet,sevenn,diep,soap,element,workflow,phonons]"
	touch $(STAMP)

setup-dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --no-compile -e ".[chgnet,sevenn,matgl,diep,soap,element,umap,workflow,phonons,dev]"
	# MatterSim declares torchvision/torchaudio, which cannot load beside the CPU torch wheel, and its
	# model code needs neither: install it without them (envs/mattersim.yaml has the full set)
	$(BIN)/pip install --quiet --no-compile --no-deps mattersim==1.2.3
	$(BIN)/pip install --quiet --no-compile "torch_runstats>=0.2.0" "torch-ema>=0.3" loguru opt_einsum_fx deprecated
	# scikit-matter (the reference GFRE that tests/test_wide_estimators.py checks against) declares
	# scikit-learn<1.9; the ridge and metrics it is checked with run on the scikit-learn installed here (1.9)
	$(BIN)/pip install --quiet --no-compile --no-deps skmatter==0.4.1
	touch $(DEV_STAMP)

run: setup
	$(WITH_VENV) snakemake --profile profiles/default
	$(MAKE) report

# screen new structures against the finished study: make screen SCREEN=data/mp20_sample/val.csv
screen: setup
	$(WITH_VENV) snakemake --profile profiles/default screen $(if $(SCREEN),--config 'screen={structures: $(SCREEN)}')

# the default study with the phonon comparison laid over it (config/phonons.yaml): its jobs where the study is not
# finished yet, then the phonons' (README, "Phonons"); the report then has a Phonons section
PHONONS := --configfile config/config.yaml config/phonons.yaml
phonons: setup
	$(WITH_VENV) snakemake --profile profiles/default $(PHONONS)
	$(WITH_VENV) snakemake --profile profiles/default $(PHONONS) --report results/report.html

report: setup
	$(WITH_VENV) snakemake --profile profiles/default --report results/report.html
	@echo "figures: results/figures/   report: results/report.html"

$(addprefix test-,$(MODEL_VENVS)): test-%: setup
	$(BIN)/python -m platonic venv $*
	.venv-$*/bin/python -m pytest tests/test_models_$*.py

# the report is checked in a real headless browser (tests/test_workflow.py); Debian's chromium, installed when this
# runs as root with apt, otherwise that test is skipped with the reason
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		  (apt-get install -y -qq chromium >/dev/null 2>&1 || \
		   (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) ; } || \
		echo "chromium not installed (needs root and apt-get): the headless-browser check of the report is skipped"

# the tests run on every core (pytest-xdist), a module's tests on one worker so that its fixtures are built once;
# TEST_WORKERS=1 runs them in one process
TEST_WORKERS ?= auto
PYTEST := python -m pytest -n $(TEST_WORKERS) --dist loadfile
test: setup-dev $(addprefix test-,$(MODEL_VENVS)) browser
	$(WITH_VENV) $(PYTEST)
	$(WITH_VENV) snakemake --lint
	$(WITH_VENV) snakefmt --check .
	$(WITH_VENV) ruff check src tests benchmarks
	$(WITH_VENV) ruff format --check src tests benchmarks

# the unit tests: no model virtualenvs, no full workflow runs, nothing marked slow (under 3 minutes on 2 cores)
test-fast: setup-dev
	$(WITH_VENV) $(PYTEST) -m "not slow"

clean:
	rm -rf results .snakemake
