"""A real kuiperd for end-to-end tests: build or find the binary, lay out a home, run it.

Everything here talks to kuiperd only the way a user does: files in its home before
boot, and its REST API.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ekuiper._cli.rest import RestError, Server
from tests.conftest import REPO

# The eKuiper 2.x the e2e suite runs against: `EKUIPER_VERSION=v2.4.0 make test-e2e`.
DEFAULT_VERSION = "v" + os.environ.get("EKUIPER_VERSION", "v2.4.2").lstrip("v")
KUIPERD_SCRIPT = REPO / "scripts" / "kuiperd.sh"


class _PortTaken(RuntimeError):
    """kuiperd exited because a port picked for it was taken before it bound it."""


class KuiperdUnavailable(Exception):
    """No kuiperd binary can be had on this machine (no cache, no Go, no Docker)."""


def kuiperd_dist(version: str) -> Path:
    """The cached kuiperd for ``version`` (bin/kuiperd, etc/), built on first use."""
    try:
        result = subprocess.run(["bash", str(KUIPERD_SCRIPT), version], check=True,
                                capture_output=True, text=True, timeout=1800)
    except subprocess.CalledProcessError as exc:
        raise KuiperdUnavailable(
            f"scripts/kuiperd.sh {version} failed:\n{exc.stderr[-3000:]}") from None
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: each socket stays bound until all are picked, since
    the kernel may hand a just-closed port out again."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def sync_metadata(plugin_dir: Path, etc: Path) -> None:
    """Copy a plugin's sources/ sinks/ functions/ files into etc/, as REST install does."""
    for kind in ("sources", "sinks", "functions"):
        folder = plugin_dir / kind
        if folder.is_dir():
            (etc / kind).mkdir(parents=True, exist_ok=True)
            for item in folder.iterdir():
                shutil.copy2(item, etc / kind / item.name)


