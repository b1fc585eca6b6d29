#!/usr/bin/env bash
# Restarts only the host-side API forwarder of a running cluster (cluster/up.sh starts it), e.g.
# after its options changed. Only the listener is replaced: connections it already forwards keep
# their own per-connection processes and run to their end; new connections are refused for the
# few milliseconds between the old listener's exit and the new one's bind (clients retry).
set -euo pipefail
source "$(dirname "$0")/common.sh"
if [ -f "$RUN/api-forward.pid" ]; then
  old="$(cat "$RUN/api-forward.pid")"
  if kill -0 "$old" 2>/dev/null; then
    kill -TERM "$old"
    for _ in $(seq 1 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.01; done
  fi
fi
start api-forward "${API_FORWARD[@]}"
wait_for api-forward 10 kc get --raw /readyz
log "api-forward restarted (pid $(cat "$RUN/api-forward.pid")): ${API_FORWARD[*]}"
