#!/usr/bin/env bash
# Fill build/wheelhouse with what the slim-python image installs, so `docker build` needs
# no network: the SDK wheel built from this checkout, and the hash-locked dependencies
# (images/requirements.lock) for the image's Python and platform.
#
#   scripts/wheelhouse.sh [PYTHON_VERSION] [PLATFORM]
#       PYTHON_VERSION default 3.11 (the Python of Debian bookworm),
#       PLATFORM default this machine's (linux/amd64, linux/arm64)
set -euo pipefail
cd "$(dirname "$0")/.."

py_version="${1:-3.11}"
spec="$(scripts/platform.sh "${2:-$(scripts/platform.sh)}")"
IFS=: read -r _ _ arch _ <<<"$spec"
python="${PYTHON:-python3}"
out=build/wheelhouse
rm -rf "$out"
mkdir -p "$out"

# SOURCE_DATE_EPOCH makes the SDK wheel byte-identical for one commit.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 315532800)}"
"$python" -m pip wheel -q --no-deps -w "$out" ./sdk
"$python" -m pip download -q --require-hashes -r images/requirements.lock -d "$out" \
  --only-binary :all: --implementation cp --python-version "$py_version" \
  --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" \
  --platform "manylinux2014_$arch"
ls "$out"
