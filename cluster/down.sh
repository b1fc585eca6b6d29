#!/usr/bin/env bash
# `make cluster-down`: stops every process cluster-up started (by the pids it recorded), removes
# the network namespace and the cluster's data (etcd included). Certificates and the built
# binaries, S3 data and the master password are kept (a warm start; a rebuild that must restore);
# PURGE=1 removes those too (certificates, S3, master password, containerd images).
set -uo pipefail
source "$(dirname "$0")/common.sh"

stop() {
  local name="$1" pid
  [ -f "$RUN/$name.pid" ] || return 0
  pid="$(cat "$RUN/$name.pid")"
  local t=$SECONDS
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$RUN/$name.pid"
  [ $((SECONDS - t)) -lt 3 ] || log "$name took $((SECONDS - t)) s to stop"
}

[ -x "$(dirname "$0")/node-down.sh" ] && "$(dirname "$0")/node-down.sh"
# Workloads and the node first, then the control plane, etcd last; each group in parallel.
for group in "provisioner lifeboat-injector seaweedfs kube-proxy kubelet containerd" \
  "kube-scheduler kube-controller-manager api-forward" "kube-apiserver" "etcd"; do
  for name in $group; do stop "$name" & done
  wait
done
# Anything else recorded (future components).
for f in "$RUN"/*.pid; do [ -e "$f" ] && stop "$(basename "$f" .pid)"; done
if ip netns list 2>/dev/null | grep -qw "$NETNS"; then
  # Nothing may remain inside the namespace.
  for pid in $(ip netns pids "$NETNS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  ip netns del "$NETNS"
fi
rm -rf "$STATE/etcd" "$STATE/lifeboat" "$STATE/node" "$RUN"
rm -rf "/var/lib/$NETNS/kubelet" "/var/lib/$NETNS/volumes"
if [ "${PURGE:-0}" = 1 ]; then rm -rf "$PKI" "$KUBECONFIG_HOST" "$STATE/s3" "$STATE/master-password" "/var/lib/$NETNS"; fi
log "cluster down"
