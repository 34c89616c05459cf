"""ProtocolHost: a small stand-in for eKuiper's side of a plugin's sockets.

It is *not* eKuiper. It listens and dials exactly as eKuiper's Go runtime does (control
REP listening, source PULL, sink PUSH, ack PULL, function REP), in a private IPC
directory, so a plugin process can be exercised in a second without a server. Test
against a real eKuiper before shipping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ekuiper._kinds import FUNCTION, SINK, SOURCE

__all__ = ["PLUGIN_ARG", "FunctionHandle", "ProtocolHost", "SinkHandle", "SourceHandle"]

PLUGIN_ARG = json.dumps({"sendTimeout": 1000})


def _nng() -> Any:
    """pynng, imported on first use.

    The pytest plugin imports this module in every pytest session of every project with
    the SDK installed; only a host that is actually used should load nng.
    """
    import pynng

    return pynng


def _url(ipc_dir: str, name: str) -> str:
    return f"ipc://{ipc_dir}/{name}.ipc"


def _rep_request(sock: Any, payload: bytes, *, skip_handshakes: bool) -> bytes:
    """eKuiper's REP-side request: reply to the pending request, read the answer.

    eKuiper 2.x skips answers that start with ``h`` (a plugin that re-handshook) and
    resends; 1.x (skip_handshakes=False) takes them as the answer.
    """
    while True:
        try:
            sock.send(payload)
        except _nng().BadState:
            sock.recv()  # no pending request yet: wait for the plugin's next one
            sock.send(payload)
        answer = bytes(sock.recv())
        if skip_handshakes and answer[:1] == b"h":
            continue
        return answer


@dataclass
class SourceHandle:
    """The PULL side of one started source."""

    sock: Any

    def frames(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """The next ``count`` raw frames; AssertionError if they do not come in time."""
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {len(got)} of {count} source frames: {got!r}")
            try:
                got.append(bytes(self.sock.recv()))
            except _nng().Timeout:
                continue
        return got

    def rows(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next ``count`` frames decoded: ``{"message": ..., "meta": ...}`` each."""
        return [json.loads(frame) for frame in self.frames(count, timeout)]


