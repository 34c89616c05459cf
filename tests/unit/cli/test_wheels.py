"""--bundle-wheels: platforms and tags, wheel names, pins, pip's errors, install.sh.

pip runs for real here, against a local folder of hand-made wheels (no network); the
generated install.sh runs under /bin/sh with this Python.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ekuiper._cli.package import LAUNCHER, PackageError, package_plugin
from ekuiper._cli.scaffold import new_plugin
from ekuiper._cli.wheels import (
    DEFAULT_TARGET,
    Platform,
    WheelFile,
    WheelTarget,
    add_wheel_arguments,
    install_script,
    layout,
    missing_wheel,
    parse_platform,
    parse_python_version,
    pins_text,
    pip_download_command,
    platform_tags,
    target_from_args,
)
from tests.pip_trap import PipTrap
from tests.unit.cli.wheelhouse import (
    HOST_PY,
    HOST_TAG,
    binary_tag,
    make_wheel,
    offline_requirements,
)

HOST = parse_python_version(HOST_PY)
MACHINE = os.uname().machine
BOTH = (Platform("x86_64"), Platform("aarch64"))


# -- platforms and tags -------------------------------------------------------------------

def test_default_target_is_the_image() -> None:
    """Without options: CPython 3.11 on x86_64 and aarch64, glibc 2.36 (Debian bookworm)."""
    assert DEFAULT_TARGET == WheelTarget((3, 11), (Platform("x86_64", (2, 36)),
                                                   Platform("aarch64", (2, 36))))


def test_x86_64_tags_run_from_the_glibc_down_to_manylinux1() -> None:
    """x86_64 accepts every manylinux_2_N up to its glibc, and the legacy names."""
    tags = platform_tags(Platform("x86_64", (2, 28)))
    assert tags[0] == "manylinux_2_28_x86_64" and tags[-1] == "manylinux1_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64",
            "manylinux_2_5_x86_64"} <= set(tags)
    assert "manylinux_2_29_x86_64" not in tags


def test_aarch64_tags_stop_at_manylinux2014() -> None:
    """aarch64 has no manylinux1/2010: its tags end at 2.17 (manylinux2014)."""
    tags = platform_tags(Platform("aarch64"))
    assert tags[0] == "manylinux_2_36_aarch64" and tags[-1] == "manylinux2014_aarch64"
    assert not [t for t in tags if "manylinux1" in t or "2010" in t]


@pytest.mark.parametrize(("text", "expected"), [
    ("x86_64", Platform("x86_64", (2, 36))),
    ("amd64", Platform("x86_64", (2, 36))),
    ("arm64", Platform("aarch64", (2, 36))),
    ("manylinux_2_28_aarch64", Platform("aarch64", (2, 28))),
    ("manylinux2014_x86_64", Platform("x86_64", (2, 17))),
])
def test_platform_names_and_tags_are_read(text: str, expected: Platform) -> None:
    """A machine (or its Docker name), or a manylinux tag naming the glibc."""
    assert parse_platform(text) == expected


def test_unknown_platform_names_what_is_accepted() -> None:
    """A platform that is neither a machine nor a manylinux tag: the error lists both."""
    with pytest.raises(ValueError, match=r"unknown platform 'win_amd64'.*x86_64, i686, "
                                         r"aarch64.*manylinux_2_28_aarch64"):
        parse_platform("win_amd64")


def test_glibc_older_than_manylinux_is_refused() -> None:
    """aarch64 with glibc 2.12: no manylinux wheel exists for it."""
    with pytest.raises(ValueError, match=r"need glibc 2\.17 or newer"):
        parse_platform("manylinux_2_12_aarch64")


@given(st.text(max_size=40) | st.sampled_from(["x86_64", "ARM64", "manylinux_2_31_armv7l"]))
def test_accepted_platforms_are_shell_words(text: str) -> None:
    """Whatever parse_platform accepts gives a machine and tags safe to write into install.sh."""
    try:
        platform = parse_platform(text)
    except ValueError:
        return
    assert re.fullmatch(r"[a-z0-9_]+", platform.machine)
    assert all(re.fullmatch(r"manylinux[a-z0-9_]+", tag) for tag in platform_tags(platform))


@pytest.mark.parametrize("text", ["3", "311", "2.7", "3.11.2", "3.x"])
def test_python_version_must_be_3_x(text: str) -> None:
    """Only X.Y of a Python 3 is accepted, and the error says so."""
    with pytest.raises(ValueError, match=r"is not like 3\.11"):
        parse_python_version(text)


def test_one_platform_per_machine() -> None:
    """Two platforms for one machine: refused (install.sh picks wheels by machine)."""
    with pytest.raises(ValueError, match="more than one --platform for aarch64"):
        WheelTarget((3, 11), (Platform("aarch64"), Platform("aarch64", (2, 28))))


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_wheel_arguments(parser)
    return parser.parse_args(argv)


def test_options_build_the_target() -> None:
    """--bundle-wheels --platform P --python-version X.Y is that target."""
    target = target_from_args(_args("--bundle-wheels", "--platform", "manylinux_2_31_aarch64",
                                    "--python-version", "3.12"))
    assert target == WheelTarget((3, 12), (Platform("aarch64", (2, 31)),))


def test_platform_without_bundle_wheels_is_refused() -> None:
    """--platform alone would do nothing: the error says to add --bundle-wheels."""
    with pytest.raises(ValueError, match="add --bundle-wheels"):
        target_from_args(_args("--platform", "x86_64"))


def test_bad_platform_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--platform win_amd64 exits 2 at parse time, with the accepted forms."""
    with pytest.raises(SystemExit) as info:
        _args("--bundle-wheels", "--platform", "win_amd64")
    assert info.value.code == 2
    assert "unknown platform 'win_amd64'" in capsys.readouterr().err


