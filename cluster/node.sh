#!/usr/bin/env bash
# The node tier: containerd (CRI) + runc + CNI bridge + kubelet + kube-proxy, all inside $NETNS.
# Pods get addresses from $POD_CIDR on a bridge that exists only inside the namespace.
set -euo pipefail
source "$(dirname "$0")/common.sh"
NODE="$STATE/node"
SOCK="/run/$NETNS/containerd.sock"
KUBELET_ROOT="/var/lib/$NETNS/kubelet"
mkdir -p "$NODE/cni" "$NODE/containerd" "/run/$NETNS" "$KUBELET_ROOT"
for tool in containerd runc ctr iptables conntrack; do
  command -v "$tool" >/dev/null || die "$tool missing: apt-get install containerd runc iptables conntrack containernetworking-plugins"
done
CNI_BIN=/usr/lib/cni
[ -x "$CNI_BIN/bridge" ] || die "CNI plugins missing: apt-get install containernetworking-plugins"

cat >"$NODE/containerd/config.toml" <<TOML
version = 2
root = "/var/lib/$NETNS/containerd"
state = "/run/$NETNS/containerd"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_unprivileged_ports = false
  # This sandbox holds every capability except CAP_SYS_RESOURCE, so no process may lower its
  # oom_score_adj: runc failed on the pause container's -998 with "nsexec: failed to update
  # /proc/self/oom_score_adj: Permission denied" / "can't get final child's PID from pipe: EOF".
  # Restricting to containerd's own score (0) makes negative requests 0, positive ones unchanged.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$NODE/cni"
    max_conf_num = 1
TOML
cat >"$NODE/cni/10-lifeboat.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "lifeboat-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "lbcni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON

if ! running containerd; then
  log "starting containerd $(containerd --version | awk '{print $3}') (socket $SOCK)"
  start containerd "${NS_EXEC[@]}" containerd --config "$NODE/containerd/config.toml"
fi
wait_for containerd 60 ctr --address "$SOCK" version

"$(dirname "$0")/images.sh"

cat >"$NODE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$SOCK
imageServiceEndpoint: unix://$SOCK
clusterDomain: cluster.local
clusterDNS: []
resolvConf: /etc/resolv.conf
failSwapOn: false
serializeImagePulls: false
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 50
# No CAP_SYS_RESOURCE here (see the containerd config above): do not try to lower our own score.
oomScoreAdj: 0
YAML
if ! running kubelet; then
  log "starting kubelet v$K8S_VERSION"
  start kubelet "${NS_EXEC[@]}" "$K8S_BIN/kubelet" \
    --config="$NODE/kubelet.yaml" --kubeconfig="$PKI/kubelet.kubeconfig" \
    --root-dir="$KUBELET_ROOT" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
fi
node_ready() { [ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
wait_for "node $NODE_NAME Ready" 180 node_ready

if ! running kube-proxy; then
  log "starting kube-proxy (iptables, inside $NETNS)"
  start kube-proxy "${NS_EXEC[@]}" "$K8S_BIN/kube-proxy" \
    --kubeconfig="$PKI/kube-proxy.kubeconfig" --hostname-override="$NODE_NAME" \
    --proxy-mode=iptables --cluster-cidr="$POD_CIDR" --bind-address="$NODE_IP" \
    --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 \
    --conntrack-max-per-core=0 --oom-score-adj=0 --v=1
fi
if ! running provisioner; then
  log "starting the hostPath provisioner (default StorageClass lifeboat-local)"
  start provisioner "${NS_EXEC[@]}" "$REPO/.venv/bin/python" "$REPO/cluster/provisioner.py" \
    --kubeconfig "$PKI/admin.kubeconfig" --root "/var/lib/$NETNS/volumes"
fi
has_class() { kc get storageclass lifeboat-local; }
wait_for "StorageClass lifeboat-local" 30 has_class
log "node $NODE_NAME ready"
