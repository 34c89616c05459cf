"""Run a plugin's symbols without eKuiper: in-process or as a real plugin process.

In-process (fast; the SDK's real runtimes over an in-memory transport)::

    from ekuiper.testing import run_source, run_sink, call_function

    run = run_source(PyJson(), datasource="demo", count=3)
    assert run.rows[0]["name"] == "pyjson"
    acks = run_sink(PrintSink(), [{"a": 1}], require_ack=True).acks   # [{}]
    assert call_function(RevertFunc(), "abc") == "cba"

As a subprocess, exactly as eKuiper starts it (the plugin's main program, its descriptor,
the nng sockets), against :class:`ProtocolHost`, a stand-in for eKuiper's side::

    with PluginHost("plugins/pysam") as host:
        rows = host.source("pyjson", datasource="demo", count=3)
        assert host.function("revert", "abc") == "cba"

An exception raised by plugin code in-process comes back as that exception, with the
plugin's traceback. From a subprocess it comes back as PluginProcessError whose message
holds eKuiper's error text and the end of the plugin's output.

pytest: the ``ekuiper_plugin`` fixture (registered by installing the SDK) starts a
PluginHost and closes it after the test: ``host = ekuiper_plugin("plugins/pysam")``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ekuiper import _logging, _protocol
from ekuiper._protocol import Control, Meta
from ekuiper._runtime.function import FunctionRuntime
from ekuiper._runtime.sink import SinkRuntime
from ekuiper._runtime.source import SourceRuntime
from ekuiper.errors import PluginProcessError
from ekuiper.function import Function
from ekuiper.sink import Sink
from ekuiper.source import Source
from ekuiper.testing._host import FunctionHandle, ProtocolHost, SinkHandle, SourceHandle
from ekuiper.testing._memory import MemoryChannel, MemoryTransport

__all__ = [
    "FunctionHandle",
    "MemoryTransport",
    "PluginHost",
    "PluginProcessError",
    "ProtocolHost",
    "SinkHandle",
    "SinkRun",
    "SourceHandle",
    "SourceRun",
    "call_function",
    "encode_sink_payloads",
    "is_aggregate",
    "run_sink",
    "run_source",
    "validate",
]

_ERROR_PREFIX = b"source error: "


@dataclass
class SourceRun:
    """What a source emitted during ``run_source``."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    metas: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # emit_error texts, in order


@dataclass
class SinkRun:
    """What a sink answered during ``run_sink``: one ack per message with requireAck."""

    acks: list[dict[str, Any]] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)  # the frames handed to the sink


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _symbol_name(obj: object) -> str:
    return type(obj).__name__.lower()


def run_source(source: Source, datasource: str = "", conf: Mapping[str, Any] | None = None,
               *, count: int = 1, timeout: float = 5.0, rule_id: str = "test",
               op_id: str = "op", instance_id: int = 0) -> SourceRun:
    """Configure and open ``source``, collect until ``count`` rows (or ``timeout``), close.

    Raises what ``configure`` or ``open`` raised. Fewer rows than ``count`` after
    ``timeout`` is not an error: look at ``len(run.rows)``.
    """
    control = Control(_symbol_name(source), "source", Meta(rule_id, op_id, instance_id),
                      datasource, dict(conf or {}))
    transport = MemoryTransport()
    runtime = SourceRuntime(control, source, transport, 1000,
                            _logging.symbol_logger(f"test/{control.symbol_name}"))
    runtime.start()
    channel = transport.channels[f"source:{rule_id}"]
    assert isinstance(channel, MemoryChannel)
    thread = runtime.thread
    _wait(lambda: sum(not f.startswith(_ERROR_PREFIX) for f in channel.sent) >= count
          or (thread is not None and not thread.is_alive() and runtime.failure is not None),
          timeout)
    runtime.stop()
    if runtime.failure is not None:
        raise runtime.failure
    run = SourceRun()
    for frame in channel.sent:
        if frame.startswith(_ERROR_PREFIX):
            run.errors.append(frame[len(_ERROR_PREFIX):].decode())
            continue
        decoded = json.loads(frame)
        run.rows.append(decoded["message"])
        run.metas.append(decoded["meta"])
    return run


