#!/usr/bin/env bash
# Make this machine run binaries (and containers) of another architecture under
# qemu-user-static, for building and testing the image of a foreign platform.
#
#   scripts/emulation.sh PLATFORM      e.g. linux/arm64; does nothing for this machine's
#
# Mounts binfmt_misc if needed and registers Debian's qemu-user-static handler with the
# F flag (the interpreter is opened now, so it also works inside containers). Needs root
# the first time; qemu-user-static must be installed (apt-get install qemu-user-static).
set -euo pipefail
cd "$(dirname "$0")/.."

platform="${1:?usage: scripts/emulation.sh PLATFORM}"
log() { echo "emulation.sh: $*" >&2; }
[ "$platform" != "$(scripts/platform.sh)" ] || exit 0
spec="$(scripts/platform.sh "$platform")"
IFS=: read -r _ _ _ qemu_arch <<<"$spec"
handler="/proc/sys/fs/binfmt_misc/qemu-$qemu_arch"

if [ -f "$handler" ] && grep -q '^enabled' "$handler" && grep -q '^flags:.*F' "$handler"; then
  exit 0
fi
conf="/usr/lib/binfmt.d/qemu-$qemu_arch.conf"
[ -f "$conf" ] || { log "qemu-user-static is missing (no $conf): apt-get install qemu-user-static"; exit 1; }
[ "$(id -u)" = 0 ] || { log "registering the qemu-$qemu_arch handler needs root: run 'sudo scripts/emulation.sh $platform' once"; exit 1; }
if [ ! -f /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || {
    log "cannot mount binfmt_misc (a container without privileges?): run this on the host"; exit 1; }
fi
[ -f "$handler" ] && echo -1 > "$handler"  # an old registration without the F flag
grep -v '^#' "$conf" | grep . > /proc/sys/fs/binfmt_misc/register
log "registered qemu-$qemu_arch for $platform binaries"
