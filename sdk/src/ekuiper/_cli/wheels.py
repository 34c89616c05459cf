"""`ekuiper-plugin package --bundle-wheels`: the wheels requirements.txt resolves to, packed
into the zip per target platform, so that installing the plugin needs no network.

What goes into the zip::

    wheels/any/<wheel>...          pure-Python wheels (``none-any``), shared by every machine
    wheels/<machine>/<wheel>...    the binary wheels of one machine, as ``uname -m`` names it
    wheels/<machine>/pins.txt      name==version of every wheel that machine installs
    install.sh                     picks wheels/<machine>, checks the Python, pip --no-index

Resolution is ``pip download --only-binary :all:`` once per machine, with the target's
``--platform`` tags (every manylinux tag up to the target's glibc), ``--python-version``,
``--implementation cp`` and ``--abi cp3XY``. A requirement with no wheel for one of the
platforms asked is an error here, naming the package and the platform, rather than a
failed install on the device. Environment markers are evaluated by pip on this machine,
not the target (a pip limitation); install.sh resolves again on the device, from the
packed wheels only, so a dependency missing there fails the install with pip's message.

The pure parts (platform tags, wheel names, pins, the pip command, reading pip's error,
install.sh) are functions without I/O; :func:`bundle_wheels` runs pip.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_TARGET", "Bundle", "Platform", "WheelFile", "WheelTarget", "WheelsError",
           "add_wheel_arguments", "bundle_wheels", "install_script", "layout",
           "missing_wheel", "parse_platform", "parse_python_version", "pins_text",
           "pip_download_command", "platform_tags", "target_from_args"]

# What the slim-python image runs: Debian bookworm's glibc, CPython 3.11.
DEFAULT_GLIBC = (2, 36)
DEFAULT_PYTHON = (3, 11)
DEFAULT_MACHINES = ("x86_64", "aarch64")
# The oldest glibc a manylinux tag exists for, per machine (PEP 600; 2.5 and 2.12 are
# manylinux1 and manylinux2010, x86 only; 2.17 is manylinux2014).
_MIN_GLIBC = {"x86_64": 5, "i686": 5, "aarch64": 17, "armv7l": 17, "ppc64le": 17,
              "s390x": 17, "riscv64": 31}
_LEGACY = {5: "manylinux1", 12: "manylinux2010", 17: "manylinux2014"}
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}
_MANYLINUX_RE = re.compile(r"manylinux_(\d+)_(\d+)_([a-z0-9_]+)\Z")
_LEGACY_RE = re.compile(r"(manylinux1|manylinux2010|manylinux2014)_([a-z0-9_]+)\Z")
_PYTHON_RE = re.compile(r"3\.(\d{1,2})\Z")
_MISSING_RE = re.compile(r"No matching distribution found for (.+?)\s*$", re.MULTILINE)
_VERSIONS_RE = re.compile(r"Could not find a version that satisfies the requirement (.+?) "
                          r"\(from versions: (.*?)\)\s*$", re.MULTILINE)
PINS = "pins.txt"
ANY = "any"


class WheelsError(Exception):
    """The wheels cannot be had: the message names the package, the platform and the fix.

    Raised by :func:`bundle_wheels`; `package` reports it as its PackageError.
    """


@dataclass(frozen=True)
class Platform:
    """A target machine: ``machine`` as ``uname -m`` prints it, its glibc (major, minor)."""

    machine: str
    glibc: tuple[int, int] = DEFAULT_GLIBC

    def describe(self) -> str:
        return f"{self.machine} (manylinux, glibc {self.glibc[0]}.{self.glibc[1]} or older)"


@dataclass(frozen=True)
class WheelTarget:
    """The Python and the machines a bundle is for (CPython only: wheels name the ABI)."""

    python: tuple[int, int] = DEFAULT_PYTHON
    platforms: tuple[Platform, ...] = tuple(Platform(m) for m in DEFAULT_MACHINES)

    def __post_init__(self) -> None:
        machines = [p.machine for p in self.platforms]
        if not machines:
            raise ValueError("no platform to bundle wheels for: give --platform")
        twice = sorted({m for m in machines if machines.count(m) > 1})
        if twice:
            raise ValueError(f"more than one --platform for {', '.join(twice)}: give one per "
                             "machine (install.sh picks the wheels by machine)")

    @property
    def python_text(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"

    def describe(self, platform: Platform) -> str:
        return f"CPython {self.python_text} on {platform.describe()}"


DEFAULT_TARGET = WheelTarget()


# -- parsing what the user asks for -------------------------------------------------------

def parse_platform(text: str) -> Platform:
    """``x86_64``, ``arm64`` or a manylinux tag such as ``manylinux_2_28_aarch64``.

    A machine alone means glibc 2.36 (Debian bookworm, as in the image); a tag names the
    newest glibc the target has. ValueError names what is accepted.
    """
    value = text.strip().lower()
    machine, glibc = value, DEFAULT_GLIBC
    if match := _MANYLINUX_RE.match(value):
        glibc, machine = (int(match[1]), int(match[2])), match[3]
    elif match := _LEGACY_RE.match(value):
        glibc = (2, {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}[match[1]])
        machine = match[2]
    machine = _ALIASES.get(machine, machine)
    if machine not in _MIN_GLIBC:
        raise ValueError(f"unknown platform {text!r}: give a machine as `uname -m` prints it "
                         f"({', '.join(_MIN_GLIBC)}) or a manylinux tag naming the target's "
                         "glibc, such as manylinux_2_28_aarch64")
    if glibc[0] != 2 or glibc[1] < _MIN_GLIBC[machine]:
        raise ValueError(f"platform {text!r}: manylinux wheels for {machine} need glibc "
                         f"2.{_MIN_GLIBC[machine]} or newer")
    return Platform(machine, glibc)


def parse_python_version(text: str) -> tuple[int, int]:
    """``3.11`` -> (3, 11); ValueError otherwise."""
    match = _PYTHON_RE.match(text.strip())
    if not match:
        raise ValueError(f"python version {text!r} is not like 3.11: give the major and minor "
                         "version of the CPython eKuiper runs plugins with")
    return 3, int(match[1])


def platform_tags(platform: Platform) -> list[str]:
    """Every manylinux tag the target accepts, newest glibc first (pip wants them all)."""
    tags = []
    for minor in range(platform.glibc[1], _MIN_GLIBC[platform.machine] - 1, -1):
        tags.append(f"manylinux_2_{minor}_{platform.machine}")
        legacy = _LEGACY.get(minor)
        if legacy and (minor == 17 or platform.machine in ("x86_64", "i686")):
            tags.append(f"{legacy}_{platform.machine}")
    return tags


# -- the command line ---------------------------------------------------------------------

def _argument(parse: Callable[[str], object]) -> Callable[[str], object]:
    """``parse`` as an argparse type: a bad value is a usage error (exit 2) with our text."""
    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def add_wheel_arguments(parser: argparse.ArgumentParser) -> None:
    """The --bundle-wheels options of `package` and `install`."""
    parser.add_argument(
        "--bundle-wheels", action="store_true",
        help="pack the wheels requirements.txt resolves to into the zip, so installing needs "
             "no network (install.sh installs them with pip --no-index)")
    parser.add_argument(
        "--platform", action="append", metavar="P", dest="wheel_platforms",
        type=_argument(parse_platform),
        help="with --bundle-wheels: a target machine (x86_64, aarch64, ...) or manylinux tag "
             "(manylinux_2_28_aarch64: glibc 2.28); repeatable; default x86_64 and aarch64 "
             "with glibc 2.36, as the image")
    parser.add_argument(
        "--python-version", metavar="X.Y", dest="wheel_python",
        type=_argument(parse_python_version),
        help="with --bundle-wheels: the target CPython (default 3.11, as the image)")


def target_from_args(args: argparse.Namespace) -> WheelTarget | None:
    """The WheelTarget the options ask for, None without --bundle-wheels; ValueError."""
    platforms: list[Platform] | None = args.wheel_platforms
    python: tuple[int, int] | None = args.wheel_python
    if not args.bundle_wheels:
        if platforms or python:
            raise ValueError("--platform and --python-version choose the wheels that "
                             "--bundle-wheels packs: add --bundle-wheels")
        return None
    return WheelTarget(python or DEFAULT_PYTHON,
                       tuple(platforms) if platforms else DEFAULT_TARGET.platforms)


# -- wheels and what install.sh installs ---------------------------------------------------

@dataclass(frozen=True)
class WheelFile:
    """What a wheel's file name says (PEP 427): name, version and tags."""

    filename: str
    name: str
    version: str
    python: str
    abi: str
    platform: str

    @classmethod
    def parse(cls, filename: str) -> WheelFile:
        """ValueError unless ``filename`` is a wheel's name."""
        parts = filename[:-4].split("-") if filename.endswith(".whl") else []
        if len(parts) not in (5, 6) or not all(parts):
            raise ValueError(f"{filename!r} is not a wheel's file name")
        return cls(filename, parts[0], parts[1], *parts[-3:])

    @property
    def pure(self) -> bool:
        """Runs on any machine (the Python version still counts: install.sh checks it)."""
        return self.abi == "none" and self.platform == "any"

    @property
    def pin(self) -> str:
        return f"{re.sub(r'[-_.]+', '-', self.name).lower()}=={self.version}"


