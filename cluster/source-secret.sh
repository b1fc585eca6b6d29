#!/usr/bin/env bash
# The chart's source credentials (Secret lifeboat-source in the release namespace): S3 is the
# SeaweedFS of cluster/s3.sh; the master password is made once per state directory.
set -euo pipefail
source "$(dirname "$0")/common.sh"
RELEASE_NS="${1:-lifeboat}"
DIR="$STATE/lifeboat"
mkdir -p "$DIR"
kc create namespace "$RELEASE_NS" --dry-run=client -o yaml | kc apply -f - >/dev/null
[ -f "$DIR/master" ] || (umask 077; openssl rand -hex 32 >"$DIR/master")
kc -n "$RELEASE_NS" create secret generic lifeboat-source \
  --from-literal=LIFEBOAT_S3_ENDPOINT="http://$NODE_IP:8333" \
  --from-literal=LIFEBOAT_S3_BUCKET=lifeboat \
  --from-literal=LIFEBOAT_S3_PREFIX=e2e \
  --from-literal=AWS_ACCESS_KEY_ID=lifeboat-e2e \
  --from-literal=AWS_SECRET_ACCESS_KEY=lifeboat-e2e-secret \
  --from-literal=RESTIC_MASTER_PASSWORD="$(cat "$DIR/master")" \
  --dry-run=client -o yaml | kc apply -f - >/dev/null
