"""ekuiper-plugin package: layout, modes, exclusions, symlinks, atomic writes, install.sh."""

from __future__ import annotations

import json
import os
import posixpath
import shlex
import stat
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ekuiper._cli import main
from ekuiper._cli.package import (
    CONDA_ENV_RE,
    LAUNCHER,
    PackageError,
    conda_install_script,
    folder_entries,
    package_plugin,
)
from ekuiper._cli.scaffold import new_plugin
from ekuiper._cli.wheels import WheelTarget, parse_platform, parse_python_version
from tests.unit.cli.wheelhouse import HOST_PY, make_wheel, offline_requirements


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


# -- symlinks and hidden files -------------------------------------------------------------

def test_symlink_leaving_folder_is_refused(plugin: Path, tmp_path: Path) -> None:
    """A symlink to a file outside makes package fail naming link and target; no zip."""
    (tmp_path / "secret").write_text("key")
    (plugin / "leak.txt").symlink_to(tmp_path / "secret")
    out = tmp_path / "zp.zip"
    with pytest.raises(PackageError, match=f"zp/leak.txt -> {tmp_path / 'secret'}"):
        package_plugin(plugin, _descriptor(plugin), out)
    assert not out.exists()


def test_symlinked_folder_leaving_is_refused(plugin: Path, tmp_path: Path) -> None:
    """A symlink to a folder outside is refused too, named with its target."""
    (tmp_path / "elsewhere").mkdir()
    (plugin / "lib").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(PackageError, match=f"zp/lib -> {tmp_path / 'elsewhere'}"):
        package_plugin(plugin, _descriptor(plugin), tmp_path / "zp.zip")


def test_symlink_inside_folder_is_packed_as_its_file(plugin: Path, tmp_path: Path) -> None:
    """A symlink to a file of the plugin is packed with that file's content."""
    (plugin / "alias.py").symlink_to(plugin / "symbols.py")
    zf = _zip(plugin, tmp_path)
    assert zf.read("alias.py") == (plugin / "symbols.py").read_bytes()


def test_hidden_files_are_left_out(plugin: Path, tmp_path: Path) -> None:
    """.env, hidden folders, .git and .venv do not go into the zip."""
    (plugin / ".env").write_text("TOKEN=x\n")
    for sub in (".secrets", ".git", ".venv"):
        (plugin / sub).mkdir()
        (plugin / sub / "f").write_text("x")
    names = _zip(plugin, tmp_path).namelist()
    assert not [n for n in names if n.startswith(".")]


def test_hidden_files_can_be_included(plugin: Path, tmp_path: Path) -> None:
    """include_hidden packs hidden files, but still not .git or .venv."""
    (plugin / ".env").write_text("TOKEN=x\n")
    (plugin / ".venv").mkdir()
    (plugin / ".venv" / "f").write_text("x")
    out = tmp_path / "zp.zip"
    names = package_plugin(plugin, _descriptor(plugin), out, include_hidden=True)
    assert ".env" in names and not [n for n in names if n.startswith(".venv")]


# -- the zip is written whole or not at all ------------------------------------------------