def pins_text(machine: str, wheels: Sequence[WheelFile]) -> str:
    """pins.txt: one ``name==version`` per wheel, sorted, for install.sh's ``pip -r``."""
    lines = sorted({wheel.pin for wheel in wheels})
    return (f"# ekuiper-plugin package --bundle-wheels: what install.sh installs on {machine}\n"
            + "".join(f"{line}\n" for line in lines))


def layout(downloads: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, str]]:
    """Zip member -> (machine, file name) for each downloaded wheel, per machine's files.

    Pure wheels go to wheels/any/ once, whichever machines fetched them; the others to
    wheels/<machine>/.
    """
    members: dict[str, tuple[str, str]] = {}
    for machine, filenames in downloads.items():
        for filename in filenames:
            folder = ANY if WheelFile.parse(filename).pure else machine
            members.setdefault(f"wheels/{folder}/{filename}", (machine, filename))
    return dict(sorted(members.items()))


def pip_download_command(python: str, target: WheelTarget, platform: Platform,
                         requirements: Path, dest: Path) -> list[str]:
    """The ``pip download`` that fetches ``platform``'s wheels; run it in the plugin folder
    (requirements.txt may name files relative to it, as install.sh's pip would see them)."""
    nodot = f"{target.python[0]}{target.python[1]}"
    command = [python, "-m", "pip", "download", "--no-input", "--disable-pip-version-check",
               "--progress-bar", "off", "--only-binary", ":all:", "--implementation", "cp",
               "--python-version", target.python_text, "--abi", f"cp{nodot}"]
    for tag in platform_tags(platform):
        command += ["--platform", tag]
    return [*command, "--dest", str(dest), "-r", str(requirements)]


