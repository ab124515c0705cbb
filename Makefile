# taafs-exp: `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-all study md-study select bench-activations bench-neighbors bench-backbones data-xtb data-emt tables figures md deepmd compare-deepmd

help:  ## List the targets with one line each
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-20s %s\n",$$1,$$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip wheel setuptools
	$(VENV)/bin/pip install torch==2.13.0
	$(VENV)/bin/pip install -e ".[dev,xtb]"
	touch $(STAMP)

install: $(STAMP)  ## Create .venv and install the package (editable, dev extras); skipped when up to date

run: $(STAMP)  ## Train the default experiment (DP + Chebyshev TAAFS on the bundled water) and print test RMSE
	$(PY) run.py

test: $(STAMP)  ## Run the test suite (CPU, fast tests)
	$(PY) -m pytest -m "not slow"

test-all: $(STAMP)  ## Run every test, slow ones included
	$(PY) -m pytest

bench-activations: $(STAMP)  ## Time every basis vs tanh -> results/bench/activations.md
	$(PY) scripts/bench_activations.py

bench-neighbors: $(STAMP)  ## Time neighbour lists on one thread, ASE vs vesin vs ours -> results/bench/neighbors.md
	$(PY) scripts/bench_neighbors.py

bench-backbones: $(STAMP)  ## Time a training step of every backbone, base vs each TAAFS basis -> results/bench/backbones.md
	$(PY) scripts/bench_backbones.py

data-xtb: $(STAMP)  ## Generate the GFN2-xTB organic set -> data/generated/xtb_organic.extxyz
	$(PY) scripts/generate_data.py xtb_organic

data-emt: $(STAMP)  ## Generate the EMT Cu-Ag-Au alloy set -> data/generated/emt_alloy.extxyz
	$(PY) scripts/generate_data.py emt_alloy

STUDY ?= basis_dp
study: $(STAMP)  ## Run or resume one study's sweep (STUDY=basis_dp; conf/experiment/) into results/runs/
	$(PY) run.py -m experiment=$(STUDY) trainer.enable_progress_bar=false

figures: $(STAMP)  ## Draw every figure in results/figures/ from results/runs/ (no training)
	$(PY) scripts/make_figures.py

tables: $(STAMP)  ## Rebuild every RMSE table in results/tables/ from results/runs/ and the basis searches' reports from results/search/ (no training)
	$(PY) scripts/make_tables.py
	@for search in results/search/select_basis/*/*/; do \
	  if test -f $$search/optuna.db; then $(PY) scripts/select_basis.py $$search --seeds '' || exit 1; fi; \
	done

CKPT ?= $(lastword $(sort $(wildcard outputs/train/*/checkpoints/best.ckpt)))
md: $(STAMP)  ## MD validation (NVE/NVT water, drift, RDFs) of CKPT (default: the newest `make run`) -> results/md/
	@test -n "$(CKPT)" || { echo "no checkpoint: run 'make run' first or pass CKPT=<path to best.ckpt>"; exit 2; }
	$(PY) scripts/md_validate.py checkpoint=$(CKPT)

MD_STUDY ?= md_dp
MD_RUNS  ?= *
MD_LONG  ?= nve.steps=20000 nvt.steps=42000 nvt.equilibration_steps=2000 snapshot_interval=40
MD_ARGS  ?=
MD_NAME  ?= $(MD_STUDY)
md-study: $(STAMP)  ## Train (or resume) MD_STUDY, then 21 ps NVT + 10 ps NVE on each of its runs -> results/md/MD_NAME/ (MD_ARGS='repulsion={width_A:0.5}' MD_NAME=md_dp_zbl: with a ZBL floor)
	$(PY) run.py -m experiment=$(MD_STUDY) trainer.enable_progress_bar=false torch_threads=1
	@for run in results/runs/$(MD_STUDY)/*/*/$(MD_RUNS)/; do \
	  name=$(MD_NAME)/$$(basename $$run); \
	  test -f $$run/metrics.json || { echo "$$run: not finished, no MD"; continue; }; \
	  test -f results/md/$$name/report.json && { echo "$$name: MD done"; continue; }; \
	  $(PY) scripts/md_validate.py checkpoint=$$run/checkpoints/last.ckpt name=$$name $(MD_LONG) \
	    $(MD_ARGS) || exit 1; \
	done

SEARCH_MODEL ?= dp_cpu
SEARCH_DATA  ?= water
select: $(STAMP)  ## Basis search (Optuna TPE, pruned trials; resumable), its choice retrained with 3 seeds -> results/tables/select_basis__SEARCH_MODEL__SEARCH_DATA.md
	$(PY) run.py -m hparams_search=select_basis model=$(SEARCH_MODEL) data=$(SEARCH_DATA) \
		trainer.enable_progress_bar=false torch_threads=1
	$(PY) scripts/select_basis.py results/search/select_basis/$(SEARCH_MODEL)/$(SEARCH_DATA)

deepmd: $(STAMP)  ## Install DeePMD-kit 3.2.0 and the dependencies this venv lacks into .deepmd/ (uses this venv's torch)
	$(VENV)/bin/pip install --no-deps --target .deepmd deepmd-kit==3.2.0 dargs==0.5.1 wcmatch==12.0.1 \
		bracex==3.2.3 array-api-compat==1.16.0 ml-dtypes==0.6.0 mendeleev==1.3.0 einops==0.8.2 \
		lmdb==3.0.0 msgpack==1.2.4 mpich==5.0.2 e3nn==0.6.0 opt-einsum==3.4.0 opt-einsum-fx==0.1.4 \
		typeguard==4.6.1 sqlalchemy==2.1.9 greenlet==3.5.6 pyfiglet==0.8.post1 colorama==0.4.6 \
		pint==0.24.4 flexcache==0.3 flexparser==0.4

compare-deepmd: $(STAMP)  ## Train our DP and DeePMD-kit's on water, same recipe -> results/bench/dp_vs_deepmd.md
	$(PY) scripts/compare_deepmd.py
