#!/usr/bin/env bash
# Make `docker compose` (the Compose v2 CLI plugin) available, for machines whose Docker
# lacks it. Builds the pinned version from the Go module proxy (cached by version) and
# installs it as ~/.docker/cli-plugins/docker-compose. Does nothing if it already works.
#
#   scripts/compose.sh [VERSION]      (default: $COMPOSE_VERSION or v2.28.1)
set -euo pipefail

version="${1:-${COMPOSE_VERSION:-v2.28.1}}"
log() { echo "compose.sh: $*" >&2; }

if docker compose version >/dev/null 2>&1; then
  docker compose version >&2
  exit 0
fi
cache="${EKUIPER_SDK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ekuiper-sdk}/compose/$version"
if [ ! -x "$cache/docker-compose" ]; then
  command -v go >/dev/null || { log "Go is needed to build Compose $version"; exit 1; }
  work="$(mktemp -d)"
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  log "downloading github.com/docker/compose/v2@$version from the Go module proxy"
  dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/docker/compose/v2@$version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -n "$dir" ] || { log "go mod download gave no source directory"; exit 1; }
  cp -r "$dir" "$work/src"
  chmod -R u+w "$work/src"
  log "building Compose $version (first build takes several minutes)"
  (cd "$work/src" && GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$version" \
    -o "$work/docker-compose" ./cmd)
  mkdir -p "$cache"
  mv "$work/docker-compose" "$cache/docker-compose"
fi
mkdir -p "$HOME/.docker/cli-plugins"
install -m 0755 "$cache/docker-compose" "$HOME/.docker/cli-plugins/docker-compose"
docker compose version >&2
