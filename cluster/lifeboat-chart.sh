#!/usr/bin/env bash
# Node tier: installs Lifeboat with helm from chart/, as a user would, with the locally built
# image (docker.io/library/lifeboat:dev, never pulled). One replica: the cluster has one node.
set -euo pipefail
source "$(dirname "$0")/common.sh"
HELM="${HELM:-$REPO/.venv/bin/helm}"
[ -x "$HELM" ] || die "run 'make setup' first (helm in .venv)"
"$(dirname "$0")/source-secret.sh" lifeboat
log "helm upgrade --install lifeboat chart/ (image lifeboat:dev, pullPolicy Never)"
"$HELM" --kubeconfig "$KUBECONFIG_HOST" upgrade --install lifeboat "$REPO/chart" -n lifeboat \
  --set replicaCount=1 --set image.repository=docker.io/library/lifeboat --set image.tag=dev \
  --set image.pullPolicy=Never \
  --set controller.resyncSeconds="${LIFEBOAT_E2E_RESYNC_SECONDS:-10}" \
  --wait --timeout 5m >"$LOGS/helm.log" 2>&1 || { cat "$LOGS/helm.log" >&2; die "helm install failed"; }
has_ca() { [ -n "$(kc get mutatingwebhookconfiguration lifeboat-injector -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ]; }
wait_for "caBundle patched into the webhook configuration" 120 has_ca
log "Lifeboat installed by helm: $(kc -n lifeboat get pods -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}')"