def _interrupt_third_member(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the third member of any zip is being written."""
    real_open = zipfile.ZipFile.open
    calls = {"w": 0}

    def open_(self: zipfile.ZipFile, name: object, mode: str = "r", **kw: object) -> object:
        if mode == "w":
            calls["w"] += 1
            if calls["w"] == 3:
                raise KeyboardInterrupt
        return real_open(self, name, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "open", open_)


def test_interrupted_package_leaves_nothing(plugin: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C half way leaves no zip and no temporary file behind."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _interrupt_third_member(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        package_plugin(plugin, _descriptor(plugin), out_dir / "zp.zip")
    assert list(out_dir.iterdir()) == []


def test_interrupted_package_keeps_the_old_zip(plugin: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while replacing a zip leaves the previous zip as it was."""
    out = tmp_path / "zp.zip"
    package_plugin(plugin, _descriptor(plugin), out)
    before = out.read_bytes()
    (plugin / "more.py").write_text("x = 1\n")
    _interrupt_third_member(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        package_plugin(plugin, _descriptor(plugin), out)
    assert out.read_bytes() == before


def test_unwritable_target_is_a_package_error(plugin: Path, tmp_path: Path) -> None:
    """A target in a missing folder is a PackageError naming it."""
    out = tmp_path / "missing" / "zp.zip"
    with pytest.raises(PackageError, match=f"cannot write {out}"):
        package_plugin(plugin, _descriptor(plugin), out)


def test_zip_mode_follows_umask(plugin: Path, tmp_path: Path) -> None:
    """The zip is as readable as any new file (eKuiper may read it as another user)."""
    umask = os.umask(0o022)
    try:
        out = tmp_path / "zp.zip"
        package_plugin(plugin, _descriptor(plugin), out)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_large_file_is_streamed(plugin: Path, tmp_path: Path) -> None:
    """A 48 MiB file is packed without being read into memory whole."""
    big = plugin / "model.bin"
    with big.open("wb") as f:
        f.truncate(48 << 20)
    tracemalloc.start()
    try:
        package_plugin(plugin, _descriptor(plugin), tmp_path / "zp.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    assert zipfile.ZipFile(tmp_path / "zp.zip").getinfo("model.bin").file_size == 48 << 20


# -- the conda environment name ------------------------------------------------------------

def test_conda_env_that_is_shell_code_is_refused(plugin: Path, tmp_path: Path) -> None:
    """A conda env like base$(touch x) is a PackageError, and no install.sh is written."""
    (plugin / "requirements.txt").write_text("six\n")
    descriptor = {**_descriptor(plugin), "virtualEnvType": "conda", "env": "base$(touch x)"}
    with pytest.raises(PackageError, match=r"'base\$\(touch x\)' is not a conda environment"):
        package_plugin(plugin, descriptor, tmp_path / "zp.zip")
    assert not (tmp_path / "zp.zip").exists()


@given(env=st.text() | st.from_regex(CONDA_ENV_RE, fullmatch=True))
def test_conda_env_is_one_shell_word(env: str) -> None:
    """Any env name conda_install_script accepts reaches conda as exactly one word."""
    try:
        script = conda_install_script(env)
    except ValueError:
        return
    [command] = [line for line in script.splitlines() if line.startswith("conda ")]
    assert shlex.split(command)[:4] == ["conda", "run", "-n", env]
    assert "\n" not in env and not env.startswith("-")


# -- --bundle-wheels ------------------------------------------------------------------------

def _one_machine() -> WheelTarget:
    return WheelTarget(parse_python_version(HOST_PY), (parse_platform(os.uname().machine),))


def _offline_plugin(plugin: Path, tmp_path: Path) -> None:
    house = tmp_path / "house"
    make_wheel(house, "purelib")
    offline_requirements(plugin, house, "purelib")


def test_bundled_wheels_are_stored_uncompressed(plugin: Path, tmp_path: Path) -> None:
    """Wheels are zips already: they go in stored, the plugin's own files deflated."""
    _offline_plugin(plugin, tmp_path)
    out = tmp_path / "zp.zip"
    package_plugin(plugin, _descriptor(plugin), out, wheels=_one_machine())
    zf = zipfile.ZipFile(out)
    assert zf.getinfo("wheels/any/purelib-1.0-py3-none-any.whl").compress_type == \
        zipfile.ZIP_STORED
    assert zf.getinfo("symbols.py").compress_type == zipfile.ZIP_DEFLATED


def test_bundling_reports_each_download(plugin: Path, tmp_path: Path) -> None:
    """progress hears of the download for each platform, naming Python and machine."""
    _offline_plugin(plugin, tmp_path)
    heard: list[str] = []
    package_plugin(plugin, _descriptor(plugin), tmp_path / "zp.zip", wheels=_one_machine(),
                   progress=heard.append)
    assert heard == [f"downloading wheels for CPython {HOST_PY} on {os.uname().machine} "
                     "(manylinux, glibc 2.36 or older)"]


def test_bundling_without_requirements_packs_no_wheels(plugin: Path, tmp_path: Path) -> None:
    """The scaffold's comment-only requirements: no wheels/, no install.sh, pip not run."""
    heard: list[str] = []
    names = package_plugin(plugin, _descriptor(plugin), tmp_path / "zp.zip",
                           wheels=_one_machine(), progress=heard.append)
    assert heard == [] and "install.sh" not in names
    assert not [n for n in names if n.startswith("wheels/")]


def test_bundling_refuses_a_conda_descriptor(plugin: Path, tmp_path: Path) -> None:
    """A conda descriptor installs into its env: --bundle-wheels says to drop one or other."""
    (plugin / "requirements.txt").write_text("six\n")
    descriptor = {**_descriptor(plugin), "virtualEnvType": "conda", "env": "ml"}
    with pytest.raises(PackageError, match="runs the plugin in a conda environment"):
        package_plugin(plugin, descriptor, tmp_path / "zp.zip", wheels=_one_machine())
    assert not (tmp_path / "zp.zip").exists()


def test_bundling_refuses_the_plugins_own_install_script(plugin: Path, tmp_path: Path) -> None:
    """An install.sh of the plugin's own would not install the packed wheels: refused."""
    (plugin / "requirements.txt").write_text("six\n")
    (plugin / "install.sh").write_text("echo mine\n")
    with pytest.raises(PackageError, match=r"has an install\.sh of its own"):
        package_plugin(plugin, _descriptor(plugin), tmp_path / "zp.zip", wheels=_one_machine())


def test_bundling_refuses_the_plugins_own_wheels_folder(plugin: Path, tmp_path: Path) -> None:
    """A wheels/ folder in the plugin would mix with the packed one: refused, named."""
    (plugin / "requirements.txt").write_text("six\n")
    (plugin / "wheels").mkdir()
    (plugin / "wheels" / "mine.whl").write_bytes(b"")
    with pytest.raises(PackageError, match=r"zp/wheels/ holds files of its own \(wheels/mine"):
        package_plugin(plugin, _descriptor(plugin), tmp_path / "zp.zip", wheels=_one_machine())


def test_package_command_bundles_wheels(plugin: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`ekuiper-plugin package --bundle-wheels --platform M --python-version X.Y` packs them."""
    _offline_plugin(plugin, tmp_path)
    out = tmp_path / "zp.zip"
    assert main(["package", str(plugin), "-o", str(out), "--bundle-wheels", "--platform",
                 os.uname().machine, "--python-version", HOST_PY]) == 0
    names = zipfile.ZipFile(out).namelist()
    assert f"wheels/{os.uname().machine}/pins.txt" in names
    assert "wheels/any/purelib-1.0-py3-none-any.whl" in names


def test_package_command_refuses_platform_alone(plugin: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--platform without --bundle-wheels exits 1 saying to add it."""
    assert main(["package", str(plugin), "--platform", "x86_64"]) == 1
    assert "add --bundle-wheels" in capsys.readouterr().err


# -- folders eKuiper's installer must find made ------------------------------------------

def _unzip_as_ekuiper_2_4(names: list[str]) -> None:
    """eKuiper 2.4's REST install, in order: a folder entry or a file's own folder is made
    only inside a folder that exists (one level, not all the way); else the install fails."""
    made = {""}
    for name in names:
        folder = name.rstrip("/") if name.endswith("/") else posixpath.dirname(name)
        if folder not in made:
            if posixpath.dirname(folder) not in made:
                raise AssertionError(f"mkdir {folder}: no such file or directory")
            made.add(folder)


@given(st.lists(st.lists(st.sampled_from(["a", "b", "c.py"]), min_size=1, max_size=4)
                .map("/".join), max_size=12))
def test_folder_entries_let_ekuiper_unzip_any_tree(files: list[str]) -> None:
    """With folder_entries first, any set of paths unzips under eKuiper 2.4's rule."""
    _unzip_as_ekuiper_2_4([*folder_entries(files), *files])


def test_files_one_folder_deep_need_no_folder_entry() -> None:
    """sources/x.yaml and the like: no entries (the zips of flat plugins are unchanged)."""
    assert folder_entries(["zp.py", "sources/src.yaml", "functions/fn.json"]) == []


def test_nested_plugin_package_gets_folder_entries(plugin: Path, tmp_path: Path) -> None:
    """A package inside the plugin (lib/sub/mod.py): lib/ comes before its files."""
    (plugin / "lib" / "sub").mkdir(parents=True)
    (plugin / "lib" / "sub" / "mod.py").write_text("X = 1\n")
    names = _zip(plugin, tmp_path).namelist()
    assert names[0] == "lib/" and "lib/sub/mod.py" in names
    _unzip_as_ekuiper_2_4(names)
