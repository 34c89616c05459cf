"""PluginHost: a plugin folder run as a real process, as eKuiper runs it."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ekuiper._kinds import SINK, SOURCE
from ekuiper.errors import PluginProcessError
from ekuiper.testing._host import FunctionHandle, ProtocolHost
from ekuiper.testing._inprocess import SOURCE_ERROR_PREFIX, encode_sink_payloads

__all__ = ["PluginHost"]


class PluginHost:
    """A plugin folder run as eKuiper runs it, against a :class:`ProtocolHost`.

    ``PluginHost(folder)`` reads ``<folder>/<name>.json`` for the executable, starts it
    with ``python`` (default: this interpreter) in a private IPC directory and waits for
    its handshake. Each call starts a symbol under a fresh rule id and stops it after.

    State (``ctx.put_state``): by default in a fresh temporary folder, removed by
    ``close``, so each host starts empty; ``state_dir=`` names a folder to keep it in
    (``EKUIPER_PLUGIN_STATE_DIR``), ``own_state=True`` leaves it where the plugin keeps
    it by itself (``ekuiper-plugin run`` does, so a counter goes on from run to run).
    ``state_dir`` holds the folder used, or None with ``own_state``.
    """

    def __init__(self, folder: str | Path, *, python: str | None = None,
                 env: Mapping[str, str] | None = None, v1: bool = False,
                 state_dir: str | Path | None = None, own_state: bool = False) -> None:
        if own_state and state_dir is not None:
            raise ValueError("give state_dir or own_state=True, not both")
        self.folder = Path(folder).resolve()
        self.name = self.folder.name
        self._temp_state: str | None = None
        self.state_dir: Path | None = None
        descriptor_path = self.folder / f"{self.name}.json"
        try:
            descriptor = json.loads(descriptor_path.read_text(encoding="utf-8"))
            executable = descriptor["executable"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PluginProcessError(f"{descriptor_path}: cannot read the executable from "
                                     f"the descriptor ({exc})") from None
        if not own_state:
            from ekuiper._state import STATE_DIR_ENV

            if state_dir is None:
                self._temp_state = tempfile.mkdtemp(prefix="ekuiper-state-")
                state_dir = self._temp_state
            self.state_dir = Path(state_dir).resolve()
            env = {**(env or {}), STATE_DIR_ENV: str(self.state_dir)}
        self.host = ProtocolHost.in_temp_dir(self.name, v1=v1)
        self._rules = 0
        self._functions: dict[str, FunctionHandle] = {}
        try:
            self.host.launch(self.folder / executable, env=env, python=python)
        except RuntimeError as exc:
            self.close()
            raise PluginProcessError(str(exc)) from None

    @property
    def log(self) -> str:
        """Everything the plugin printed so far."""
        return self.host.log()

    def _rule(self) -> str:
        self._rules += 1
        return f"test{self._rules}"

    def _fail(self, what: str, reply: bytes) -> PluginProcessError:
        tail = "\n".join(self.log.splitlines()[-30:])
        return PluginProcessError(f"{what}: {reply.decode(errors='replace')}\n"
                                  f"--- plugin output (last lines) ---\n{tail}")

    def source(self, name: str, datasource: str = "", conf: Mapping[str, Any] | None = None,
               *, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Start source ``name``, return its first ``count`` rows, stop it."""
        rule = self._rule()
        reply, handle = self.host.start_source(name, rule=rule, datasource=datasource,
                                               config=conf)
        if reply != b"ok":
            raise self._fail(f"source {name!r} did not start", reply)
        try:
            rows: list[dict[str, Any]] = []
            for frame in handle.frames(count, timeout):
                if frame.startswith(SOURCE_ERROR_PREFIX):
                    raise self._fail(f"source {name!r} reported an error", frame)
                rows.append(json.loads(frame)["message"])
            return rows
        finally:
            self.host.stop(SOURCE.wire, name, rule=rule)

    def sink(self, name: str, data: Iterable[Any], conf: Mapping[str, Any] | None = None, *,
             send_single: bool = False, require_ack: bool = False,
             timeout: float = 10.0) -> list[dict[str, Any]]:
        """Start sink ``name``, send ``data`` (see encode_sink_payloads), stop it.

        Returns the acks with ``require_ack`` (one per message), else ``[]``.
        """
        rule = self._rule()
        config = {**(conf or {}), "sendSingle": send_single, "requireAck": require_ack}
        reply, handle = self.host.start_sink(name, rule=rule, config=config)
        if reply != b"ok" or handle is None:
            raise self._fail(f"sink {name!r} did not start", reply)
        try:
            acks = []
            for frame in encode_sink_payloads(data, send_single):
                handle.send(frame)
                if require_ack:
                    acks.append(handle.ack(timeout))
            return acks
        finally:
            self.host.stop(SINK.wire, name, rule=rule)

    def function(self, name: str, *args: Any) -> Any:
        """Call function ``name`` with ``args``; PluginProcessError if it fails."""
        handle = self._function(name)
        reply = handle.exec(*args, rule=self._rule())
        if not reply["state"]:
            raise self._fail(f"function {name!r} failed", str(reply["result"]).encode())
        return reply["result"]

    def _function(self, name: str) -> FunctionHandle:
        if name not in self._functions:
            reply, handle = self.host.start_function(name)
            if reply != b"ok":
                raise self._fail(f"function {name!r} did not start", reply)
            self._functions[name] = handle
        return self._functions[name]

    def close(self) -> None:
        """Stop the plugin process and remove its sockets (and its temporary state)."""
        self.host.close()
        if self._temp_state is not None:
            shutil.rmtree(self._temp_state, ignore_errors=True)
            self._temp_state = None

    def __enter__(self) -> PluginHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
