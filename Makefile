# taafs-exp: `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-all bench-activations bench-neighbors data-xtb data-emt tables md

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

bench-neighbors: $(STAMP)  ## Time our neighbour list vs ASE -> results/bench/neighbors.md
	$(PY) scripts/bench_neighbors.py

data-xtb: $(STAMP)  ## Generate the GFN2-xTB organic set -> data/generated/xtb_organic.extxyz
	$(PY) scripts/generate_data.py xtb_organic

data-emt: $(STAMP)  ## Generate the EMT Cu-Ag-Au alloy set -> data/generated/emt_alloy.extxyz
	$(PY) scripts/generate_data.py emt_alloy

tables: $(STAMP)  ## Rebuild every RMSE table in results/tables/ from results/runs/ (no training)
	$(PY) scripts/make_tables.py

CKPT ?= $(lastword $(sort $(wildcard outputs/train/*/checkpoints/best.ckpt)))
md: $(STAMP)  ## MD validation (NVE/NVT water, drift, RDFs) of CKPT (default: the newest `make run`) -> results/md/
	@test -n "$(CKPT)" || { echo "no checkpoint: run 'make run' first or pass CKPT=<path to best.ckpt>"; exit 2; }
	$(PY) scripts/md_validate.py checkpoint=$(CKPT)
