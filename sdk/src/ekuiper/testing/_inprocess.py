"""In-process runs: a symbol object driven by the SDK's real runtime, no sockets.

The runtimes are the ones a plugin process uses, over an in-memory transport; each call
here starts one symbol, feeds or drains it, stops it and returns what happened, blocking
the calling thread until then (a source or sink run at most about its ``timeout``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ekuiper import _logging, _protocol
from ekuiper._kinds import FUNCTION, SINK, SOURCE
from ekuiper._protocol import SOURCE_ERROR_PREFIX, Control, Meta
from ekuiper._runtime.function import FunctionRuntime
from ekuiper._runtime.sink import SinkRuntime
from ekuiper._runtime.source import SourceRuntime
from ekuiper.function import Function
from ekuiper.sink import Sink
from ekuiper.source import Source
from ekuiper.testing._memory import MemoryChannel, MemoryTransport

if TYPE_CHECKING:
    from ekuiper._state import Store

__all__ = [
    "SOURCE_ERROR_PREFIX",
    "SinkRun",
    "SourceRun",
    "call_function",
    "encode_sink_payloads",
    "is_aggregate",
    "run_sink",
    "run_source",
    "validate",
]



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
    retries: int = 0  # collect calls repeated by the sink's retry policy
    retry_exhausted: int = 0  # messages failed after their last retry


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _state_store(state: MutableMapping[str, Any] | None) -> Store:
    # Imported here: every pytest session loads ekuiper.testing, few runs keep state.
    from ekuiper._state import DictStore

    return DictStore(state)


def _symbol_name(obj: object) -> str:
    return type(obj).__name__.lower()


def run_source(source: Source, datasource: str = "", conf: Mapping[str, Any] | None = None,
               *, count: int = 1, timeout: float = 5.0, rule_id: str = "test",
               op_id: str = "op", instance_id: int = 0,
               state: MutableMapping[str, Any] | None = None) -> SourceRun:
    """Configure and open ``source``, collect until ``count`` rows (or ``timeout``), close.

    Raises what ``configure`` or ``open`` raised. Fewer rows than ``count`` after
    ``timeout`` is not an error: look at ``len(run.rows)``. ``state``: what
    ``ctx.get_state`` finds, key -> value; ``put_state``/``delete_state`` change it in
    place, values after their JSON round trip (default: a fresh empty dict).
    """
    control = Control(_symbol_name(source), SOURCE.wire, Meta(rule_id, op_id, instance_id),
                      datasource, dict(conf or {}))
    transport = MemoryTransport()
    runtime = SourceRuntime(control, source, transport, 1000,
                            _logging.symbol_logger(f"test/{control.symbol_name}"))
    runtime.ctx.state_store = _state_store(state)
    runtime.start()
    channel = transport.channels[f"source:{rule_id}"]
    assert isinstance(channel, MemoryChannel)
    thread = runtime.thread
    _wait(lambda: sum(not f.startswith(SOURCE_ERROR_PREFIX) for f in channel.sent) >= count
          or (thread is not None and not thread.is_alive() and runtime.failure is not None),
          timeout)
    runtime.stop()
    if runtime.failure is not None:
        raise runtime.failure
    run = SourceRun()
    for frame in channel.sent:
        if frame.startswith(SOURCE_ERROR_PREFIX):
            run.errors.append(frame[len(SOURCE_ERROR_PREFIX):].decode())
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
             instance_id: int = 0, state: MutableMapping[str, Any] | None = None) -> SinkRun:
    """Configure and open ``sink``, hand it ``data`` as eKuiper would, then close it.

    ``data`` items: a dict (one row), a list of dicts, or raw bytes. With
    ``require_ack`` the returned ``acks`` hold one ``{}``/``{"error": ...}`` per message.
    Unless ``raise_errors=False``, the first exception ``open``/``collect`` raised is
    re-raised after the run (its ack, if any, is still recorded). A retry policy (the
    sink's ``on_error`` or ``collectRetries`` etc. in ``conf``) applies as in eKuiper: a
    collect that succeeds on a retry raises nothing; give ``timeout`` room for backoffs.
    ``state``: the sink's kept values, as for ``run_source``.
    """
    config = {**(conf or {}), "sendSingle": send_single, "requireAck": require_ack}
    control = Control(_symbol_name(sink), SINK.wire, Meta(rule_id, op_id, instance_id), "", config)
    transport = MemoryTransport()
    runtime = SinkRuntime(control, sink, transport, 1000,
                          _logging.symbol_logger(f"test/{control.symbol_name}"))
    runtime.ctx.state_store = _state_store(state)
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
    return SinkRun([json.loads(a) for a in acks_channel.sent], frames, runtime.retries,
                   runtime.retry_exhausted)


def _function_runtime(function: Function,
                      state: MutableMapping[str, Any] | None = None) -> FunctionRuntime:
    control = Control(_symbol_name(function), FUNCTION.wire, Meta("", "", 0))
    runtime = FunctionRuntime(control, function, "test", MemoryTransport(),
                              _logging.symbol_logger(f"test/{control.symbol_name}"))
    runtime.state_store = _state_store(state)
    return runtime


def _request(runtime: FunctionRuntime, func: str, arg: Any) -> dict[str, Any]:
    runtime.last_failure = None
    reply = json.loads(runtime.handle(json.dumps({"func": func, "arg": arg}).encode()))
    if not reply["state"] and runtime.last_failure is not None:
        raise runtime.last_failure
    return dict(reply)


def call_function(function: Function, *args: Any, rule_id: str = "test", op_id: str = "op",
                  instance_id: int = 0, func_id: int = 0,
                  state: MutableMapping[str, Any] | None = None) -> Any:
    """Call ``function.exec`` through the SDK's real request path and return the result.

    The result travels as eKuiper would receive it (JSON), so a value JSON cannot carry
    raises TypeError here, as it would fail the rule. Exceptions from ``exec`` propagate,
    unless the function's ``on_error`` policy replaces them: then its value is returned.
    ``state``: the rule's kept values for this function, as for ``run_source``; pass the
    same dict to successive calls to carry state from one call to the next.
    """
    meta = json.dumps({"ruleId": rule_id, "opId": op_id, "instanceId": instance_id,
                       "funcId": func_id})
    reply = _request(_function_runtime(function, state), "Exec", [*args, meta])
    if not reply["state"]:
        raise TypeError(reply["result"])
    return reply["result"]


def validate(function: Function, args: list[Any]) -> str | None:
    """None if ``function`` accepts the argument nodes, else its error text.

    The nodes are eKuiper's AST as JSON: a literal is ``{"Val": 1.5}`` (also for strings
    and booleans), a column ``{"StreamName": "s", "Name": "a", ...}``.
    """
    reply = _request(_function_runtime(function), "Validate", args)
    return None if reply["state"] else str(reply["result"])


def is_aggregate(function: Function) -> bool:
    """What ``function`` answers eKuiper's IsAggregate question with."""
    return bool(_request(_function_runtime(function), "IsAggregate", None)["result"])
