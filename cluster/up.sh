#!/usr/bin/env bash
# `make cluster-up`: a one-node Kubernetes from upstream components inside the network
# namespace $NETNS, reachable from the host only through a loopback forwarder
# (127.0.0.1:$HOST_API_PORT). Kubeconfig: .cache/cluster/kubeconfig.
#
# Tiers (LIFEBOAT_CLUSTER_TIER):
#   control-plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and
#       Lifeboat's injector run as a host process inside the namespace, registered through the
#       chart's own MutatingWebhookConfiguration, RBAC and TLS Secret (cluster/lifeboat-host.sh).
#   node (default): the above plus containerd, runc, CNI, kubelet, kube-proxy and a hostPath
#       provisioner (cluster/node.sh); Lifeboat installed with helm from chart/ (lifeboat-chart.sh).
set -euo pipefail
source "$(dirname "$0")/common.sh"
TIER="${LIFEBOAT_CLUSTER_TIER:-node}"
t0=$SECONDS

[ "$(id -u)" = 0 ] || die "needs root (network namespace, and for the node tier containerd)"
mkdir -p "$STATE"
"$(dirname "$0")/deps.sh"
"$(dirname "$0")/build-kubernetes.sh"
"$(dirname "$0")/pki.sh"
mkdir -p "$LOGS" "$RUN"
echo "$TIER" >"$STATE/tier"

# --- network namespace --------------------------------------------------------------------
if ! ip netns list | grep -qw "$NETNS"; then
  # The node address lives on the namespace's own loopback (this kernel has no dummy links),
  # so nothing outside the namespace can reach it or be reached through it.
  log "creating network namespace $NETNS (node address $NODE_IP on its loopback)"
  ip netns add "$NETNS"
fi
# Idempotent, so a namespace left behind by a killed run is reused as it should be.
ip -n "$NETNS" link set lo up
ip -n "$NETNS" addr replace "$NODE_IP/32" dev lo

# --- etcd ---------------------------------------------------------------------------------
if ! running etcd; then
  log "starting etcd ($(etcd --version | head -1))"
  start etcd "${NS_EXEC[@]}" etcd --name lifeboat-e2e --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster lifeboat-e2e=http://127.0.0.1:2380 \
    --quota-backend-bytes=2147483648 --snapshot-count=10000 --logger=zap
fi
wait_for etcd 60 "${NS_EXEC[@]}" etcdctl --endpoints=http://127.0.0.1:2379 endpoint health

# --- kube-apiserver -----------------------------------------------------------------------
if ! running kube-apiserver; then
  log "starting kube-apiserver v$K8S_VERSION"
  start kube-apiserver "${NS_EXEC[@]}" "$K8S_BIN/kube-apiserver" \
    --advertise-address="$NODE_IP" --bind-address=0.0.0.0 --secure-port=6443 \
    --etcd-servers=http://127.0.0.1:2379 \
    --client-ca-file="$PKI/ca.crt" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --enable-aggregator-routing=true \
    --profiling=false --v=1
fi
# The host-side forwarder: loopback only, one socat per connection entering the namespace.
# `nodelay` (TCP_NODELAY) on both TCP legs: with Nagle's algorithm a response larger than one
# segment waited ~40 ms for the client's delayed ACK (bench/api_forward.py: a 10 KiB pod list
# 48 ms -> 2.4 ms p50). cluster/api-forward.sh restarts only this process on a running cluster.
if ! running api-forward; then
  start api-forward "${API_FORWARD[@]}"
fi
wait_for kube-apiserver 180 kc get --raw /readyz

# --- controller-manager and scheduler -----------------------------------------------------
if ! running kube-controller-manager; then
  log "starting kube-controller-manager"
  start kube-controller-manager "${NS_EXEC[@]}" "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=true \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --controllers='*,bootstrapsigner,tokencleaner' --v=1
fi
if ! running kube-scheduler; then
  log "starting kube-scheduler"
  start kube-scheduler "${NS_EXEC[@]}" "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$PKI/scheduler.kubeconfig" \
    --authentication-kubeconfig="$PKI/scheduler.kubeconfig" \
    --authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --v=1
fi
# The controller-manager creates each namespace's default ServiceAccount: proof it runs.
wait_for "kube-controller-manager (default ServiceAccount)" 120 kc -n default get serviceaccount default
log "control plane ready after $((SECONDS - t0)) s"

"$(dirname "$0")/s3.sh"
if [ "$TIER" = node ]; then
  "$(dirname "$0")/node.sh"
  "$(dirname "$0")/lifeboat-chart.sh"
else
  "$(dirname "$0")/lifeboat-host.sh"
fi
log "cluster-up done in $((SECONDS - t0)) s (tier: $TIER); KUBECONFIG=$KUBECONFIG_HOST"
