# Cairn's developer entry points. `make test` is what CI runs (.ci/run calls it verbatim).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo build up down lint test test-fast clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The package with every extra and the test tools, editable.
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'

# The seed example in-process, no cluster: run it, see it fail, re-execute from failure, print the lineage.
demo: install
	$(BIN)/python examples/unreliable.py

# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl from Go modules (cached in ~/.cache/cairn).
build: install
	$(BIN)/cairn dev build

# A local control plane (etcd, Kubernetes, SeaweedFS S3, the node cairn-local) in ~/.local/state/cairn/dev.
up: build
	$(BIN)/cairn dev up

down:
	$(BIN)/cairn dev down

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m cairn_operator.crdgen --check

# Everything CI checks: lint, unit, integration and end-to-end tests on a real local control plane.
test: build lint
	$(BIN)/pytest --e2e

# Only the tests that need no control plane: a few seconds.
test-fast: install
	$(BIN)/pytest tests/unit tests/local

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
