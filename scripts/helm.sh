#!/usr/bin/env bash
# Helm v3 and eKuiper's own Helm chart, both from the Go module proxy, for the deploy tests
# and for rendering the chart with deploy/helm/values-slim-python.yaml.
#
#   scripts/helm.sh [VERSION]                  build (or reuse the cached) helm; default
#                                              $HELM_VERSION or v3.22.0; prints its path last
#   scripts/helm.sh chart [EKUIPER_VERSION]    print the directory of eKuiper's chart
#                                              (deploy/chart/ekuiper in the eKuiper Go module,
#                                              default $EKUIPER_VERSION or v2.4.2)
#
# helm is cached under ${XDG_CACHE_HOME:-~/.cache}/ekuiper-sdk/helm/<version>; the chart is
# read where `go mod download` leaves the module (Go's module cache), so nothing is copied.
set -euo pipefail

log() { echo "helm.sh: $*" >&2; }
need_go() {
  command -v go >/dev/null 2>&1 || { log "Go is needed to $1: install Go (https://go.dev/dl) and retry"; exit 1; }
}
# `go mod download -json` of one module; prints the field $2 (Dir, GoMod) of its answer.
module_field() {
  local work
  work="$(mktemp -d)"
  # Outside any go.mod, so the download is the module alone.
  (cd "$work" && GOFLAGS=-mod=mod go mod download -json "$1") \
    | sed -n "s/^[[:space:]]*\"$2\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p"
  rmdir "$work"
}

if [ "${1:-}" = "chart" ]; then
  version="${2:-${EKUIPER_VERSION:-v2.4.2}}"
  case "$version" in v*) ;; *) version="v$version" ;; esac
  case "$version" in
    v1.*) module="github.com/lf-edge/ekuiper@$version" ;;
    *) module="github.com/lf-edge/ekuiper/v2@$version" ;;
  esac
  need_go "download $module"
  dir="$(module_field "$module" Dir)"
  [ -n "$dir" ] && [ -d "$dir" ] || { log "go mod download $module gave no source directory"; exit 1; }
  [ -f "$dir/deploy/chart/ekuiper/Chart.yaml" ] \
    || { log "$module has no deploy/chart/ekuiper; pick an eKuiper version that ships its chart"; exit 1; }
  echo "$dir/deploy/chart/ekuiper"
  exit 0
fi

version="${1:-${HELM_VERSION:-v3.22.0}}"
case "$version" in v3.*) ;; *) log "only helm v3 is supported (got $version)"; exit 1 ;; esac
cache="${EKUIPER_SDK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ekuiper-sdk}/helm/$version"
if [ ! -x "$cache/helm" ]; then
  need_go "build helm $version"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "downloading helm.sh/helm/v3@$version from the Go module proxy"
  gomod="$(module_field "helm.sh/helm/v3@$version" GoMod)"
  [ -f "$gomod" ] || { log "go mod download helm.sh/helm/v3@$version gave no go.mod"; exit 1; }
  # As helm's own Makefile: the Kubernetes version it assumes is client-go's 0.N -> 1.N,
  # otherwise `helm lint` and .Capabilities would claim Kubernetes 1.20.
  minor="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod" | head -1)"
  [ -n "$minor" ] || { log "no k8s.io/client-go in helm's go.mod"; exit 1; }
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags="$ldflags -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$minor"
  done
  log "building helm $version (CGO_ENABLED=0; first build takes a few minutes)"
  (cd "$work" && GOBIN="$work/bin" GOWORK=off CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$version")
  mkdir -p "$cache"
  mv "$work/bin/helm" "$cache/helm"
  log "cached in $cache"
fi
echo "$cache/helm"
