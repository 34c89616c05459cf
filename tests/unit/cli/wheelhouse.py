"""Hand-made wheels in a local folder, so `pip download` and install.sh run with no network.

A plugin's requirements.txt can say ``--no-index`` and ``--find-links <folder>``: pip then
resolves against this folder only, with the same platform and Python rules as an index.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

HOST_PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
HOST_TAG = f"cp{sys.version_info[0]}{sys.version_info[1]}"


def make_wheel(folder: Path, name: str, version: str = "1.0", tag: str = "py3-none-any",
               requires: tuple[str, ...] = (), module: str | None = None) -> Path:
    """A valid wheel ``name-version-tag.whl`` holding ``<module>.py`` (default: name)."""
    module = module or name
    dist = f"{name}-{version}.dist-info"
    pure = tag.endswith("-none-any")
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{module}.py": f"VERSION = {version!r}\nTAG = {tag!r}\n".encode(),
        f"{dist}/METADATA": metadata.encode(),
        f"{dist}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: "
                          f"{'true' if pure else 'false'}\nTag: {tag}\n").encode(),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel


def binary_tag(machine: str, python: str = HOST_TAG, glibc: str = "2_17") -> str:
    return f"{python}-{python}-manylinux_{glibc}_{machine}"


def offline_requirements(plugin: Path, house: Path, *lines: str) -> None:
    """requirements.txt that resolves against ``house`` only."""
    (plugin / "requirements.txt").write_text(
        f"--no-index\n--find-links {house}\n" + "".join(f"{line}\n" for line in lines))