# -- wheels, layout, pins ------------------------------------------------------------------

def test_wheel_name_is_read() -> None:
    """Name, version and the three tags; a build tag is skipped."""
    wheel = WheelFile.parse("numpy-2.2.6-1-cp311-cp311-manylinux_2_17_x86_64.whl")
    assert (wheel.name, wheel.version, wheel.python, wheel.abi, wheel.platform) == (
        "numpy", "2.2.6", "cp311", "cp311", "manylinux_2_17_x86_64")
    assert not wheel.pure


@given(name=st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,10}", fullmatch=True),
       version=st.from_regex(r"[0-9]+(\.[0-9]+){0,3}", fullmatch=True),
       tag=st.sampled_from(["py3-none-any", "cp311-abi3-manylinux_2_17_x86_64"]))
def test_wheel_names_round_trip(name: str, version: str, tag: str) -> None:
    """Any wheel name made from a name, version and tag reads back as those."""
    wheel = WheelFile.parse(f"{name}-{version}-{tag}.whl")
    assert (wheel.name, wheel.version) == (name, version)
    assert f"{wheel.python}-{wheel.abi}-{wheel.platform}" == tag
    assert wheel.pure == tag.endswith("none-any")


@pytest.mark.parametrize("name", ["numpy.tar.gz", "numpy-2.2.6.whl", "a--b-c-d.whl"])
def test_non_wheel_names_are_refused(name: str) -> None:
    """A file that is not named like a wheel is a ValueError naming it."""
    with pytest.raises(ValueError, match="is not a wheel's file name"):
        WheelFile.parse(name)


def test_pure_wheels_are_shared() -> None:
    """A pure wheel both machines fetched goes once into wheels/any; binaries per machine."""
    members = layout({"x86_64": ["six-1.17.0-py2.py3-none-any.whl",
                                 "np-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"],
                      "aarch64": ["six-1.17.0-py2.py3-none-any.whl",
                                  "np-2.0-cp311-cp311-manylinux_2_17_aarch64.whl"]})
    assert sorted(members) == ["wheels/aarch64/np-2.0-cp311-cp311-manylinux_2_17_aarch64.whl",
                               "wheels/any/six-1.17.0-py2.py3-none-any.whl",
                               "wheels/x86_64/np-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"]


def test_pins_name_every_wheel_once() -> None:
    """pins.txt: canonical name==version per wheel, sorted, after one comment line."""
    wheels = [WheelFile.parse(n) for n in ("Zope_Interface-6.0-py3-none-any.whl",
                                           "numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.whl")]
    assert pins_text("x86_64", wheels).splitlines()[1:] == ["numpy==2.2.6",
                                                            "zope-interface==6.0"]


def test_pip_download_asks_for_binaries_of_the_target() -> None:
    """Binary only, CPython of the target version and ABI, every tag of the platform."""
    command = pip_download_command("py", WheelTarget((3, 12), BOTH), Platform("aarch64"),
                                   Path("r.txt"), Path("d"))
    text = shlex.join(command)
    assert "--only-binary :all: --implementation cp --python-version 3.12 --abi cp312" in text
    tags = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    assert tags == platform_tags(Platform("aarch64"))


_PIP_MISSING = """Collecting six (from -r requirements.txt (line 1))
ERROR: Could not find a version that satisfies the requirement numpy==1.21.0 (from versions: 1.23.2, 2.2.6)
ERROR: No matching distribution found for numpy==1.21.0
"""  # noqa: E501


