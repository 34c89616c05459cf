#!/usr/bin/env bash
# Produce a kuiperd binary and its etc/ for a pinned eKuiper version, cached by version.
#
#   scripts/kuiperd.sh [VERSION] [GOARCH]   (default: $EKUIPER_VERSION or v2.4.2; this
#                                            machine's architecture)
#
# Prints the cache directory holding bin/kuiperd and etc/ on its last line. Another
# GOARCH (arm64, arm) is cross-compiled (CGO_ENABLED=0) and cached beside the native one.
# Source: the official lfedge/ekuiper:<tag>-slim image when a Docker engine can pull it
# (docker cp), otherwise the module from the Go module proxy, built with `go build`
# in a writable copy (`go install` refuses because eKuiper's go.mod has `replace`).
set -euo pipefail

version="${1:-${EKUIPER_VERSION:-v2.4.2}}"
case "$version" in v*) ;; *) version="v$version" ;; esac
native_arch="$(go env GOARCH 2>/dev/null || true)"
[ -n "$native_arch" ] || case "$(uname -m)" in
  x86_64) native_arch=amd64 ;; aarch64) native_arch=arm64 ;; armv7l) native_arch=arm ;; *) native_arch="$(uname -m)" ;;
esac
arch="${2:-$native_arch}"
cache_root="${EKUIPER_SDK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ekuiper-sdk}"
dest="$cache_root/kuiperd/$version"
[ "$arch" = "$native_arch" ] || dest="$cache_root/kuiperd/$version-linux-$arch"

if [ -x "$dest/bin/kuiperd" ] && [ -f "$dest/etc/kuiper.yaml" ]; then
  echo "$dest"
  exit 0
fi

log() { echo "kuiperd.sh: $*" >&2; }
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
stage="$work/out"
mkdir -p "$stage/bin"

from_image() {
  [ "$arch" = "$native_arch" ] || return 1  # the Go build is the one way to cross-compile
  command -v docker >/dev/null 2>&1 || return 1
  docker info >/dev/null 2>&1 || return 1
  local image="lfedge/ekuiper:${version#v}-slim"
  docker image inspect "$image" >/dev/null 2>&1 || timeout 300 docker pull -q "$image" >/dev/null 2>&1 || return 1
  log "copying kuiperd out of $image"
  local cid
  cid="$(docker create "$image")"
  docker cp "$cid:/kuiper/bin/kuiperd" "$stage/bin/kuiperd" &&
    docker cp "$cid:/kuiper/etc" "$stage/etc"
  local rc=$?
  docker rm -f "$cid" >/dev/null
  return $rc
}

from_go_proxy() {
  command -v go >/dev/null 2>&1 || { log "neither a pullable image nor a Go toolchain: install Go (https://go.dev/dl) and retry"; return 1; }
  local module
  case "$version" in
    v1.*) module="github.com/lf-edge/ekuiper@$version" ;;
    *) module="github.com/lf-edge/ekuiper/v2@$version" ;;
  esac
  log "downloading $module from the Go module proxy"
  local dir
  dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -n "$dir" ] && [ -d "$dir" ] || { log "go mod download $module gave no source directory"; return 1; }
  cp -r "$dir" "$work/src"
  chmod -R u+w "$work/src"
  log "building kuiperd $version for linux/$arch (CGO_ENABLED=0; first build takes several minutes)"
  local pkg="github.com/lf-edge/ekuiper" extra=""
  # v1's parquet-go links to a runtime symbol that Go >= 1.23 hides unless told not to.
  case "$version" in v1.*) extra="-checklinkname=0" ;; *) pkg="$pkg/v2" ;; esac
  # GOARM=7: eKuiper's arm/v7 images target ARMv7 (hardware floating point).
  (cd "$work/src" && GOWORK=off CGO_ENABLED=0 GOOS=linux GOARCH="$arch" GOARM=7 GOFLAGS=-buildvcs=false go build -trimpath \
      -ldflags "-s -w $extra -X $pkg/cmd.Version=$version -X $pkg/cmd.LoadFileType=relative" \
      -o "$stage/bin/kuiperd" ./cmd/kuiperd)
  cp -r "$work/src/etc" "$stage/etc"
  chmod -R u+w "$stage/etc"
}

from_image || from_go_proxy
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$stage" "$dest"
log "cached in $dest"
echo "$dest"