def missing_wheel(pip_output: str) -> tuple[str, list[str]] | None:
    """(requirement, versions pip saw) when pip found no wheel for a requirement."""
    missing = _MISSING_RE.search(pip_output)
    if not missing:
        return None
    requirement = missing[1]
    for found in _VERSIONS_RE.finditer(pip_output):
        if found[1] == requirement:
            versions = [v.strip() for v in found[2].split(",")]
            return requirement, [v for v in versions if v and v != "none"]
    return requirement, []


def _missing_message(requirement: str, versions: list[str], target: WheelTarget,
                     platform: Platform) -> str:
    where = target.describe(platform)
    if versions:
        shown = ", ".join(versions[-8:])
        found = f"versions with such a wheel: {'..., ' if len(versions) > 8 else ''}{shown}"
    else:
        found = ("none of its versions has one (a package published as source only cannot "
                 "be built for another machine here)")
    return (f"no wheel of {requirement} for {where}; {found}. Pin a version that has one, "
            f"or leave {platform.machine} out (--platform names each machine to pack for)")


# Placeholders are filled with checked values only: machine names, X.Y, fixed text.
_INSTALL_OFFLINE = '''#!/bin/sh
# Generated by ekuiper-plugin package --bundle-wheels: installs the wheels packed in
# wheels/ into .deps/ beside the plugin ({launcher} puts it on sys.path), from this folder
# only (pip --no-index --isolated: no index, no pip configuration), so installing needs no
# network. Packed for CPython {python} on {machines}. eKuiper runs this with the plugin
# folder as working directory; pass the Python eKuiper starts plugins with
# (portable.pythonBin) as the first shell parameter if it is not `python3`.
set -e
PYTHON="${{1:-python3}}"
machine="$(uname -m)"
case "$machine" in
  arm64) machine=aarch64 ;;
  amd64) machine=x86_64 ;;
esac
if [ ! -f "wheels/$machine/{pins}" ]; then
  echo "install.sh: this package holds wheels for {machines}, not for this machine" \\
    "($machine): package it again with: ekuiper-plugin package --bundle-wheels" \\
    "--platform $machine" >&2
  exit 1
fi
probe='import sys; v = sys.version_info'
probe="$probe; print(sys.implementation.name, '%d.%d%s' % (v[0], v[1], sys.abiflags))"
if ! found="$("$PYTHON" -c "$probe")"; then
  echo "install.sh: cannot run $PYTHON: pass the Python eKuiper runs plugins with" \\
    "(portable.pythonBin) as the first shell parameter" >&2
  exit 1
fi
if [ "$found" != "cpython {python}" ]; then
  echo "install.sh: the wheels are for CPython {python}, but $PYTHON is $found: pass a" \\
    "CPython {python} as the first shell parameter (the Python eKuiper runs plugins with)," \\
    "or package again with: ekuiper-plugin package --bundle-wheels --python-version" \\
    "${{found#* }}" >&2
  exit 1
fi
if ! "$PYTHON" -m pip install --isolated --no-index --find-links "wheels/$machine" \\
    {any}--only-binary :all: --no-cache-dir --disable-pip-version-check --upgrade \\
    --target ./.deps -r "wheels/$machine/{pins}"; then
  echo "install.sh: pip could not install the packed wheels (see above). They were" \\
    "packed for CPython {python}, manylinux with glibc {glibc} or older; if this" \\
    "machine's glibc is older (ldd --version), package again with --platform" \\
    "manylinux_2_<its minor>_$machine" >&2
  exit 1
fi
'''


