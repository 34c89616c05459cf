#!/usr/bin/env python3
"""Set the architecture recorded in a local image's config: docker save, edit, docker load.

    scripts/image-arch.py IMAGE ARCH        e.g. ekuiper-sdk-local/python:3.11-bookworm-arm64 arm64

Why: Docker's classic builder and `docker import` without experimental features record
the engine's own architecture (amd64 here), whatever the files are. An arm64 stand-in
labelled amd64 runs fine under qemu, but the images built from it would be labelled amd64
too and be wrong on a registry or an arm64 machine. Nothing but the config's
``architecture`` changes; the layers are kept byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile


def main(image: str, arch: str) -> int:
    saved = subprocess.run(["docker", "save", image], check=True, capture_output=True).stdout
    source = tarfile.open(fileobj=io.BytesIO(saved))
    [manifest] = json.loads(source.extractfile("manifest.json").read())  # type: ignore[union-attr]
    config = json.loads(source.extractfile(manifest["Config"]).read())  # type: ignore[union-attr]
    if config.get("architecture") == arch:
        return 0
    config["architecture"] = arch
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest["Config"] = config_name
    manifest["RepoTags"] = [image]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as target:
        for member in source.getmembers():
            top_level_json = member.name.endswith(".json") and "/" not in member.name
            if member.name == "repositories" or top_level_json:
                continue  # the old config and manifest are replaced below
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
        for name, data in ((config_name, config_bytes),
                           ("manifest.json", json.dumps([manifest]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    subprocess.run(["docker", "load", "-q"], input=out.getvalue(), check=True,
                   capture_output=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
