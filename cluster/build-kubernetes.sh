#!/usr/bin/env bash
# Builds the Kubernetes components Lifeboat's test cluster needs, from the Go module proxy:
# a throwaway module that requires k8s.io/kubernetes vX.Y.Z and replaces every staging module
# (k8s.io/api, k8s.io/client-go, ...) with its published v0.Y.Z, exactly as k8s.io/kubernetes'
# own go.mod lists them (its `=> ./staging/...` lines are read, not hard-coded).
# Output: $LIFEBOAT_CACHE/kubernetes-<version>/{kube-apiserver,...}; a second run is a no-op.
# The build is niced and single-package-at-a-time so it does not starve a 2-core machine.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.4}"
CACHE="${LIFEBOAT_CACHE:-$HOME/.cache/lifeboat}"
OUT="$CACHE/kubernetes-$K8S_VERSION"
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy)
PARALLEL="${K8S_BUILD_PARALLEL:-1}"

missing=()
for c in "${COMPONENTS[@]}"; do [ -x "$OUT/$c" ] || missing+=("$c"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "kubernetes $K8S_VERSION: cached in $OUT"
  exit 0
fi
command -v go >/dev/null || { echo "build-kubernetes: Go is required" >&2; exit 1; }

minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
staging_version="v0.${K8S_VERSION#*.}"
work="$CACHE/kubernetes-$K8S_VERSION.build"
mkdir -p "$work" "$OUT"
cd "$work"

if [ ! -f go.mod ]; then
  kmod="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    echo "module lifeboat.invalid/kubernetes-build"
    echo
    grep -E '^go [0-9]' "$kmod"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "replace ("
    grep -E '^\s+k8s\.io/[a-z0-9-]+ => \./staging/' "$kmod" \
      | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >go.mod.new
  mv go.mod.new go.mod
  echo "build-kubernetes: go.mod with $(grep -c '=> k8s.io' go.mod) staging replacements (-> $staging_version)"
fi

pkg="k8s.io/component-base/version"
ldflags="-s -w -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

for c in "${missing[@]}"; do
  echo "build-kubernetes: building $c v$K8S_VERSION ($(date -u +%H:%M:%S))"
  start=$SECONDS
  CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false -p=$PARALLEL" \
    nice -n 19 go build -trimpath -ldflags "$ldflags" -o "$OUT/$c.tmp" "k8s.io/kubernetes/cmd/$c"
  mv "$OUT/$c.tmp" "$OUT/$c"
  echo "build-kubernetes: $c built in $((SECONDS - start)) s"
done
"$OUT/kube-apiserver" --version
