#!/usr/bin/env bash
# `cluster/s3-ctl.sh stop|start`: the e2e suite's hooks to take the cluster's S3 away and back.
set -euo pipefail
source "$(dirname "$0")/common.sh"
case "${1:-}" in
  stop)
    if running seaweedfs; then
      pid="$(cat "$RUN/seaweedfs.pid")"
      kill -TERM "$pid"
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN/seaweedfs.pid"
    log "S3 stopped" ;;
  start) "$(dirname "$0")/s3.sh" ;;
  *) die "usage: $0 stop|start" ;;
esac