def test_missing_wheel_is_read_from_pip() -> None:
    """pip's 'No matching distribution' names the requirement and the versions it saw."""
    assert missing_wheel(_PIP_MISSING) == ("numpy==1.21.0", ["1.23.2", "2.2.6"])


def test_missing_wheel_without_versions() -> None:
    """'(from versions: none)' gives no versions; other errors are not a missing wheel."""
    text = _PIP_MISSING.replace("1.23.2, 2.2.6", "none")
    assert missing_wheel(text) == ("numpy==1.21.0", [])
    assert missing_wheel("ERROR: Invalid requirement: 'x y'") is None


# -- resolution with pip (local wheels, no network) ---------------------------------------

@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    return new_plugin(tmp_path, "wp", [], [], ["fn"])


def _descriptor(folder: Path) -> dict:
    return json.loads((folder / f"{folder.name}.json").read_text())


def _package(folder: Path, out: Path, target: WheelTarget) -> zipfile.ZipFile:
    package_plugin(folder, _descriptor(folder), out, wheels=target)
    return zipfile.ZipFile(out)


def test_wheels_are_packed_per_machine(plugin: Path, tmp_path: Path) -> None:
    """A pure dependency once in wheels/any, a binary one per machine, pins for both."""
    house = tmp_path / "house"
    make_wheel(house, "purelib")
    for machine in ("x86_64", "aarch64"):
        make_wheel(house, "fastlib", tag=binary_tag(machine, "cp311"), requires=("purelib",))
    offline_requirements(plugin, house, "fastlib")
    zf = _package(plugin, tmp_path / "wp.zip", WheelTarget((3, 11), BOTH))
    wheels = sorted(n for n in zf.namelist() if n.startswith("wheels/"))
    assert wheels == ["wheels/",
                      "wheels/aarch64/fastlib-1.0-cp311-cp311-manylinux_2_17_aarch64.whl",
                      "wheels/aarch64/pins.txt",
                      "wheels/any/purelib-1.0-py3-none-any.whl",
                      "wheels/x86_64/fastlib-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                      "wheels/x86_64/pins.txt"]
    assert zf.read("wheels/aarch64/pins.txt").decode().splitlines()[1:] == [
        "fastlib==1.0", "purelib==1.0"]


def test_missing_wheel_names_package_and_platform(plugin: Path, tmp_path: Path) -> None:
    """No aarch64 wheel of a dependency: PackageError naming it and aarch64; no zip."""
    house = tmp_path / "house"
    make_wheel(house, "fastlib", tag=binary_tag("x86_64", "cp311"))
    offline_requirements(plugin, house, "fastlib==1.0")
    out = tmp_path / "wp.zip"
    with pytest.raises(PackageError, match=r"no wheel of fastlib==1.0 for CPython 3.11 on "
                                           r"aarch64 \(manylinux, glibc 2.36 or older\)"):
        package_plugin(plugin, _descriptor(plugin), out, wheels=WheelTarget((3, 11), BOTH))
    assert not out.exists()


def test_wheel_for_another_python_is_missing(plugin: Path, tmp_path: Path) -> None:
    """A cp311 wheel does not do for CPython 3.12: the error names the version."""
    house = tmp_path / "house"
    make_wheel(house, "fastlib", tag=binary_tag("x86_64", "cp311"))
    offline_requirements(plugin, house, "fastlib")
    with pytest.raises(PackageError, match=r"no wheel of fastlib for CPython 3\.12 on x86_64"):
        package_plugin(plugin, _descriptor(plugin), tmp_path / "wp.zip",
                       wheels=WheelTarget((3, 12), (Platform("x86_64"),)))


def test_other_pip_failures_show_pips_error(plugin: Path, tmp_path: Path) -> None:
    """A requirement pip cannot parse: its ERROR line, under the platform it was for."""
    offline_requirements(plugin, tmp_path, "not a requirement!")
    with pytest.raises(PackageError, match=r"(?s)for CPython 3.11 on x86_64.*ERROR: Invalid"):
        package_plugin(plugin, _descriptor(plugin), tmp_path / "wp.zip",
                       wheels=WheelTarget((3, 11), (Platform("x86_64"),)))


# -- install.sh ----------------------------------------------------------------------------

def _host_target() -> WheelTarget:
    return WheelTarget(HOST, (parse_platform(MACHINE),))


def _unpacked(plugin: Path, tmp_path: Path, house: Path) -> Path:
    """``plugin`` packaged for this machine and Python, then unzipped as eKuiper would."""
    make_wheel(house, "purelib")
    make_wheel(house, "fastlib", tag=binary_tag(MACHINE, HOST_TAG), requires=("purelib",))
    offline_requirements(plugin, house, "fastlib")
    out = tmp_path / "wp.zip"
    _package(plugin, out, _host_target()).extractall(tmp_path / "installed")
    for path in (tmp_path / "installed").rglob("*"):  # zipfile drops the modes
        path.chmod(0o755 if path.is_dir() or path.name == "install.sh" else 0o644)
    shutil.rmtree(house)  # nothing left to fall back on
    return tmp_path / "installed"




def _run(folder: Path, trap: PipTrap, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "install.sh", *args], cwd=folder, capture_output=True,
                          text=True, timeout=120, env={**trap.env(), **(env or {})})


