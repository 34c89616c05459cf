#!/usr/bin/env bash
# One table for the image platforms this project builds, shared by the image scripts.
#
#   scripts/platform.sh              this machine's platform, e.g. linux/amd64
#   scripts/platform.sh PLATFORM     DEBIAN_ARCH:GOARCH:WHEEL_ARCH:QEMU, e.g. arm64:arm64:aarch64:aarch64
set -euo pipefail

if [ $# -eq 0 ]; then
  case "$(uname -m)" in
    x86_64) echo linux/amd64 ;;
    aarch64 | arm64) echo linux/arm64 ;;
    *) echo "platform.sh: this machine ($(uname -m)) is not a platform the image is built for" >&2; exit 1 ;;
  esac
  exit 0
fi
case "$1" in
  linux/amd64) echo amd64:amd64:x86_64:x86_64 ;;
  linux/arm64 | linux/arm64/v8) echo arm64:arm64:aarch64:aarch64 ;;
  *)
    echo "platform.sh: unsupported platform '$1': use linux/amd64 or linux/arm64 (linux/arm/v7 has no pynng or cffi wheels)" >&2
    exit 1 ;;
esac
