# Two commands a new user needs: `make repro` and `make test`. Everything else is for maintainers.
VENV   := .venv
BIN    := $(VENV)/bin
# Two installs, each done once per lock file: what the pipeline needs, then the dev tools on top (tests, linters).
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP     := $(VENV)/.installed-dev
# Stage commands in dvc.yaml call `python`: make it the project's interpreter.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)

# The interpreter that creates .venv: PYTHON if given, else the first of these names that runs and is a supported
# version (a name alone proves nothing: a pyenv shim exists for versions that are not active).
SUPPORTED  := 3.11 3.12 3.13
CANDIDATES := python3.11 python3.12 python3.13 python3
# The lock's reference interpreter: `make lock` resolves for it and above (the locks are universal).
LOCK_PYTHON := 3.11
pyversion = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
find-python = $(firstword $(foreach p,$(CANDIDATES),$(if $(filter $(SUPPORTED),$(call pyversion,$(p))),$(p))))
ifeq ($(origin PYTHON),undefined)
# Searched only when .venv is created, and then once.
PYTHON = $(eval PYTHON := $(call find-python))$(PYTHON)
endif

.DEFAULT_GOAL := help
.PHONY: help venv venv-dev repro test test-fast lint lock dag docs clean-venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: no supported Python found: looked for $(CANDIDATES), needing Python $(SUPPORTED); install one or run 'make PYTHON=/path/to/python3.x ...'" >&2; exit 1; }
	@case "$(call pyversion,$(PYTHON))" in $(subst $() ,|,$(SUPPORTED))) ;; *) echo "error: PYTHON=$(PYTHON) is Python '$(call pyversion,$(PYTHON))', not one of $(SUPPORTED); give one of those: 'make PYTHON=/path/to/python3.x ...'" >&2; exit 1;; esac
	$(PYTHON) -m venv $(VENV)

# Each install is redone whenever its lock file changes: the lock, not whatever resolves today, is the environment.
# pip installs uv (hash-checked, requirements-uv.lock); uv installs the locks, hash-checked as pip would, several
# times faster (parallel downloads and installs; docs/environment.md has the timings). The project itself is
# installed editable by pip from the venv's setuptools, without fetching a build environment.
# --system-certs: uv trusts the system's certificate store, as pip and git do (a TLS proxy's CA included).
UV := $(BIN)/uv pip install --quiet --system-certs --python $(BIN)/python
$(BIN)/uv: requirements-uv.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-uv.lock
	touch $@

$(RUNTIME_STAMP): requirements.lock pyproject.toml | $(BIN)/uv
	$(UV) --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(DEV_STAMP): requirements-dev.lock $(RUNTIME_STAMP)
	$(UV) --require-hashes --no-deps -r requirements-dev.lock
	touch $@

venv: $(RUNTIME_STAMP)  ## create .venv from requirements.lock: what the pipeline needs (done by repro)

venv-dev: $(DEV_STAMP)  ## add the dev tools from requirements-dev.lock (done by test, test-fast, lint)

repro: $(RUNTIME_STAMP)  ## run the pipeline (only stale stages) and print the metrics
	$(BIN)/dvc repro
	@echo
	$(BIN)/dvc metrics show

