#!/usr/bin/env bash
# Build the slim-python image (`make image` runs this with the Makefile's variables).
#
#   IMAGE=... EKUIPER_IMAGE=... PYTHON_IMAGE=... EKUIPER_VERSION=... scripts/image.sh
#
# Checks that Docker is there and answers, then makes sure both base images exist: a
# local one is used as it is, a missing one is pulled, and where the default base images
# cannot be pulled (no registry reachable) it says so in one line and builds the local
# stand-ins (scripts/base-images.sh, cached) instead. Build args come from the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${IMAGE:?}" "${EKUIPER_IMAGE:?}" "${PYTHON_IMAGE:?}" "${EKUIPER_VERSION:?}"
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

have() { docker image inspect "$1" >/dev/null 2>&1; }
# A registry that cannot be reached fails fast (no such host); one that hangs is cut off.
pull() { timeout "${PULL_TIMEOUT:-120}" docker pull -q "$1" >/dev/null 2>&1; }

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
  standins="$(scripts/base-images.sh "$EKUIPER_VERSION")"
  have "$EKUIPER_IMAGE" || EKUIPER_IMAGE="$(sed -n 's/^EKUIPER_IMAGE=//p' <<<"$standins")"
  have "$PYTHON_IMAGE" || PYTHON_IMAGE="$(sed -n 's/^PYTHON_IMAGE=//p' <<<"$standins")"
fi

log "building $IMAGE from $EKUIPER_IMAGE and $PYTHON_IMAGE"
DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" docker build -f images/Dockerfile.slim-python \
  --build-arg "EKUIPER_IMAGE=$EKUIPER_IMAGE" --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
  --build-arg "EKUIPER_VERSION=${EKUIPER_VERSION#v}" --build-arg "SDK_VERSION=${SDK_VERSION:-unknown}" \
  --build-arg "PYTHON_VERSION=${PYTHON_VERSION:-3.11}" --build-arg "PYNNG_VERSION=${PYNNG_VERSION:-unknown}" \
  -t "$IMAGE" .
