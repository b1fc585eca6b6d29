#!/usr/bin/env bash
# Builds the images the node tier runs, with no registry involved:
#  * base images made locally with debootstrap (Debian bookworm) and committed with buildah
#    under the names images/Dockerfile uses: docker.io/library/python:3.11-slim-bookworm
#    (Debian's python3.11 + venv) and docker.io/library/golang:1.26-bookworm (the same rootfs
#    plus this machine's Go toolchain);
#  * docker.io/library/lifeboat:dev from images/Dockerfile, unchanged (`buildah bud --pull=never`);
#  * the pod sandbox image registry.k8s.io/pause:3.10 from cluster/pause/main.go;
# and imports them into containerd's k8s.io namespace. Base images are cached by buildah.
set -euo pipefail
source "$(dirname "$0")/common.sh"
ROOTFS="$CACHE/rootfs-bookworm"
BUILDAH=(buildah --storage-driver overlay)
SOCK="${CONTAINERD_SOCK:-/run/$NETNS/containerd.sock}"
mkdir -p "$STATE/images"

have() { "${BUILDAH[@]}" images --quiet "$1" >/dev/null 2>&1; }

if [ ! -d "$ROOTFS" ]; then
  log "debootstrap bookworm (minbase + python3, python3-venv, ca-certificates), first run only"
  rm -rf "$ROOTFS.tmp"
  nice -n 10 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$ROOTFS.tmp" http://deb.debian.org/debian >"$LOGS/debootstrap.log" 2>&1
  mv "$ROOTFS.tmp" "$ROOTFS"
fi

# Base images trust what this machine trusts: its CA bundle (and pip's config pointing at it)
# are copied in, so RUN steps work behind a TLS-inspecting egress proxy too.
seed_rootfs() {
  cp -a "$ROOTFS/." "$1/"
  cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"
  if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$1/etc/pip.conf"; fi
}
if ! have docker.io/library/python:3.11-slim-bookworm; then
  log "base image python:3.11-slim-bookworm from the debootstrap rootfs"
  c="$("${BUILDAH[@]}" from scratch)"
  m="$("${BUILDAH[@]}" mount "$c")"
  seed_rootfs "$m"
  ln -sf /usr/bin/python3 "$m/usr/local/bin/python"
  "${BUILDAH[@]}" umount "$c" >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$c"
  "${BUILDAH[@]}" commit --quiet "$c" docker.io/library/python:3.11-slim-bookworm >/dev/null
  "${BUILDAH[@]}" rm "$c" >/dev/null
fi
go_minor="$(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')"
if ! have "docker.io/library/golang:$go_minor-bookworm"; then
  log "base image golang:$go_minor-bookworm (rootfs + $(go env GOVERSION) from this machine)"
  c="$("${BUILDAH[@]}" from scratch)"
  m="$("${BUILDAH[@]}" mount "$c")"
  seed_rootfs "$m"
  mkdir -p "$m/usr/local/go"
  cp -a "$(go env GOROOT)/." "$m/usr/local/go/"
  "${BUILDAH[@]}" umount "$c" >/dev/null
  "${BUILDAH[@]}" config --env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env GOPATH=/go --env GOPROXY="$(go env GOPROXY)" --workingdir /go "$c"
  "${BUILDAH[@]}" commit --quiet "$c" "docker.io/library/golang:$go_minor-bookworm" >/dev/null
  "${BUILDAH[@]}" rm "$c" >/dev/null
fi

if ! have registry.k8s.io/pause:3.10; then
  log "pause image"
  (cd "$REPO/cluster/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$STATE/images/pause" main.go)
  c="$("${BUILDAH[@]}" from scratch)"
  "${BUILDAH[@]}" copy "$c" "$STATE/images/pause" /pause >/dev/null
  "${BUILDAH[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$c"
  "${BUILDAH[@]}" commit --quiet "$c" registry.k8s.io/pause:3.10 >/dev/null
  "${BUILDAH[@]}" rm "$c" >/dev/null
fi

# The Lifeboat image, from the Dockerfile as it is. RUN steps reach the package registries (PyPI,
# the Go module proxy) through the host network, like `docker build` would.
log "building docker.io/library/lifeboat:dev from images/Dockerfile (buildah, cached layers)"
start_build=$SECONDS
nice -n 19 "${BUILDAH[@]}" bud --pull=never --layers --network host --isolation chroot \
  -f "$REPO/images/Dockerfile" -t docker.io/library/lifeboat:dev "$REPO" >"$LOGS/image-build.log" 2>&1 \
  || { tail -30 "$LOGS/image-build.log" >&2; die "image build failed (log: $LOGS/image-build.log)"; }
log "lifeboat:dev built in $((SECONDS - start_build)) s"

if [ -S "$SOCK" ]; then
  for image in docker.io/library/lifeboat:dev registry.k8s.io/pause:3.10; do
    archive="$STATE/images/$(echo "$image" | tr '/:' '__').tar"
    rm -f "$archive"
    "${BUILDAH[@]}" push --quiet "$image" "docker-archive:$archive:$image" >/dev/null
    ctr --address "$SOCK" -n k8s.io images import --no-unpack=false "$archive" >/dev/null
    rm -f "$archive"
  done
  log "images imported into containerd (k8s.io)"
fi