@dataclass
class SinkHandle:
    """The PUSH side (data) and PULL side (acks) of one started sink."""

    data: Any
    acks: Any

    def send(self, payload: bytes) -> None:
        self.data.send(payload)

    def ack(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next ack: ``{}`` for ok, ``{"error": ...}`` for a failure."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return dict(json.loads(self.acks.recv()))
            except _nng().Timeout:
                if time.monotonic() > deadline:
                    raise AssertionError("no ack from the sink") from None

    def no_ack_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.acks.recv()
                return False
            except _nng().Timeout:
                continue
        return True


@dataclass
class FunctionHandle:
    """The REP side of one function channel."""

    sock: Any

    def request(self, func: str, arg: Any) -> dict[str, Any]:
        payload = json.dumps({"func": func, "arg": arg}).encode()
        return dict(json.loads(_rep_request(self.sock, payload, skip_handshakes=True)))

    def exec(self, *args: Any, rule: str = "r1", op: str = "op1", instance: int = 0,
             func_id: int = 0) -> dict[str, Any]:
        meta = json.dumps({"ruleId": rule, "opId": op, "instanceId": instance,
                           "funcId": func_id})
        return self.request("Exec", [*args, meta])


@dataclass
class ProtocolHost:
    """Plays eKuiper's side for one plugin process.

    ``v1=True`` behaves as eKuiper 1.x: the datasource travels as ``dataSource`` and an
    answer starting with ``h`` is taken as the answer.
    """

    ipc_dir: str
    plugin_name: str
    v1: bool = False
    control: Any = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _open: list[Any] = field(default_factory=list)
    _by_instance: dict[str, list[Any]] = field(default_factory=dict)
    _private_dir: bool = False

    @classmethod
    def in_temp_dir(cls, plugin_name: str, v1: bool = False) -> ProtocolHost:
        """A host with a fresh private IPC directory (removed by ``close``)."""
        # Short prefix under /tmp: unix socket paths are limited to ~100 bytes.
        ipc_dir = tempfile.mkdtemp(prefix="ekp-", dir="/tmp")
        return cls(ipc_dir, plugin_name, v1=v1, _private_dir=True)

    # -- process ----------------------------------------------------------------------

    def launch(self, script: Path, env: Mapping[str, str] | None = None,
               handshake_timeout: float = 20.0, python: str | None = None,
               ) -> subprocess.Popen[bytes]:
        """Start ``script`` as eKuiper does and wait for its handshake."""
        self.control = self._sock(_nng().Rep0(recv_timeout=int(handshake_timeout * 1000)))
        self.control.listen(_url(self.ipc_dir, f"plugin_{self.plugin_name}"))
        full_env = {**os.environ, "EKUIPER_IPC_DIR": self.ipc_dir, **(env or {})}
        self.log_path = Path(self.ipc_dir) / f"{self.plugin_name}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [python or sys.executable, "-u", str(script), PLUGIN_ARG],
                cwd=script.parent, env=full_env, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            hello = bytes(self.control.recv())
        except _nng().Timeout:
            code = self.process.poll()
            state = f"exited with {code}" if code is not None else "still running"
            raise RuntimeError(f"plugin {self.plugin_name!r} sent no handshake within "
                               f"{handshake_timeout} s ({state}):\n{self.log()}") from None
        if hello != b"handshake":
            raise RuntimeError(f"plugin {self.plugin_name!r} sent {hello!r}, not a handshake")
        self.control.recv_timeout = 20_000
        return self.process

    def log(self) -> str:
        """Everything the plugin printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def command(self, cmd: str, control: Mapping[str, Any]) -> bytes:
        payload = json.dumps({"cmd": cmd, "arg": json.dumps(control)}).encode()
        return self.raw_command(payload)

    def raw_command(self, payload: bytes) -> bytes:
        assert self.control is not None, "launch() first"
        return _rep_request(self.control, payload, skip_handshakes=not self.v1)

    # -- symbols ----------------------------------------------------------------------

    def control_for(self, kind: str, symbol: str, rule: str = "r1", op: str = "op1",
                    instance: int = 0, datasource: str | None = None,
                    config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        ctrl: dict[str, Any] = {
            "symbolName": symbol,
            "meta": {"ruleId": rule, "opId": op, "instanceId": instance},
            "pluginType": kind,
        }
        if datasource is not None and self.v1:
            ctrl["dataSource"] = datasource
        cfg = dict(config or {})
        if datasource is not None and not self.v1:
            cfg["datasource"] = datasource
        if cfg:
            ctrl["config"] = cfg
        return ctrl

    def start_source(self, symbol: str, **kw: Any) -> tuple[bytes, SourceHandle]:
        """Listen on the source channel, then send start; returns (reply, handle)."""
        ctrl = self.control_for(SOURCE.wire, symbol, **kw)
        sock = self._sock(_nng().Pull0(recv_timeout=500))
        sock.listen(_url(self.ipc_dir, self._data_name(ctrl)))
        reply = self.command("start", ctrl)
        if reply != b"ok":
            sock.close()  # as eKuiper does when a start fails
        self._by_instance[self._data_name(ctrl)] = [sock]
        return reply, SourceHandle(sock)

    def start_sink(self, symbol: str, **kw: Any) -> tuple[bytes, SinkHandle | None]:
        """Listen for acks, send start, then dial the sink's data channel."""
        ctrl = self.control_for(SINK.wire, symbol, **kw)
        acks = self._sock(_nng().Pull0(recv_timeout=500))
        acks.listen(_url(self.ipc_dir, self._data_name(ctrl) + "_ack"))
        reply = self.command("start", ctrl)
        if reply != b"ok":
            acks.close()
            return reply, None
        data = self._sock(_nng().Push0(send_timeout=5000))
        data.dial(_url(self.ipc_dir, self._data_name(ctrl)), block=True)
        self._by_instance[self._data_name(ctrl)] = [data, acks]
        return reply, SinkHandle(data, acks)

    def start_function(self, symbol: str) -> tuple[bytes, FunctionHandle]:
        """Listen on the function channel, then send start."""
        sock = self._sock(_nng().Rep0(recv_timeout=5000, send_timeout=5000))
        sock.listen(_url(self.ipc_dir, f"func_{symbol}"))
        ctrl = {"symbolName": symbol, "meta": {"ruleId": "", "opId": "", "instanceId": 0},
                "pluginType": FUNCTION.wire}
        return self.command("start", ctrl), FunctionHandle(sock)

    def stop(self, kind: str, symbol: str, **kw: Any) -> bytes:
        """Like eKuiper: close this instance's data sockets, then send stop."""
        ctrl = self.control_for(kind, symbol, **kw)
        for sock in self._by_instance.pop(self._data_name(ctrl), []):
            sock.close()
        return self.command("stop", ctrl)

    @staticmethod
    def _data_name(ctrl: Mapping[str, Any]) -> str:
        meta = ctrl["meta"]
        return f"{meta['ruleId']}_{meta['opId']}_{meta['instanceId']}"

    def _sock(self, sock: Any) -> Any:
        self._open.append(sock)
        return sock

    # -- teardown ---------------------------------------------------------------------

    def close(self) -> None:
        """Kill the plugin process if it still runs and close every socket."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for sock in self._open:
            sock.close()
        self._open.clear()
        if self._private_dir:
            for leftover in Path(self.ipc_dir).glob("*"):
                leftover.unlink(missing_ok=True)
            Path(self.ipc_dir).rmdir()

    def __enter__(self) -> ProtocolHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
