#!/usr/bin/env bash
# Installs Lifeboat into the running cluster with the injector as a host process inside the
# cluster's network namespace (the control-plane tier has no kubelet to run its pod).
# From the chart (`helm template`, unchanged): ServiceAccount, RBAC, the empty TLS Secret and the
# MutatingWebhookConfiguration. Instead of the chart's Deployment/Service/PDB: a Service without
# selector whose Endpoints point at $NODE_IP:8443, where `lifeboat injector serve` listens; the
# API server reaches it through --enable-aggregator-routing (endpoint resolution). The injector
# authenticates with a token of the chart's ServiceAccount, so the chart's RBAC is what it gets.
set -euo pipefail
source "$(dirname "$0")/common.sh"
HELM="${HELM:-$REPO/.venv/bin/helm}"
LIFEBOAT="${LIFEBOAT_BIN:-$REPO/.venv/bin/lifeboat}"
RELEASE_NS=lifeboat
NAME=lifeboat-injector
DIR="$STATE/lifeboat"
mkdir -p "$DIR"

[ -x "$HELM" ] && [ -x "$LIFEBOAT" ] || die "run 'make setup' first (helm and lifeboat in .venv)"

log "installing Lifeboat (chart resources + injector host process)"
kc create namespace "$RELEASE_NS" --dry-run=client -o yaml | kc apply -f - >/dev/null
"$HELM" template lifeboat "$REPO/chart" -n "$RELEASE_NS" --kube-version "$K8S_VERSION" >"$DIR/chart.yaml"
python3 - "$DIR/chart.yaml" >"$DIR/chart-host.yaml" <<'PY'
import sys
docs = open(sys.argv[1]).read().split("\n---")
skip = ("kind: Deployment", "kind: Service\n", "kind: PodDisruptionBudget")
print("\n---".join(d for d in docs if not any(s in d + "\n" for s in skip)))
PY
kc apply -f "$DIR/chart-host.yaml" >/dev/null

kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: $NAME, namespace: $RELEASE_NS, labels: {lifeboat.dev/e2e: host-process}}
spec:
  ports:
    - {name: https, port: 443, targetPort: 8443, protocol: TCP}
    - {name: http-metrics, port: 8080, targetPort: 8080, protocol: TCP}
---
apiVersion: v1
kind: Endpoints
metadata: {name: $NAME, namespace: $RELEASE_NS, labels: {lifeboat.dev/e2e: host-process}}
subsets:
  - addresses: [{ip: "$NODE_IP"}]
    ports:
      - {name: https, port: 8443, protocol: TCP}
      - {name: http-metrics, port: 8080, protocol: TCP}
YAML

"$(dirname "$0")/source-secret.sh" "$RELEASE_NS"

token="$(kc -n "$RELEASE_NS" create token "$NAME" --duration=48h)"
python3 - "$DIR/injector.kubeconfig" "$PKI/ca.crt" "$token" <<'PY'
import base64, sys
path, ca, token = sys.argv[1:]
open(path, "w").write(f"""apiVersion: v1
kind: Config
clusters:
- name: lifeboat-e2e
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: {base64.b64encode(open(ca, 'rb').read()).decode()}
users:
- name: injector
  user: {{token: {token}}}
contexts:
- name: injector
  context: {{cluster: lifeboat-e2e, user: injector, namespace: lifeboat}}
current-context: injector
""")
PY
chmod 600 "$DIR/injector.kubeconfig"

if ! running lifeboat-injector; then
  log "starting lifeboat injector on $NODE_IP:8443 (inside $NETNS)"
  start lifeboat-injector "${NS_EXEC[@]}" env -i PATH="$PATH" HOME="$DIR" \
    KUBECONFIG="$DIR/injector.kubeconfig" \
    LIFEBOAT_INJECTOR_NAMESPACE="$RELEASE_NS" \
    LIFEBOAT_INJECTOR_SERVICE_NAME="$NAME" \
    LIFEBOAT_INJECTOR_WEBHOOK_CONFIG_NAME="$NAME" \
    LIFEBOAT_INJECTOR_IMAGE=docker.io/library/lifeboat:dev \
    LIFEBOAT_INJECTOR_IMAGE_PULL_POLICY=Never \
    LIFEBOAT_INJECTOR_RESYNC_SECONDS="${LIFEBOAT_E2E_RESYNC_SECONDS:-10}" \
    LIFEBOAT_INJECTOR_DRAIN_SECONDS=0 \
    "$LIFEBOAT" injector serve
fi
ready() { "${NS_EXEC[@]}" python3 -c "import urllib.request,sys; urllib.request.urlopen('http://$NODE_IP:8080/readyz', timeout=2)"; }
wait_for "lifeboat injector /readyz" 60 ready
has_ca() { [ -n "$(kc get mutatingwebhookconfiguration "$NAME" -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ]; }
wait_for "caBundle patched into the webhook configuration" 60 has_ca
log "Lifeboat installed: webhook $NAME -> $NODE_IP:8443 (log: $LOGS/lifeboat-injector.log)"
