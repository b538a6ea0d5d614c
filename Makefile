# Two commands a new user needs: `make repro` and `make test`. Everything else is for maintainers.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-from-lock
# Stage commands in dvc.yaml call `python`: make it the project's interpreter.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)

.DEFAULT_GOAL := help
.PHONY: help venv repro test test-fast lint lock dag docs clean-venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The virtualenv is rebuilt whenever the lock file changes: the lock, not whatever pip resolves today, is the environment.
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)  ## create .venv from requirements.lock (done automatically by repro and test)

repro: $(STAMP)  ## run the pipeline (only stale stages) and print the metrics
	$(BIN)/dvc repro
	@echo
	$(BIN)/dvc metrics show

test: $(STAMP)  ## run the whole test suite, end-to-end tests included
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## every test not marked slow (no end-to-end runs; under a minute)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)  ## ruff over src, tests and tools; mypy over the package (CI runs it before the tests)
	$(BIN)/ruff check src tests tools
	$(BIN)/ruff format --check src tests tools
	$(BIN)/mypy

lock: $(STAMP)  ## re-resolve requirements.lock from pyproject.toml (maintainers)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --universal --python-version 3.11 --no-header -o requirements.lock

dag: $(STAMP)  ## print the stage graph
	$(BIN)/dvc dag

docs: $(STAMP)  ## rewrite the README's stage graph and stage map from dvc.yaml
	$(BIN)/python tools/readme_tables.py

clean-venv:  ## remove .venv
	rm -rf $(VENV)
