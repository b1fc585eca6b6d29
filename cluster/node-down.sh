#!/usr/bin/env bash
# Node-tier teardown (called by down.sh before the processes are stopped): removes every pod
# sandbox and container so no runc container, shim or mount outlives the cluster.
set -uo pipefail
source "$(dirname "$0")/common.sh"
t0=$SECONDS
SOCK="/run/$NETNS/containerd.sock"
KUBELET_ROOT="/var/lib/$NETNS/kubelet"
# Stop the kubelet first so it does not restart what is being removed.
if [ -f "$RUN/kubelet.pid" ]; then
  kill -TERM "$(cat "$RUN/kubelet.pid")" 2>/dev/null; sleep 1
fi
netns_paths=()
if [ -S "$SOCK" ]; then
  # Pod network namespaces (made by the CRI plugin) and CNI state of our sandboxes, read from
  # their specs before they go: killing tasks with ctr skips the CNI teardown.
  for c in $(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
    path="$(ctr --address "$SOCK" -n k8s.io containers info "$c" 2>/dev/null | python3 -c '
import json, sys
try:
    spec = json.load(sys.stdin)["Spec"]
except Exception:
    sys.exit(0)
for ns in spec.get("linux", {}).get("namespaces", []):
    if ns.get("type") == "network" and ns.get("path", "").startswith("/var/run/netns/cni-"):
        print(ns["path"])
')"
    if [ -n "$path" ]; then
      netns_paths+=("$path")
      rm -f "/var/lib/cni/results/lifeboat-e2e-$c-eth0" "/var/lib/cni/results/cni-loopback-$c-lo"
    fi
  done
  for task in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1
  done
  sleep 1
  for task in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$SOCK" -n k8s.io tasks delete -f "$task" >/dev/null 2>&1
  done
  for c in $(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
    ctr --address "$SOCK" -n k8s.io containers delete "$c" >/dev/null 2>&1
  done
fi
# Shims that belong to this containerd (their command line names its state directory's socket).
for pid in $(pgrep -f "containerd-shim-runc-v2 -namespace k8s.io -address $SOCK" 2>/dev/null); do
  kill -KILL "$pid" 2>/dev/null
done
for path in "${netns_paths[@]}"; do
  ip netns del "$(basename "$path")" 2>/dev/null || { umount "$path" 2>/dev/null; rm -f "$path"; }
done
rm -rf /var/lib/cni/networks/lifeboat-e2e
# Kubelet and containerd mounts of this cluster.
if [ -d "$KUBELET_ROOT" ]; then
  grep -o " $KUBELET_ROOT[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
fi
grep -o " /run/$NETNS[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
grep -o " /var/lib/$NETNS/containerd[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
log "node teardown took $((SECONDS - t0)) s"
exit 0