# The whole suite over the machine's cores (pytest-xdist), a test module at a time per worker (module fixtures are
# made once), in the order collected: the end-to-end modules first, the many short tests fill in at the end. The
# session's short pipeline run is built once and shared by the workers (tests/conftest.py `built_once`).
test: $(DEV_STAMP)  ## run the whole test suite, end-to-end tests included (the 25 slowest listed at the end)
	$(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder --durations=25

test-fast: $(DEV_STAMP)  ## every test not marked slow (no end-to-end runs; about 65 s on two idle cores)
	$(BIN)/python -m pytest -m "not slow" -n auto

lint: $(DEV_STAMP)  ## ruff over src, tests and tools; mypy over the package (CI runs it before the tests)
	$(BIN)/ruff check src tests tools
	$(BIN)/ruff format --check src tests tools
	$(BIN)/mypy

# Both locks are universal (one file for Linux, macOS and Windows, Python $(LOCK_PYTHON) and up) and hash-pinned. The
# dev lock is constrained by the runtime lock, so a package in both has the same version in both. uv keeps the
# versions already in a lock file unless the constraints force a change, so rerunning this changes nothing.
lock: $(DEV_STAMP)  ## re-resolve the lock files from pyproject.toml and the *.in files (maintainers)
	$(BIN)/uv pip compile --quiet requirements-uv.in --generate-hashes --universal --python-version $(LOCK_PYTHON) \
		--no-header -o requirements-uv.lock
	$(BIN)/uv pip compile --quiet pyproject.toml --generate-hashes --universal --python-version $(LOCK_PYTHON) --no-header \
		-o requirements.lock
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --constraint requirements.lock --generate-hashes --universal \
		--python-version $(LOCK_PYTHON) --no-header -o requirements-dev.lock
	$(BIN)/uv pip compile --quiet benchmarks/mlflow.in --generate-hashes --universal --python-version $(LOCK_PYTHON) \
		--no-header -o benchmarks/mlflow.lock

dag: $(RUNTIME_STAMP)  ## print the stage graph
	$(BIN)/dvc dag

docs: $(RUNTIME_STAMP)  ## rewrite the README's stage graph and stage map from dvc.yaml
	$(BIN)/python tools/readme_tables.py

clean-venv:  ## remove .venv
	rm -rf $(VENV)

# Benchmarks (docs/benchmarks.md): measured on the machine that runs them, in a scratch copy of the repository.
.PHONY: bench bench-quick
bench: $(RUNTIME_STAMP)  ## measure pipeline cost and scaling up to 30 years of monthly data (about half an hour); writes reports/benchmarks/
	$(BIN)/python benchmarks/run.py

bench-quick: $(RUNTIME_STAMP)  ## a small smoke run of the benchmarks; writes reports/benchmarks/quick/ (git-ignored)
	$(BIN)/python benchmarks/run.py --quick

# Serving cost (docs/serving.md "Performance"): Predictor.predict in process, then the service on 127.0.0.1 at
# concurrency 1, 8 and 32, in one run, on the package in models/package (after `make repro`).
.PHONY: bench-serve
bench-serve: $(DEV_STAMP)  ## measure scoring in process and over HTTP; writes reports/benchmarks/serve.{json,md}
	$(BIN)/python benchmarks/serve.py

# The same, with `mlflow models serve` of the same fitted pipeline beside it. MLflow lives in a virtualenv of its own,
# .venvs/mlflow, built from benchmarks/mlflow.lock (hash-pinned; about 850 MB), never in the project's environment.
MLFLOW_VENV := .venvs/mlflow
$(MLFLOW_VENV)/.installed: benchmarks/mlflow.lock | $(BIN)/python
	$(BIN)/python -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r benchmarks/mlflow.lock
	touch $@

.PHONY: bench-serve-mlflow
bench-serve-mlflow: $(DEV_STAMP) $(MLFLOW_VENV)/.installed  ## bench-serve and `mlflow models serve` side by side (builds .venvs/mlflow)
	$(BIN)/python benchmarks/serve.py --mlflow $(MLFLOW_VENV)/bin/mlflow

# The HTTP service (docs/serving.md): the package the prod channel holds, or PACKAGE=models/package/model-<hash>
# (STAGE=staging for the other channel); PORT=N instead of $FLIGHTDELAY_PORT or 8000. Ctrl-C stops it.
.PHONY: serve
serve: $(RUNTIME_STAMP)  ## serve a model package over HTTP on 127.0.0.1 (PACKAGE=path or STAGE=prod, PORT=8000)
	$(BIN)/python -m flightdelay serve $(if $(PACKAGE),--package $(PACKAGE),--stage $(or $(STAGE),prod))$(if $(PORT), --port $(PORT))