def install_script(target: WheelTarget, launcher: str, shared: bool) -> str:
    """install.sh for a bundle; ``shared``: the zip has wheels/any/ too."""
    glibc = {f"{p.glibc[0]}.{p.glibc[1]}" for p in target.platforms}
    return _INSTALL_OFFLINE.format(
        launcher=launcher, python=target.python_text, pins=PINS,
        machines=", ".join(p.machine for p in target.platforms),
        glibc="/".join(sorted(glibc)), any=f"--find-links wheels/{ANY} " if shared else "")


# -- running pip --------------------------------------------------------------------------

@dataclass
class Bundle:
    """The downloaded wheels: zip members from files, and generated pins.

    Valid inside :func:`bundle_wheels`' ``with`` only (the files live in a temporary folder).
    """

    files: list[tuple[str, Path]] = field(default_factory=list)
    generated: dict[str, bytes] = field(default_factory=dict)
    shared: bool = False


def _pip_failure(output: str, target: WheelTarget, platform: Platform, returncode: int,
                 python: str) -> str:
    found = missing_wheel(output)
    if found:
        return _missing_message(*found, target, platform)
    if "No module named pip" in output:
        return (f"--bundle-wheels runs pip, which the Python running ekuiper-plugin ({python}) "
                f"lacks: install it ({python} -m ensurepip), then package again")
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    tail = "\n  ".join(errors[-5:] or output.strip().splitlines()[-5:])
    return (f"pip download of the wheels for {target.describe(platform)} failed (exit "
            f"{returncode}):\n  {tail}")


@contextlib.contextmanager
def bundle_wheels(folder: Path, target: WheelTarget,
                  progress: Callable[[str], None] = lambda _: None,
                  python: str = sys.executable) -> Iterator[Bundle]:
    """Download ``folder``'s requirements for each platform of ``target``; yield the Bundle.

    Runs ``python -m pip download`` once per platform, in the calling thread, blocking
    until pip ends (it reaches the index pip is configured with). Raises WheelsError for
    the first platform that fails. The temporary folder is removed on leaving, also on
    error or KeyboardInterrupt (which ends pip first).
    """
    requirements = folder.resolve() / "requirements.txt"
    with tempfile.TemporaryDirectory(prefix="ekuiper-wheels-") as tmp:
        downloads: dict[str, list[str]] = {}
        for platform in target.platforms:
            dest = Path(tmp) / platform.machine
            progress(f"downloading wheels for {target.describe(platform)}")
            command = pip_download_command(python, target, platform, requirements, dest)
            try:
                done = subprocess.run(command, cwd=folder, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, errors="replace")
            except OSError as exc:
                raise WheelsError(f"cannot run {python} -m pip: {exc}") from None
            if done.returncode != 0:
                raise WheelsError(_pip_failure(done.stdout, target, platform,
                                               done.returncode, python))
            names = sorted(p.name for p in dest.iterdir()) if dest.is_dir() else []
            strays = [n for n in names if not n.endswith(".whl")]
            if strays:  # --only-binary should make this impossible; never pack a stray
                raise WheelsError(f"pip download for {platform.machine} saved files that are "
                                  f"not wheels: {', '.join(strays)}")
            downloads[platform.machine] = names
        bundle = Bundle()
        for arcname, (machine, filename) in layout(downloads).items():
            bundle.files.append((arcname, Path(tmp) / machine / filename))
        for machine, names in downloads.items():
            for filename in names:
                first = next(path for arc, path in bundle.files if arc.endswith("/" + filename))
                if not filecmp.cmp(first, Path(tmp) / machine / filename, shallow=False):
                    raise WheelsError(f"two different files are named {filename} (for "
                                      f"{first.parent.name} and {machine}); pin the "
                                      "requirement to one source")
            wheels = [WheelFile.parse(name) for name in names]
            bundle.generated[f"wheels/{machine}/{PINS}"] = pins_text(machine, wheels).encode()
        bundle.shared = any(arc.startswith(f"wheels/{ANY}/") for arc, _ in bundle.files)
        yield bundle
