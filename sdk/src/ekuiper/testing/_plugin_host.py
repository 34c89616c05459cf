"""PluginHost: a plugin folder run as a real process, as eKuiper runs it."""

from __future__ import annotations

import json
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
    """

    def __init__(self, folder: str | Path, *, python: str | None = None,
                 env: Mapping[str, str] | None = None, v1: bool = False) -> None:
        self.folder = Path(folder).resolve()
        self.name = self.folder.name
        descriptor_path = self.folder / f"{self.name}.json"
        try:
            descriptor = json.loads(descriptor_path.read_text(encoding="utf-8"))
            executable = descriptor["executable"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PluginProcessError(f"{descriptor_path}: cannot read the executable from "
                                     f"the descriptor ({exc})") from None
        self.host = ProtocolHost.in_temp_dir(self.name, v1=v1)
        self._rules = 0
        self._functions: dict[str, FunctionHandle] = {}
        try:
            self.host.launch(self.folder / executable, env=env, python=python)
        except RuntimeError as exc:
            self.host.close()
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
        """Stop the plugin process and remove its sockets."""
        self.host.close()

    def __enter__(self) -> PluginHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
