# Shared settings for cluster/*.sh (sourced). Everything the cluster creates lives under
# $STATE (gitignored .cache/cluster) or in the network namespace $NETNS.
K8S_VERSION="${K8S_VERSION:-1.34.4}"
CACHE="${LIFEBOAT_CACHE:-$HOME/.cache/lifeboat}"
K8S_BIN="$CACHE/kubernetes-$K8S_VERSION"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${LIFEBOAT_CLUSTER_STATE:-$REPO/.cache/cluster}"
PKI="$STATE/pki"
LOGS="$STATE/logs"
RUN="$STATE/run"
NETNS="${LIFEBOAT_NETNS:-lifeboat-e2e}"
# The node's address: on the loopback of $NETNS (never reachable from outside it).
NODE_IP="${LIFEBOAT_NODE_IP:-10.213.0.2}"
NODE_NAME="${LIFEBOAT_NODE_NAME:-lifeboat-node}"
SERVICE_CIDR="10.96.0.0/16"
SERVICE_API_IP="10.96.0.1"
POD_CIDR="10.214.0.0/24"
POD_GATEWAY="10.214.0.1"
# The API server as seen from the host: a loopback forwarder into the namespace.
HOST_API_PORT="${LIFEBOAT_API_PORT:-16443}"
KUBECONFIG_HOST="$STATE/kubeconfig"
# The host-side API forwarder (cluster/up.sh, cluster/api-forward.sh), TCP_NODELAY on both legs.
API_FORWARD=(socat "TCP-LISTEN:$HOST_API_PORT,bind=127.0.0.1,reuseaddr,fork,nodelay"
  "EXEC:nsenter --net=/run/netns/$NETNS -- socat STDIO TCP\:127.0.0.1\:6443\,nodelay")
KUBECTL="$K8S_BIN/kubectl"
# Enter only the network namespace. (`ip netns exec` also makes a mount namespace with a fresh
# /sys, which hides /sys/fs/cgroup: the kubelet then fails with "failed to find cgroup mounts".)
NS_EXEC=(nsenter "--net=/run/netns/$NETNS" --)

log() { printf '[cluster %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

# start NAME CMD...: runs CMD in the background in its own session, logs to $LOGS/NAME.log,
# pid in $RUN/NAME.pid.
start() {
  local name="$1"; shift
  mkdir -p "$LOGS" "$RUN"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# wait_for DESCRIPTION SECONDS CMD...: polls CMD until it succeeds.
wait_for() {
  local what="$1" limit="$2"; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${limit}s (logs: $LOGS)"
    sleep 0.5
  done
}

kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_HOST" "$@"; }
