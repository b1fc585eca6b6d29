# Lifeboat: two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast lint docs bench bench-admission reliability clean

setup:
	@scripts/setup.sh

demo: setup
	$(BIN)/lifeboat demo

# Four workers (pytest-xdist), one test file each at a time: the suite mostly waits on restic, S3
# and child processes, so it overlaps well even on 2 cores. Each worker has its own S3 servers.
test: setup
	$(BIN)/pytest -q -n 4 --dist loadfile

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check lifeboat sidecar injector ctl devtools tests bench
	$(BIN)/ruff format --check lifeboat sidecar injector ctl devtools tests bench
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

# Through the real kube-apiserver of `make cluster-up` (root: enters its network namespace);
# also the host-side forwarder's round trips (docs/BENCHMARKS.md)
.PHONY: bench-cluster
bench-cluster: setup
	$(BIN)/python bench/admission_cluster.py --creates 400 --concurrency 16
	$(BIN)/python bench/api_forward.py --rounds 50

# Figures from faults, hostile input and isolation tests (docs/RELIABILITY.md). Store faults and
# kill -9 sweeps run their quick sizes (~50 min on 2 cores); RELIABILITY_FULL=1 runs the full ones
# (3-minute outages; 50 kills per phase on 20,000 files / 500 MiB: many hours).
reliability: setup
	$(BIN)/python bench/hostile_admission.py --count 10000
	$(BIN)/python bench/faults.py $(if $(RELIABILITY_FULL),,--quick)
	$(BIN)/python bench/crash_sweep.py $(if $(RELIABILITY_FULL),--files 20000 --mib 500 --points 50,--quick)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Release artefacts (docs/install.md). One version, pyproject.toml's: the image tag, the chart's
# version and appVersion. IMAGE_REPOSITORY=registry.example.net/you/lifeboat to publish elsewhere.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml | head -1)
IMAGE_REPOSITORY ?= ghcr.io/lifeboat-dev/lifeboat
IMAGE ?= $(IMAGE_REPOSITORY):$(VERSION)
.PHONY: image image-push chart-version chart-package
image:
	images/build.sh build $(IMAGE)

image-push:
	images/build.sh push $(IMAGE)

# Writes pyproject's version into chart/Chart.yaml (a test fails when they differ).
chart-version:
	sed -i -E 's/^version: .*/version: $(VERSION)/; s/^appVersion: .*/appVersion: "$(VERSION)"/' chart/Chart.yaml

chart-package: chart-version setup
	$(BIN)/helm package chart -d dist

# A real one-node Kubernetes from upstream components (cluster/, docs/testing.md). Needs root.
# LIFEBOAT_CLUSTER_TIER=node (default) or control-plane.
.PHONY: cluster-up cluster-down e2e
cluster-up: setup
	cluster/up.sh

cluster-down:
	cluster/down.sh

e2e: setup
	cluster/e2e.sh

# The same e2e suite on a kind cluster, for anyone with Docker: kind built with Go (cached by
# version), the image built with Docker and loaded into the node, the chart installed with
# kind/values.yaml (cluster/kind-e2e.sh; `kind-down` deletes the cluster, S3's data stays).
.PHONY: kind-e2e kind-down
kind-e2e: setup
	cluster/kind-e2e.sh all

kind-down:
	cluster/kind-e2e.sh down