def _pip_line(script: str) -> list[str]:
    """The words of install.sh's pip command (its continued lines joined)."""
    joined = script.replace("\\\n", " ")
    [line] = [line for line in joined.splitlines() if " -m pip install " in line]
    return shlex.split(line.replace('"', ""))


def test_trap_sees_pip_going_online(tmp_path: Path, trap: PipTrap) -> None:
    """The trap works: pip without --no-index, even --isolated, reaches it."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--isolated", "--retries",
                           "0", "--timeout", "3", "-d", str(tmp_path), "nosuchpkg"],
                          capture_output=True, text=True, timeout=120, env=trap.env())
    assert done.returncode != 0 and trap.hits > 0


def test_install_script_installs_the_packed_wheels(plugin: Path, tmp_path: Path,
                                                   trap: PipTrap) -> None:
    """install.sh fills .deps from wheels/ alone: the wheel folder it came from is gone."""
    folder = _unpacked(plugin, tmp_path, tmp_path / "house")
    done = _run(folder, trap, sys.executable)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (folder / ".deps" / "fastlib.py").is_file()
    assert (folder / ".deps" / "purelib.py").is_file()
    assert json.loads((folder / "wp.json").read_text())["executable"] == LAUNCHER
    assert trap.hits == 0


def test_install_script_never_reaches_an_index(plugin: Path, tmp_path: Path,
                                               trap: PipTrap) -> None:
    """A packed wheel gone missing fails the install with the fix; no index is tried."""
    folder = _unpacked(plugin, tmp_path, tmp_path / "house")
    for wheel in (folder / "wheels" / MACHINE).glob("*.whl"):
        wheel.unlink()
    done = _run(folder, trap, sys.executable)
    assert done.returncode == 1
    assert "install.sh: pip could not install the packed wheels" in done.stderr
    assert trap.hits == 0
    assert {"--no-index", "--isolated"} <= set(_pip_line((folder / "install.sh").read_text()))


def test_install_script_refuses_another_python(plugin: Path, tmp_path: Path,
                                               trap: PipTrap) -> None:
    """Wheels for this Python, run with another: the message names both and the fix."""
    folder = _unpacked(plugin, tmp_path, tmp_path / "house")
    other = tmp_path / "python"
    other.write_text("#!/bin/sh\necho 'cpython 3.99'\n")
    other.chmod(0o755)
    done = _run(folder, trap, str(other))
    assert done.returncode == 1
    assert (f"the wheels are for CPython {HOST_PY}, but {other} is cpython 3.99: pass a CPython "
            f"{HOST_PY} as the first shell parameter") in done.stderr
    assert "--python-version 3.99" in done.stderr
    assert not (folder / ".deps").exists()


def test_install_script_refuses_another_machine(plugin: Path, tmp_path: Path,
                                                trap: PipTrap) -> None:
    """On a machine the package has no wheels for, it says which it has and how to add one."""
    folder = _unpacked(plugin, tmp_path, tmp_path / "house")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "uname").write_text("#!/bin/sh\necho riscv64\n")
    (fake / "uname").chmod(0o755)
    done = _run(folder, trap, sys.executable, env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert done.returncode == 1
    assert (f"this package holds wheels for {MACHINE}, not for this machine (riscv64): package "
            "it again with: ekuiper-plugin package --bundle-wheels --platform riscv64"
            ) in done.stderr


def test_install_script_without_python_says_what_to_pass(plugin: Path, tmp_path: Path,
                                                         trap: PipTrap) -> None:
    """A first shell parameter that is no Python: the message names portable.pythonBin."""
    folder = _unpacked(plugin, tmp_path, tmp_path / "house")
    done = _run(folder, trap, str(tmp_path / "nopython"))
    assert done.returncode == 1
    assert "cannot run" in done.stderr and "portable.pythonBin" in done.stderr


def test_install_script_is_posix_sh() -> None:
    """The script parses under sh -n, with and without shared wheels."""
    for shared in (True, False):
        script = install_script(DEFAULT_TARGET, LAUNCHER, shared)
        assert subprocess.run(["/bin/sh", "-n"], input=script, text=True).returncode == 0
        assert ("--find-links wheels/any" in script) == shared

