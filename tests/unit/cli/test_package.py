"""ekuiper-plugin package: layout, modes, exclusions, generated install.sh."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest

from ekuiper._cli.package import LAUNCHER, package_plugin
from ekuiper._cli.scaffold import new_plugin


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    return new_plugin(tmp_path, "zp", ["src"], [], ["fn"])


def _descriptor(folder: Path) -> dict:
    return json.loads((folder / f"{folder.name}.json").read_text())


def _zip(folder: Path, tmp_path: Path) -> zipfile.ZipFile:
    out = tmp_path / "out.zip"
    package_plugin(folder, _descriptor(folder), out)
    return zipfile.ZipFile(out)


def test_files_at_zip_root_without_tests_or_caches(plugin: Path, tmp_path: Path) -> None:
    """The descriptor sits at the zip root; tests, caches and old zips are left out."""
    (plugin / "__pycache__").mkdir()
    (plugin / "__pycache__" / "x.pyc").write_bytes(b"")
    (plugin / "old.zip").write_bytes(b"")
    names = sorted(_zip(plugin, tmp_path).namelist())
    assert names == ["functions/fn.json", "requirements.txt", "sources/src.json",
                     "sources/src.yaml", "symbols.py", "zp.json", "zp.py"]


def test_file_modes_are_kept(plugin: Path, tmp_path: Path) -> None:
    """An executable file stays executable in the zip."""
    (plugin / "helper.sh").write_text("#!/bin/sh\n")
    (plugin / "helper.sh").chmod(0o755)
    info = _zip(plugin, tmp_path).getinfo("helper.sh")
    assert stat.S_IMODE(info.external_attr >> 16) == 0o755


def test_requirements_get_install_script_and_launcher(plugin: Path, tmp_path: Path) -> None:
    """With requirements, install.sh fills .deps and the launcher becomes the executable."""
    (plugin / "requirements.txt").write_text("# deps\nsix==1.16.0\n")
    zf = _zip(plugin, tmp_path)
    assert json.loads(zf.read("zp.json"))["executable"] == LAUNCHER
    assert "--target ./.deps" in zf.read("install.sh").decode()
    assert stat.S_IMODE(zf.getinfo("install.sh").external_attr >> 16) == 0o755
    assert "'zp.py'" in zf.read(LAUNCHER).decode()


def test_conda_descriptor_installs_into_its_env(plugin: Path, tmp_path: Path) -> None:
    """A conda descriptor gets an install.sh for its env and keeps its executable."""
    (plugin / "requirements.txt").write_text("six\n")
    descriptor = {**_descriptor(plugin), "virtualEnvType": "conda", "env": "ml"}
    (plugin / "zp.json").write_text(json.dumps(descriptor))
    zf = _zip(plugin, tmp_path)
    assert "conda run -n ml python -m pip install" in zf.read("install.sh").decode()
    assert json.loads(zf.read("zp.json"))["executable"] == "zp.py"
    assert LAUNCHER not in zf.namelist()


def test_comment_only_requirements_add_nothing(plugin: Path, tmp_path: Path) -> None:
    """The scaffold's comment-only requirements.txt does not generate install.sh."""
    assert "install.sh" not in _zip(plugin, tmp_path).namelist()


def test_own_install_script_is_kept(plugin: Path, tmp_path: Path) -> None:
    """A plugin's own install.sh is shipped as is, not replaced."""
    (plugin / "requirements.txt").write_text("six\n")
    (plugin / "install.sh").write_text("echo mine\n")
    zf = _zip(plugin, tmp_path)
    assert zf.read("install.sh") == b"echo mine\n"
    assert json.loads(zf.read("zp.json"))["executable"] == "zp.py"
