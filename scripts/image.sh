#!/usr/bin/env bash
# Build the slim-python image (`make image` runs this with the Makefile's variables).
#
#   IMAGE=... EKUIPER_IMAGE=... PYTHON_IMAGE=... EKUIPER_VERSION=... [PLATFORM=...] scripts/image.sh
#
# Checks that Docker is there and answers, then makes sure both base images exist for
# PLATFORM (default this machine's; linux/arm64 builds and runs here under
# qemu-user-static, see scripts/emulation.sh): a local one of that architecture is used as
# it is, a missing one is pulled, and where the default base images cannot be pulled (no
# registry reachable) it says so in one line and builds the local stand-ins
# (scripts/base-images.sh, cached) instead. Several platforms at once
# (PLATFORM=linux/amd64,linux/arm64) need buildx and a registry to push to
# (BUILDX_OUTPUT, default --push). Build args come from the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${IMAGE:?}" "${EKUIPER_IMAGE:?}" "${PYTHON_IMAGE:?}" "${EKUIPER_VERSION:?}"
native="$(scripts/platform.sh)"
platform="${PLATFORM:-$native}"
default_ekuiper="lfedge/ekuiper:${EKUIPER_VERSION#v}-slim"
default_python="python:${PYTHON_VERSION:-3.11}-slim-bookworm"
log() { echo "image.sh: $*" >&2; }

command -v docker >/dev/null 2>&1 || {
  log "the docker command is missing: install Docker Engine (Debian/Ubuntu: apt-get install docker.io; elsewhere see Docker's install guide) and retry"
  exit 1
}
if ! out="$(docker info 2>&1 >/dev/null)"; then
  case "$out" in
    *"permission denied"*)
      log "Docker answers 'permission denied': add yourself to the docker group (sudo usermod -aG docker \$USER, then log in again) or run as root" ;;
    *)
      log "no Docker engine answers: start it (sudo systemctl start docker, or dockerd) and retry" ;;
  esac
  exit 1
fi

build_args=(--build-arg "EKUIPER_VERSION=${EKUIPER_VERSION#v}" --build-arg "SDK_VERSION=${SDK_VERSION:-unknown}"
  --build-arg "PYTHON_VERSION=${PYTHON_VERSION:-3.11}" --build-arg "PYNNG_VERSION=${PYNNG_VERSION:-unknown}")

case "$platform" in
  *,*)
    docker buildx version >/dev/null 2>&1 || {
      log "a multi-platform build ($platform) needs docker buildx, which this Docker lacks; build one platform at a time instead: make image PLATFORM=linux/arm64"
      exit 1
    }
    for one in ${platform//,/ }; do scripts/platform.sh "$one" >/dev/null; done
    log "buildx: building $IMAGE for $platform (${BUILDX_OUTPUT:---push})"
    # shellcheck disable=SC2086  # BUILDX_OUTPUT may hold several options
    exec docker buildx build --platform "$platform" ${BUILDX_OUTPUT:---push} -f images/Dockerfile.slim-python \
      --build-arg "EKUIPER_IMAGE=$EKUIPER_IMAGE" --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" "${build_args[@]}" -t "$IMAGE" .
    ;;
esac
spec="$(scripts/platform.sh "$platform")"
IFS=: read -r _ go_arch _ _ <<<"$spec"
[ "$platform" = "$native" ] || scripts/emulation.sh "$platform"

# The image exists here and is of the platform's architecture (one tag holds one).
have() { [ "$(docker image inspect -f '{{.Architecture}}' "$1" 2>/dev/null)" = "$go_arch" ]; }
# A registry that cannot be reached fails fast (no such host); one that hangs is cut off.
pull() { timeout "${PULL_TIMEOUT:-120}" docker pull -q --platform "$platform" "$1" >/dev/null 2>&1 && have "$1"; }

need_standins=0
for image in "$EKUIPER_IMAGE" "$PYTHON_IMAGE"; do
  have "$image" || pull "$image" && continue
  if [ "$image" != "$default_ekuiper" ] && [ "$image" != "$default_python" ]; then
    log "base image $image is neither here nor pullable: pull or build it, or unset the variable to use the defaults"
    exit 1
  fi
  need_standins=1
done
if [ "$need_standins" = 1 ]; then
  log "cannot pull $default_ekuiper / $default_python (no registry reachable?): building local stand-ins with scripts/base-images.sh (cached; first time a few minutes)"
  standins="$(scripts/base-images.sh "$EKUIPER_VERSION" "$platform")"
  have "$EKUIPER_IMAGE" || EKUIPER_IMAGE="$(sed -n 's/^EKUIPER_IMAGE=//p' <<<"$standins")"
  have "$PYTHON_IMAGE" || PYTHON_IMAGE="$(sed -n 's/^PYTHON_IMAGE=//p' <<<"$standins")"
fi

log "building $IMAGE ($platform) from $EKUIPER_IMAGE and $PYTHON_IMAGE"
DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" docker build --platform "$platform" -f images/Dockerfile.slim-python \
  --build-arg "EKUIPER_IMAGE=$EKUIPER_IMAGE" --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" "${build_args[@]}" \
  -t "$IMAGE" .