def encode_sink_payloads(data: Iterable[Any], send_single: bool = False) -> list[bytes]:
    """Frames as eKuiper sends them: ``bytes`` as given, a dict as one row, a list as rows.

    ``send_single=False`` (eKuiper's default) sends each message as a JSON array;
    ``True`` sends one JSON object per row.
    """
    frames: list[bytes] = []
    for item in data:
        if isinstance(item, (bytes, bytearray)):
            frames.append(bytes(item))
            continue
        rows = [item] if isinstance(item, Mapping) else list(item)
        if send_single:
            frames.extend(_protocol.dumps(row) for row in rows)
        else:
            frames.append(_protocol.dumps(rows))
    return frames


def run_sink(sink: Sink, data: Iterable[Any], conf: Mapping[str, Any] | None = None, *,
             send_single: bool = False, require_ack: bool = False, timeout: float = 5.0,
             raise_errors: bool = True, rule_id: str = "test", op_id: str = "op",
             instance_id: int = 0) -> SinkRun:
    """Configure and open ``sink``, hand it ``data`` as eKuiper would, then close it.

    ``data`` items: a dict (one row), a list of dicts, or raw bytes. With
    ``require_ack`` the returned ``acks`` hold one ``{}``/``{"error": ...}`` per message.
    Unless ``raise_errors=False``, the first exception ``open``/``collect`` raised is
    re-raised after the run (its ack, if any, is still recorded).
    """
    config = {**(conf or {}), "sendSingle": send_single, "requireAck": require_ack}
    control = Control(_symbol_name(sink), "sink", Meta(rule_id, op_id, instance_id), "", config)
    transport = MemoryTransport()
    runtime = SinkRuntime(control, sink, transport, 1000,
                          _logging.symbol_logger(f"test/{control.symbol_name}"))
    runtime.start()
    frames = encode_sink_payloads(data, send_single)
    inbox = transport.channels[f"sink:{rule_id}"]
    assert isinstance(inbox, MemoryChannel)
    for frame in frames:
        inbox.inbox.put(frame)
    done = _wait(lambda: runtime.delivered >= len(frames), timeout)
    runtime.stop()
    acks_channel = transport.channels[f"ack:{rule_id}"]
    assert isinstance(acks_channel, MemoryChannel)
    if raise_errors and runtime.first_error is not None:
        raise runtime.first_error
    if not done:
        raise TimeoutError(f"the sink handled {runtime.delivered} of {len(frames)} messages "
                           f"within {timeout} s")
    return SinkRun([json.loads(a) for a in acks_channel.sent], frames)


def _function_runtime(function: Function) -> FunctionRuntime:
    control = Control(_symbol_name(function), "func", Meta("", "", 0))
    return FunctionRuntime(control, function, "test", MemoryTransport(),
                           _logging.symbol_logger(f"test/{control.symbol_name}"))


def _request(runtime: FunctionRuntime, func: str, arg: Any) -> dict[str, Any]:
    runtime.last_failure = None
    reply = json.loads(runtime.handle(json.dumps({"func": func, "arg": arg}).encode()))
    if not reply["state"] and runtime.last_failure is not None:
        raise runtime.last_failure
    return dict(reply)


def call_function(function: Function, *args: Any, rule_id: str = "test", op_id: str = "op",
                  instance_id: int = 0, func_id: int = 0) -> Any:
    """Call ``function.exec`` through the SDK's real request path and return the result.

    The result travels as eKuiper would receive it (JSON), so a value JSON cannot carry
    raises TypeError here, as it would fail the rule. Exceptions from ``exec`` propagate.
    """
    meta = json.dumps({"ruleId": rule_id, "opId": op_id, "instanceId": instance_id,
                       "funcId": func_id})
    reply = _request(_function_runtime(function), "Exec", [*args, meta])
    if not reply["state"]:
        raise TypeError(reply["result"])
    return reply["result"]


def validate(function: Function, args: list[Any]) -> str | None:
    """None if ``function`` accepts the argument nodes, else its error text."""
    reply = _request(_function_runtime(function), "Validate", args)
    return None if reply["state"] else str(reply["result"])


def is_aggregate(function: Function) -> bool:
    """What ``function`` answers eKuiper's IsAggregate question with."""
    return bool(_request(_function_runtime(function), "IsAggregate", None)["result"])


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
                if frame.startswith(_ERROR_PREFIX):
                    raise self._fail(f"source {name!r} reported an error", frame)
                rows.append(json.loads(frame)["message"])
            return rows
        finally:
            self.host.stop("source", name, rule=rule)

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
            self.host.stop("sink", name, rule=rule)

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