def make_plugin_zip(plugin_dir: Path, dest: Path) -> Path:
    """Zip a plugin folder the way eKuiper's REST install expects (files at the root)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(plugin_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(plugin_dir).as_posix())
    return dest


@dataclass
class Response:
    status: int
    body: Any

    @property
    def text(self) -> str:
        return self.body if isinstance(self.body, str) else json.dumps(self.body)


class KuiperREST:
    """What the scenarios need of an eKuiper, whatever runs it (native or in Docker).

    Subclasses provide ``base_url``, ``version``, ``plugin_pids``, ``log``, ``out_path``
    (a file path as kuiperd sees it) and ``read_text`` (that file's content, or None).
    """

    version: str
    base_url: str
    sink_sockets: list[Path]

    @property
    def major(self) -> int:
        return int(self.version.lstrip("v").split(".")[0])

    def plugin_pids(self, name: str | None = None) -> list[int]:
        raise NotImplementedError

    def log(self) -> str:
        raise NotImplementedError

    def out_path(self, name: str) -> str:
        raise NotImplementedError

    def read_text(self, path: str) -> str | None:
        raise NotImplementedError

    # -- REST -------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> Response:
        # The SDK's own REST client (ekuiper-plugin uses it too).
        status, payload = Server(self.base_url, timeout=30).call(method, path, body)
        return Response(status, payload)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Response:
        return self.request("POST", path, body)

    def put(self, path: str, body: Any) -> Response:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> Response:
        return self.request("DELETE", path)

    # -- conveniences used by the scenarios -------------------------------------------

    def create_stream(self, name: str, type_: str, datasource: str, extra: str = "") -> None:
        sql = (f'CREATE STREAM {name} () WITH (TYPE="{type_}", DATASOURCE="{datasource}", '
               f'FORMAT="json"{extra})')
        resp = self.post("/streams", {"sql": sql})
        assert resp.status in (200, 201), resp

    def create_rule(self, rule_id: str, sql: str, actions: list[dict[str, Any]],
                    options: dict[str, Any] | None = None) -> Response:
        for index, action in enumerate(actions):
            sink = next(iter(action))
            self.sink_sockets.append(Path("/tmp") / f"{rule_id}_{sink}_{index}_0.ipc")
        body: dict[str, Any] = {"id": rule_id, "sql": sql, "actions": actions}
        if options:
            body["options"] = options
        return self.post("/rules", body)

    def rule_status(self, rule_id: str) -> dict[str, Any]:
        resp = self.get(f"/rules/{rule_id}/status")
        assert resp.status == 200, resp
        assert isinstance(resp.body, dict), resp
        return resp.body

    def wait_status(self, rule_id: str, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.rule_status(rule_id)
            if predicate(status):
                return status
            time.sleep(0.2)
        raise AssertionError(f"rule {rule_id} status never matched: {json.dumps(status)[:3000]}")

    def plugin_status(self, name: str) -> dict[str, Any]:
        """eKuiper's status of a portable plugin's process.

        Right after boot eKuiper lists a dropped-in plugin before it has made the
        plugin's process record, and the status endpoint answers 404 "not found" until
        then: that reads as ``{"status": "not started"}``, so polls keep waiting.
        """
        resp = self.get(f"/plugins/portables/{name}/status")
        if resp.status == 404 and "not found" in str(resp.body):
            return {"status": "not started", "errMsg": ""}
        assert resp.status == 200, resp
        return resp.body  # type: ignore[no-any-return]


@dataclass
class Kuiperd(KuiperREST):
    """One kuiperd process with its own home and ports."""

    version: str
    home: Path
    dist: Path
    env: dict[str, str] = field(default_factory=dict)
    rest_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    # Runs kuiperd through a command (e.g. `unshare` for a private /tmp); it must exec
    # kuiperd, given as its last argument, in the same process.
    wrapper: list[str] = field(default_factory=list)
    # Socket files a plugin sink listens on (ours, unlike eKuiper's source/ack sockets).
    sink_sockets: list[Path] = field(default_factory=list)
    # The environment kuiperd was last started with.
    boot_env: dict[str, str] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.home / "kuiperd.out"

    # -- layout and process -----------------------------------------------------------

    def lay_out(self) -> None:
        shutil.copytree(self.dist / "etc", self.home / "etc", dirs_exist_ok=True)
        for sub in ("data", "log", "plugins/sources", "plugins/sinks", "plugins/functions",
                    "plugins/portable"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)

    def drop_in(self, plugin_dir: Path) -> Path:
        """Install a plugin folder before boot: plugins/portable/<name> + metadata in etc/."""
        target = self.home / "plugins" / "portable" / plugin_dir.name
        shutil.copytree(plugin_dir, target, ignore=shutil.ignore_patterns("__pycache__"))
        sync_metadata(plugin_dir, self.home / "etc")
        return target

    def start(self, timeout: float = 60.0) -> None:
        # A picked port may still be taken by another process before kuiperd binds it;
        # only that failure is worth a new pick.
        for attempt in range(3):
            try:
                self._start_once(timeout)
                return
            except _PortTaken:
                if attempt == 2:
                    raise

    def _start_once(self, timeout: float) -> None:
        self.rest_port, rpc_port, http_port = free_ports(3)
        # The shipped etc/kuiper.yaml as it is: these only move ports (tests run side by
        # side), show the log, and pick this Python; no security setting is touched. A
        # test that needs one passes it in ``env`` and says why.
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KUIPER__")},
            "KuiperBaseKey": str(self.home),
            "KUIPER__BASIC__RESTPORT": str(self.rest_port),
            "KUIPER__BASIC__PORT": str(rpc_port),
            "KUIPER__BASIC__CONSOLELOG": "true",
            "KUIPER__BASIC__PPROF": "false",
            "KUIPER__SOURCE__HTTPSERVERPORT": str(http_port),
            "KUIPER__PORTABLE__PYTHONBIN": sys.executable,
            # 1.x ships 5 s, too short for a plugin starting on a loaded CI machine; 2.x
            # ships 60 s. 2.x takes a duration, 1.x milliseconds (it refuses "60s").
            "KUIPER__PORTABLE__INITTIMEOUT": "60s" if self.major >= 2 else "60000",
            **self.env,
        }
        self.boot_env = env
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        # kuiperd writes through its own copy of the descriptor: ours closes at once.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*self.wrapper, str(self.dist / "bin" / "kuiperd")],
                                         cwd=self.home,
                                         env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                this_boot = self.log_path.read_bytes()[log_start:].decode(errors="replace")
                if "address already in use" in this_boot:
                    raise _PortTaken(this_boot)
                raise RuntimeError(f"kuiperd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.get("/").status == 200:
                    return
            except RestError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"kuiperd REST did not answer within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL kuiperd, as a power cut or the OOM killer would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def base_url(self) -> str:  # type: ignore[override]
        return f"http://127.0.0.1:{self.rest_port}"

    def out_path(self, name: str) -> str:
        return str(self.home / name)

    def read_text(self, path: str) -> str | None:
        file = Path(path)
        return file.read_text() if file.exists() else None

    def plugin_pids(self, name: str | None = None) -> list[int]:
        """Processes started from this home's plugins/portable (optionally one plugin's)."""
        marker = str(self.home / "plugins" / "portable") + "/"
        if name:
            marker += name + "/"
        return live_pids(marker)


def live_pids(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line holds ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def proc_stats(pid: int) -> tuple[int, int]:
    """(resident set size in KiB, thread count) of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])
