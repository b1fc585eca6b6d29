# Lifeboat: two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast lint docs bench bench-admission reliability clean

setup:
	@scripts/setup.sh

demo: setup
	$(BIN)/lifeboat demo

test: setup
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check lifeboat sidecar injector devtools tests bench
	$(BIN)/ruff format --check lifeboat sidecar injector devtools tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# docs/configuration.md is rendered from sidecar/settings.py (a test fails when it is stale)
docs: setup
	$(BIN)/python -m devtools.configdoc

bench: setup
	$(BIN)/python bench/restore.py --mib 200 --small-files 2000 --rounds 3
	$(BIN)/python bench/sidecar_backup.py --mib 200 --small-files 2000 --rounds 3
	$(BIN)/python bench/sidecar_rss.py --volumes 3 --seconds 60
	$(BIN)/python bench/admission_load.py --clients 100 --rate 500 --seconds 20

bench-admission: setup
	$(BIN)/python bench/admission_load.py --clients 100 --rate 500 --seconds 20

# Figures from faults, hostile input and isolation tests (docs/RELIABILITY.md)
reliability: setup
	$(BIN)/python bench/hostile_admission.py --count 10000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# A real one-node Kubernetes from upstream components (cluster/, docs/testing.md). Needs root.
# LIFEBOAT_CLUSTER_TIER=node (default) or control-plane.
.PHONY: cluster-up cluster-down e2e
cluster-up: setup
	cluster/up.sh

cluster-down:
	cluster/down.sh

e2e: setup
	cluster/e2e.sh
