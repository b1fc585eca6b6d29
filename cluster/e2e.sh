#!/usr/bin/env bash
# `make e2e`: the e2e suite against the cluster of cluster/up.sh, with the hooks only this
# cluster can offer (stop/start S3, rebuild). Extra arguments go to pytest.
# With LIFEBOAT_E2E_KUBECONFIG already set, runs against that cluster and sets no hooks.
set -euo pipefail
source "$(dirname "$0")/common.sh"
if [ -z "${LIFEBOAT_E2E_KUBECONFIG:-}" ]; then
  { [ -f "$KUBECONFIG_HOST" ] && running kube-apiserver && running api-forward; } \
    || die "no cluster running: run 'make cluster-up' first"
  export LIFEBOAT_E2E_KUBECONFIG="$KUBECONFIG_HOST"
  here="$(cd "$(dirname "$0")" && pwd)"
  export LIFEBOAT_E2E_S3_STOP="$here/s3-ctl.sh stop" LIFEBOAT_E2E_S3_START="$here/s3-ctl.sh start"
  tier="$(cat "$STATE/tier" 2>/dev/null || echo control-plane)"
  export LIFEBOAT_E2E_REBUILD="$here/down.sh && LIFEBOAT_CLUSTER_TIER=$tier $here/up.sh"
  export LIFEBOAT_E2E_PULL_POLICY=Never
fi
cd "$REPO"
# test paths given (tests/e2e/test_x.py[::name]): only those; otherwise the whole suite
for arg in "$@"; do case "$arg" in tests/*) exec "$REPO/.venv/bin/pytest" -q -m e2e -p no:cacheprovider --durations=20 "$@";; esac; done
exec "$REPO/.venv/bin/pytest" -q -m e2e -p no:cacheprovider --durations=20 "$@" tests/e2e
