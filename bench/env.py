"""What the benchmarks run on: the SDKs under test, their venvs, the Go plugin, plugin folders.

Everything built here lives under ``bench/.work/`` (gitignored) and is reused by later
runs: the official SDK's venv, a tools venv (matplotlib, py-spy), the Go plugin binary.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
PYPLUGIN = BENCH / "pyplugin"
GOPLUGIN = BENCH / "goplugin"
FLOORPLUGIN = BENCH / "floorplugin"

OFFICIAL_PACKAGE = "ekuiper==2.4.2"
TOOLS_PACKAGES = ("matplotlib", "py-spy")
GO_SDK_MODULE = "github.com/lf-edge/ekuiper/sdk/go"
# Where a copy of the Go SDK source may be supplied when the module proxy lacks it.
GO_SDK_DIR_ENV = "EKUIPER_GO_SDK_DIR"
EKUIPER_GIT = "https://github.com/lf-edge/ekuiper"
EKUIPER_TAG = "v2.4.0"


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


@dataclass(frozen=True)
class Sdk:
    """One SDK under test and the bench plugin written with it."""

    tag: str  # symbol suffix: benchsrc_<tag>, ...
    label: str
    plugin: str  # plugin name (folder, descriptor, PluginConfig name)
    python: Path | None  # the interpreter eKuiper runs the plugin with; None for Go

    @property
    def source(self) -> str:
        return f"benchsrc_{self.tag}"

    @property
    def idle_source(self) -> str:
        return f"benchidle_{self.tag}"

    @property
    def sink(self) -> str:
        return f"benchsink_{self.tag}"

    @property
    def function(self) -> str:
        return f"benchrevert_{self.tag}"

    @property
    def acks(self) -> bool:
        """The Go SDK of eKuiper v2.4.0 never sends sink acks (runtime/sink.go)."""
        return self.python is not None


def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def ensure_venv(path: Path, packages: tuple[str, ...]) -> Path:
    """A venv at ``path`` with ``packages`` installed (once); returns its python."""
    python = path / "bin" / "python"
    marker = path / f".installed-{hashlib.sha1(' '.join(packages).encode()).hexdigest()[:10]}"
    if python.exists() and marker.exists():
        return python
    log(f"creating {path.relative_to(REPO)} with {' '.join(packages)}")
    shutil.rmtree(path, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(path)])
    run([str(python), "-m", "pip", "install", "-q", *packages])
    marker.touch()
    return python


def pip_version(python: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    try:
        return run([str(python), "-c", code]).stdout.strip()
    except subprocess.CalledProcessError:
        return "?"


class GoUnavailable(Exception):
    """The Go plugin cannot be built here; the reason is reported with the results."""


def go_sdk_version() -> str:
    text = (GOPLUGIN / "go.mod").read_text()
    match = re.search(rf"{re.escape(GO_SDK_MODULE)}\s+(\S+)", text)
    if not match:
        raise GoUnavailable("bench/goplugin/go.mod does not require the Go SDK")
    return match.group(1)


def _is_go_sdk(path: Path) -> bool:
    mod = path / "go.mod"
    return mod.is_file() and f"module {GO_SDK_MODULE}\n" in mod.read_text()


def _clone_go_sdk(dest: Path) -> str | None:
    """Sparse clone of sdk/go at eKuiper's tag; None if git or the network is missing."""
    if shutil.which("git") is None:
        return None
    tmp = WORK / "ekuiper-clone"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        run(["git", "clone", "-q", "--depth", "1", "--branch", EKUIPER_TAG,
             "--filter=blob:none", "--sparse", EKUIPER_GIT, str(tmp)], timeout=120)
        run(["git", "-C", str(tmp), "sparse-checkout", "set", "sdk/go"], timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(tmp / "sdk" / "go", dest)
    shutil.rmtree(tmp, ignore_errors=True)
    return f"git clone of {EKUIPER_GIT} at {EKUIPER_TAG}"


class FloorUnavailable(Exception):
    """The floor plugin cannot be built here (no C compiler, or it failed)."""


def build_floor_plugin() -> Path:
    """bench/floorplugin/floor.c compiled into bench/.work/benchfloor (rebuilt each run)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise FloorUnavailable("no C compiler (cc or gcc) on PATH")
    binary = WORK / "benchfloor"
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        run([compiler, "-O2", "-Wall", "-pthread", "-o", str(binary),
             str(FLOORPLUGIN / "floor.c")], timeout=120)
    except subprocess.CalledProcessError as exc:
        raise FloorUnavailable(f"cc failed: {exc.stderr.strip()[-1500:]}") from None
    return binary


@dataclass(frozen=True)
class GoBuild:
    binary: Path
    sdk_version: str
    sdk_source: str  # where the SDK's source came from
    go_version: str


def build_go_plugin() -> GoBuild:
    """Build bench/goplugin into bench/.work/benchgo.

    The SDK comes from the Go module proxy when it serves the version bench/goplugin/go.mod
    requires; otherwise from a local copy of eKuiper's sdk/go (``$EKUIPER_GO_SDK_DIR``,
    or bench/.work/gosdk, or a sparse git clone at the v2.4.0 tag) wired in by a go.work.
    """
    if shutil.which("go") is None:
        raise GoUnavailable("no Go toolchain on PATH")
    version = go_sdk_version()
    go_version = run(["go", "env", "GOVERSION"]).stdout.strip()
    env = {**os.environ, "GOFLAGS": "-buildvcs=false"}
    probe = subprocess.run(["go", "mod", "download", "-json", f"{GO_SDK_MODULE}@{version}"],
                           capture_output=True, text=True, cwd=WORK, env=env)
    workfile = WORK / "go.work"
    lines = ["go 1.25.4", "", "use ../goplugin", ""]
    if probe.returncode == 0:
        source = f"Go module proxy ({GO_SDK_MODULE}@{version})"
    else:
        reason = (json.loads(probe.stdout).get("Error", "") if probe.stdout.startswith("{")
                  else probe.stderr.strip())
        local = WORK / "gosdk"
        supplied = os.environ.get(GO_SDK_DIR_ENV)
        if supplied and _is_go_sdk(Path(supplied)):
            local, source = Path(supplied).resolve(), f"${GO_SDK_DIR_ENV} ({supplied})"
        elif _is_go_sdk(local):
            source = (f"local copy of eKuiper {EKUIPER_TAG} sdk/go in bench/.work/gosdk "
                      f"(module proxy: {reason.splitlines()[0][:160]})")
        else:
            cloned = _clone_go_sdk(local)
            if cloned is None:
                raise GoUnavailable(
                    f"the module proxy does not serve {GO_SDK_MODULE}@{version} ({reason}) and "
                    f"no local copy was found: put eKuiper {EKUIPER_TAG}'s sdk/go in "
                    f"bench/.work/gosdk or set ${GO_SDK_DIR_ENV}")
            source = cloned
        lines += [f"replace {GO_SDK_MODULE} => {local}", ""]
    workfile.write_text("\n".join(lines))
    binary = WORK / "benchgo"
    try:
        run(["go", "build", "-trimpath", "-o", str(binary), "."], cwd=GOPLUGIN,
            env={**env, "GOWORK": str(workfile)}, timeout=600)
    except subprocess.CalledProcessError as exc:
        raise GoUnavailable(f"go build failed: {exc.stderr.strip()[-1500:]}") from None
    return GoBuild(binary, version, source, go_version)


def descriptor(sdk: Sdk, executable: str) -> dict[str, object]:
    return {
        "version": "v1.0.0",
        "language": "python" if sdk.python is not None else "go",
        "executable": executable,
        "sources": [sdk.source, sdk.idle_source],
        "sinks": [sdk.sink],
        "functions": [sdk.function],
    }


def lay_out_plugin(sdk: Sdk, root: Path, go_binary: Path | None = None,
                   program: Path | None = None) -> Path:
    """Write the plugin folder ``root/<plugin>`` (descriptor + program) and return it.

    ``program``: a floor plugin's one file, copied in as its executable."""
    folder = root / sdk.plugin
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if program is not None:
        executable = sdk.plugin + (".py" if sdk.python is not None else "")
        shutil.copy2(program, folder / executable)
    elif sdk.python is not None:
        executable = f"{sdk.plugin}.py"
        shutil.copy2(PYPLUGIN / "benchmain.py", folder / executable)
        shutil.copy2(PYPLUGIN / "benchsyms.py", folder / "benchsyms.py")
    else:
        assert go_binary is not None
        executable = sdk.plugin
        shutil.copy2(go_binary, folder / executable)
    (folder / f"{sdk.plugin}.json").write_text(json.dumps(descriptor(sdk, executable), indent=2))
    return folder


def plugin_command(sdk: Sdk, folder: Path) -> list[str]:
    """The command eKuiper v2 starts the plugin with (PROTOCOL.md, Process)."""
    arg = '{"sendTimeout":1000}'
    if sdk.python is not None:
        return [str(sdk.python), "-u", str(folder / f"{sdk.plugin}.py"), arg]
    return [str(folder / sdk.plugin), arg]
