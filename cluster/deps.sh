#!/usr/bin/env bash
# Installs the Debian packages the cluster needs, once (a new machine has none of them).
# Services are not started by the packages here (policy-rc.d); cluster/ starts its own.
set -euo pipefail
source "$(dirname "$0")/common.sh"
declare -A need=(
  [etcd]=etcd-server [etcdctl]=etcd-client [socat]=socat [openssl]=openssl [nsenter]=util-linux
  [containerd]=containerd [runc]=runc [iptables]=iptables [conntrack]=conntrack
  [buildah]=buildah [debootstrap]=debootstrap
)
missing=()
for tool in "${!need[@]}"; do command -v "$tool" >/dev/null || missing+=("${need[$tool]}"); done
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >"$STATE/apt.log" 2>&1 \
    || { tail -20 "$STATE/apt.log" >&2; die "apt-get install failed"; }
fi
