#!/usr/bin/env bash
# SeaweedFS (`weed mini`, from the PyPI wheel in .venv) inside $NETNS on $NODE_IP:8333: the S3
# the cluster's Secret points at, reachable from pods (host side of the pod network) and from the
# injector. Its data ($STATE/s3) survives cluster-down, like a real external S3 would survive a
# cluster rebuild; `make cluster-down PURGE=1` removes it.
set -euo pipefail
source "$(dirname "$0")/common.sh"
WEED="${WEED:-$REPO/.venv/bin/weed}"
[ -x "$WEED" ] || die "run 'make setup' first (weed in .venv)"
mkdir -p "$STATE/s3"
if ! running seaweedfs; then
  log "starting SeaweedFS S3 on $NODE_IP:8333 (inside $NETNS)"
  start seaweedfs "${NS_EXEC[@]}" env -i PATH="$PATH" HOME="$STATE/s3" \
    AWS_ACCESS_KEY_ID=lifeboat-e2e AWS_SECRET_ACCESS_KEY=lifeboat-e2e-secret \
    "$WEED" mini -dir="$STATE/s3" -ip="$NODE_IP" -ip.bind="$NODE_IP" \
    -master.telemetry=false -admin.ui=false -s3.port=8333 -s3.port.iceberg=0 -s3.port.lance=0 \
    -bucket=lifeboat
fi
s3_up() { "${NS_EXEC[@]}" python3 -c "import urllib.request; urllib.request.urlopen('http://$NODE_IP:8333/status', timeout=2)"; }
wait_for "SeaweedFS S3" 90 s3_up
