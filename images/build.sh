#!/usr/bin/env bash
# `make image` / `make image-push`: builds images/Dockerfile with whichever builder this machine
# has (buildah, else docker, else podman) and pushes it. The tag defaults to the project's
# version (pyproject.toml), which is also the chart's appVersion, so a release publishes
#   $IMAGE_REPOSITORY:<version>   (default repository ghcr.io/lifeboat-dev/lifeboat)
# and the chart of the same version pulls exactly that.
#   images/build.sh build [IMAGE]     build (and tag) IMAGE
#   images/build.sh push  [IMAGE]     push IMAGE to its registry (log in first)
#   images/build.sh print [IMAGE]     print the image reference that would be built
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml" | head -1)"
IMAGE="${2:-${IMAGE:-${IMAGE_REPOSITORY:-ghcr.io/lifeboat-dev/lifeboat}:$VERSION}}"
BUILDER="${BUILDER:-}"
if [ -z "$BUILDER" ]; then
  for candidate in buildah docker podman; do
    if command -v "$candidate" >/dev/null 2>&1; then BUILDER="$candidate"; break; fi
  done
fi
[ -n "$BUILDER" ] || { echo "images/build.sh: needs buildah, docker or podman" >&2; exit 69; }

case "${1:-build}" in
  print) echo "$IMAGE" ;;
  build)
    echo "images/build.sh: building $IMAGE with $BUILDER" >&2
    case "$BUILDER" in
      buildah)
        # chroot isolation and the host network work inside containers and unprivileged CI too
        buildah ${BUILDAH_STORAGE_DRIVER:+--storage-driver "$BUILDAH_STORAGE_DRIVER"} bud --layers \
          --network host --isolation chroot -f "$REPO/images/Dockerfile" -t "$IMAGE" "$REPO" ;;
      *) "$BUILDER" build -f "$REPO/images/Dockerfile" -t "$IMAGE" "$REPO" ;;
    esac ;;
  push)
    case "$BUILDER" in
      buildah) buildah ${BUILDAH_STORAGE_DRIVER:+--storage-driver "$BUILDAH_STORAGE_DRIVER"} push "$IMAGE" "docker://$IMAGE" ;;
      *) "$BUILDER" push "$IMAGE" ;;
    esac ;;
  *) echo "usage: images/build.sh build|push|print [IMAGE]" >&2; exit 64 ;;
esac
