#!/usr/bin/env bash
# `make kind-e2e`: the e2e suite on a kind cluster, for anyone with Docker (issue 12 item 8).
#
#   cluster/kind-e2e.sh [all]   up, then test (the default)
#   cluster/kind-e2e.sh up      build kind with Go (cached under ~/.cache/lifeboat/kind-<version>),
#                               create the cluster from kind/cluster.yaml, build the image with
#                               Docker and `kind load` it, start S3 on the host, create the source
#                               Secret, `helm upgrade --install` the chart with kind/values.yaml
#   cluster/kind-e2e.sh test    the e2e suite (tests/e2e) against it; PYTEST_ARGS go to pytest
#   cluster/kind-e2e.sh down    delete the cluster and stop S3 (S3's data and the master stay)
#   cluster/kind-e2e.sh s3-stop | s3-start | rebuild   the suite's hooks (rebuild: delete the
#                               cluster and bring it up again; S3 and the master password survive)
#
# S3 is SeaweedFS (`weed mini` from .venv) on the host, bound to the kind network's gateway, so the
# node's pods reach it and it survives a cluster rebuild as an external store would.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
KIND_VERSION="${KIND_VERSION:-0.33.0}"
CACHE="${LIFEBOAT_CACHE:-$HOME/.cache/lifeboat}"
KIND="$CACHE/kind-$KIND_VERSION/kind"
CONFIG="$REPO/kind/cluster.yaml"
VALUES="$REPO/kind/values.yaml"
NAME="$(sed -n 's/^name: *//p' "$CONFIG")"
STATE="$REPO/.cache/kind"
KUBECONFIG_KIND="$STATE/kubeconfig"
IMAGE="docker.io/library/lifeboat:dev"
WEED="$REPO/.venv/bin/weed"
HELM="$REPO/.venv/bin/helm"
S3_KEY="lifeboat-e2e"
S3_SECRET="lifeboat-e2e-secret"

log() { printf '[kind %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }
kubectl_bin() {
  command -v kubectl 2>/dev/null && return
  ls "$CACHE"/kubernetes-*/kubectl 2>/dev/null | tail -1 | grep . || die "kubectl is needed"
}
kc() { "$(kubectl_bin)" --kubeconfig "$KUBECONFIG_KIND" "$@"; }

build_kind() {
  if [ ! -x "$KIND" ]; then
    command -v go >/dev/null || die "Go is needed to build kind $KIND_VERSION"
    log "building kind $KIND_VERSION with Go (first run only)"
    mkdir -p "$(dirname "$KIND")"
    GOBIN="$(dirname "$KIND")" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install "sigs.k8s.io/kind@v$KIND_VERSION"
  fi
  "$KIND" version | grep -q "kind v$KIND_VERSION" || die "$KIND is not kind $KIND_VERSION"
}

gateway() {  # the kind network's IPv4 gateway: the host as the node's pods see it
  docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' | tr ' ' '\n' | grep -v : | grep . | head -1
}

s3_start() {
  local gw pidfile="$STATE/seaweedfs.pid"
  gw="$(gateway)"
  [ -n "$gw" ] || die "no IPv4 gateway on the docker network 'kind'"
  mkdir -p "$STATE/s3"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return; fi
  [ -x "$WEED" ] || die "run 'make setup' first (weed in .venv)"
  log "starting SeaweedFS S3 on $gw:8333"
  setsid env -i PATH="$PATH" HOME="$STATE/s3" AWS_ACCESS_KEY_ID="$S3_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET" \
    "$WEED" mini -dir="$STATE/s3" -ip="$gw" -ip.bind="$gw" -master.telemetry=false -admin.ui=false \
    -s3.port=8333 -s3.port.iceberg=0 -s3.port.lance=0 -bucket=lifeboat \
    >>"$STATE/seaweedfs.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 180); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://$gw:8333/status', timeout=2)" 2>/dev/null && return
    sleep 0.5
  done
  die "SeaweedFS did not answer on $gw:8333 (log: $STATE/seaweedfs.log)"
}

s3_stop() {
  local pidfile="$STATE/seaweedfs.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill -TERM "$(cat "$pidfile")"
    for _ in $(seq 1 40); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  log "S3 stopped"
}

up() {
  mkdir -p "$STATE"
  build_kind
  docker info >/dev/null 2>&1 || die "Docker is not running (kind needs it): $(docker info 2>&1 | tail -1)"
  if ! "$KIND" get clusters 2>/dev/null | grep -qx "$NAME"; then
    log "kind create cluster ($CONFIG)"
    "$KIND" create cluster --config "$CONFIG" --kubeconfig "$KUBECONFIG_KIND" --wait 180s
  fi
  "$KIND" export kubeconfig --name "$NAME" --kubeconfig "$KUBECONFIG_KIND"
  log "building $IMAGE with Docker and loading it into the node"
  BUILDER=docker "$REPO/images/build.sh" build "$IMAGE"
  "$KIND" load docker-image "$IMAGE" --name "$NAME"
  s3_start
  # the master password: made once, kept across rebuilds, read as docs/credentials.md says
  [ -s "$STATE/master-password" ] || (umask 077; openssl rand -hex 32 | tr -d '\n' >"$STATE/master-password")
  kc create namespace lifeboat --dry-run=client -o yaml | kc apply -f - >/dev/null
  kc -n lifeboat create secret generic lifeboat-source \
    --from-literal=LIFEBOAT_S3_ENDPOINT="http://$(gateway):8333" \
    --from-literal=LIFEBOAT_S3_BUCKET=lifeboat \
    --from-literal=LIFEBOAT_S3_PREFIX=kind \
    --from-literal=AWS_ACCESS_KEY_ID="$S3_KEY" \
    --from-literal=AWS_SECRET_ACCESS_KEY="$S3_SECRET" \
    --from-file=RESTIC_MASTER_PASSWORD="$STATE/master-password" \
    --dry-run=client -o yaml | kc apply -f - >/dev/null
  [ -x "$HELM" ] || die "run 'make setup' first (helm in .venv)"
  log "helm upgrade --install lifeboat chart/ -f kind/values.yaml"
  "$HELM" --kubeconfig "$KUBECONFIG_KIND" upgrade --install lifeboat "$REPO/chart" -n lifeboat \
    -f "$VALUES" --wait --timeout 5m
}

run_tests() {
  cd "$REPO"
  # pod logs live inside the node container: the secrets scan reads them through the API
  LIFEBOAT_E2E_KUBECONFIG="$KUBECONFIG_KIND" \
  LIFEBOAT_E2E_POD_LOGS=/nonexistent \
  LIFEBOAT_E2E_PULL_POLICY=Never \
  LIFEBOAT_E2E_S3_STOP="$0 s3-stop" LIFEBOAT_E2E_S3_START="$0 s3-start" \
  LIFEBOAT_E2E_REBUILD="$0 rebuild" \
    "$REPO/.venv/bin/pytest" -q -m e2e -p no:cacheprovider --durations=20 ${PYTEST_ARGS:-} tests/e2e
}

down() {
  [ -x "$KIND" ] && "$KIND" delete cluster --name "$NAME" || true
  s3_stop
}

case "${1:-all}" in
  all) up; run_tests ;;
  up) up ;;
  test) run_tests ;;
  down) down ;;
  s3-start) s3_start ;;
  s3-stop) s3_stop ;;
  rebuild) "$KIND" delete cluster --name "$NAME"; up ;;
  *) die "usage: $0 [all|up|test|down|s3-start|s3-stop|rebuild]" ;;
esac
