# Cairn's developer entry points. `make test` is what CI runs (.ci/run calls it verbatim).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo build images up up-containerd down lint test test-fast clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The package with every extra and the test tools, and the local cluster builder (devtools/), editable.
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./devtools

# The seed example in-process, no cluster: run it, see it fail, re-execute from failure, print the lineage.
demo: install
	$(BIN)/python examples/unreliable.py
	@echo; echo "cairn is in $(VENV)/bin; put it on PATH in this shell with:  . $(VENV)/bin/activate"

# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, helm and kstatus from Go modules
# (cached in ~/.cache/cairn).
build: install
	$(BIN)/cairn dev build

# The images cairn-operator, cairn-step (and the pause image) with buildah, no Docker engine (layers cached).
images: install
	$(BIN)/cairn dev image build

# A local control plane (etcd, Kubernetes, SeaweedFS S3, the node cairn-local) in $CAIRN_DEV_DIR, else
# ~/.local/state/cairn/dev; `source "$(.venv/bin/cairn dev env --path)"` points kubectl and helm at it.
up: build
	$(BIN)/cairn dev up

# The same with the real node cairn-node: kubelet + containerd + runc + CNI (root).
up-containerd: build images
	$(BIN)/cairn dev up --node=containerd

down:
	$(BIN)/cairn dev down

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m cairn_operator.crdgen --check

# Everything CI checks, tier by tier with each tier's time: builds, lint, unit, integration (a real
# local control plane) and end-to-end (the CLI, and real containers: kubelet + containerd, helm install).
TIER := TIER_LOG=$(CURDIR)/.tiers.log ./scripts/tier
test:
	@rm -f .tiers.log
	@$(TIER) install $(MAKE) --no-print-directory install
	@$(TIER) build $(BIN)/cairn dev build
	@$(TIER) images $(BIN)/cairn dev image build
	@$(TIER) lint $(MAKE) --no-print-directory lint
	@$(TIER) unit $(BIN)/pytest tests/unit tests/local
	@$(TIER) integration $(BIN)/pytest tests/integration
	@$(TIER) e2e $(BIN)/pytest --e2e tests/e2e
	@printf '\nTiers:\n'; cat .tiers.log

# Only the tests that need no control plane: a few seconds.
test-fast: install
	$(BIN)/pytest tests/unit tests/local

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
