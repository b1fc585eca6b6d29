#!/usr/bin/env bash
# The chart's source credentials (Secret lifeboat-source in the release namespace): S3 is the
# SeaweedFS of cluster/s3.sh; the master password is made once and, like S3's data, survives
# cluster-down (a rebuilt cluster must open the old repositories: that is what a user keeps too).
set -euo pipefail
source "$(dirname "$0")/common.sh"
RELEASE_NS="${1:-lifeboat}"
DIR="$STATE/lifeboat"
mkdir -p "$DIR"
kc create namespace "$RELEASE_NS" --dry-run=client -o yaml | kc apply -f - >/dev/null
MASTER="$STATE/master-password"
[ -f "$MASTER" ] || (umask 077; openssl rand -hex 32 >"$MASTER")
kc -n "$RELEASE_NS" create secret generic lifeboat-source \
  --from-literal=LIFEBOAT_S3_ENDPOINT="http://$NODE_IP:8333" \
  --from-literal=LIFEBOAT_S3_BUCKET=lifeboat \
  --from-literal=LIFEBOAT_S3_PREFIX=e2e \
  --from-literal=AWS_ACCESS_KEY_ID=lifeboat-e2e \
  --from-literal=AWS_SECRET_ACCESS_KEY=lifeboat-e2e-secret \
  --from-literal=RESTIC_MASTER_PASSWORD="$(cat "$MASTER")" \
  --dry-run=client -o yaml | kc apply -f - >/dev/null
