#!/usr/bin/env bash
# Build local stand-ins for the two registry images images/Dockerfile.slim-python starts
# from, for machines that cannot pull (CI here). A user with a registry does not need this.
#
#   PYTHON_IMAGE   ekuiper-sdk-local/python:3.11-bookworm[-<arch>]
#                  Debian bookworm (debootstrap minbase) with python3, python3-venv, libatomic1
#   EKUIPER_IMAGE  ekuiper-sdk-local/ekuiper:<version>-slim[-<arch>]
#                  that base plus /kuiper laid out as in lfedge/ekuiper:<version>-slim,
#                  around the kuiperd built by scripts/kuiperd.sh
#
#   scripts/base-images.sh [EKUIPER_VERSION] [PLATFORM]   prints PYTHON_IMAGE=... EKUIPER_IMAGE=...
# PLATFORM: linux/amd64 or linux/arm64 (default: this machine's). A foreign one is built
# with debootstrap under qemu-user-static (scripts/emulation.sh sets that up) and a
# cross-compiled kuiperd; its tags end in -<arch>.
# Needs root (debootstrap) and a running Docker engine. The rootfs is cached by name.
set -euo pipefail
cd "$(dirname "$0")/.."

version="${1:-${EKUIPER_VERSION:-v2.4.2}}"
case "$version" in v*) ;; *) version="v$version" ;; esac
native="$(scripts/platform.sh)"
platform="${2:-$native}"
spec="$(scripts/platform.sh "$platform")"
IFS=: read -r deb_arch go_arch _ _ <<<"$spec"
suffix=""
[ "$platform" = "$native" ] || suffix="-${deb_arch}"
cache="${EKUIPER_SDK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ekuiper-sdk}/images"
python_image="ekuiper-sdk-local/python:3.11-bookworm${suffix}"
ekuiper_image="ekuiper-sdk-local/ekuiper:${version#v}-slim${suffix}"
log() { echo "base-images.sh: $*" >&2; }

docker info >/dev/null 2>&1 || { log "no Docker engine answers; start dockerd first"; exit 1; }
[ -z "$suffix" ] || scripts/emulation.sh "$platform" >&2

if ! docker image inspect "$python_image" >/dev/null 2>&1; then
  rootfs="$cache/bookworm-python-rootfs${suffix}.tar"
  if [ ! -s "$rootfs" ]; then
    command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }
    [ "$(id -u)" = 0 ] || { log "debootstrap needs root: run 'sudo make local-bases' once (the result is cached), then make image again"; exit 1; }
    work="$(mktemp -d)"
    log "debootstrap bookworm $deb_arch (minbase + python3) into $work"
    # libatomic1: pynng's aarch64 wheel links it.
    debootstrap --arch="$deb_arch" --variant=minbase --include=python3,python3-venv,libatomic1 bookworm "$work/root" >&2
    rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
    mkdir -p "$cache"
    tar -C "$work/root" -cf "$rootfs.tmp" .
    mv "$rootfs.tmp" "$rootfs"
    rm -rf "$work"
  fi
  log "importing $python_image"
  docker import --platform "$platform" \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' "$rootfs" "$python_image" >/dev/null
fi
# `docker import` records the engine's architecture without experimental features.
if [ "$(docker image inspect -f '{{.Architecture}}' "$python_image")" != "$go_arch" ]; then
  python3 scripts/image-arch.py "$python_image" "$go_arch"
fi

if ! docker image inspect "$ekuiper_image" >/dev/null 2>&1; then
  dist="$(scripts/kuiperd.sh "$version" "$go_arch" | tail -n 1)"
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT  # the build context holds a copy of kuiperd
  mkdir -p "$ctx/kuiper/bin" "$ctx/kuiper/data" "$ctx/kuiper/log" \
    "$ctx/kuiper/plugins/"{portable,sources,sinks,functions,wasm}
  cp "$dist/bin/kuiperd" "$ctx/kuiper/bin/"
  cp -r "$dist/etc" "$ctx/kuiper/etc"
  cp images/Dockerfile.ekuiper-standin "$ctx/Dockerfile"
  log "building $ekuiper_image"
  DOCKER_BUILDKIT=0 docker build -q --platform "$platform" --build-arg "BASE_IMAGE=$python_image" \
    -t "$ekuiper_image" "$ctx" >/dev/null
fi

echo "PYTHON_IMAGE=$python_image"
echo "EKUIPER_IMAGE=$ekuiper_image"
