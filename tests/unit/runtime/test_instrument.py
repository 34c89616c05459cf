"""Counting points: absent with metrics off, counting on the symbol's thread when on."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from ekuiper import Context, Function, PluginConfig, Sink, Source
from ekuiper._kinds import FUNCTION, SOURCE
from ekuiper._metrics import SymbolStats
from ekuiper._protocol import Control, Meta
from ekuiper._runtime.function import FunctionRuntime
from ekuiper._runtime.instrument import function_rules, instrument
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper._runtime.sink import SinkRuntime
from ekuiper._runtime.source import SourceRuntime
from ekuiper._transport import ChannelTimeout
from ekuiper.errors import ChannelClosedError
from ekuiper.testing import MemoryTransport


class Three(Source):
    def open(self, ctx: Context) -> None:
        for i in range(3):
            ctx.emit({"i": i})


class Quiet(Sink):
    def collect(self, ctx: Context, data: Any) -> None:
        pass


def start(runtime: PluginRuntime, kind: str, symbol: str) -> Any:
    control = {"symbolName": symbol, "meta": {"ruleId": "r", "opId": "o", "instanceId": 0},
               "pluginType": kind}
    command = {"cmd": "start", "arg": json.dumps(control)}
    assert runtime.handle(json.dumps(command).encode()) == b"ok"
    return next(iter(runtime.symbols.values()))


def plugin(metrics: bool) -> tuple[PluginRuntime, MemoryTransport]:
    transport = MemoryTransport()
    runtime = PluginRuntime(PluginConfig("p", {"three": Three}, {"quiet": Quiet}), transport)
    runtime.metrics_on = metrics
    return runtime, transport


def test_metrics_off_leaves_the_row_paths_alone() -> None:
    """With metrics off a runtime has no stats and runs its class's own methods."""
    runtime, transport = plugin(False)
    sink: SinkRuntime = start(runtime, "sink", "quiet")
    assert sink.stats is None and "_deliver" not in vars(sink)
    assert sink.acks is transport.channels["ack:r"]
    runtime.shutdown()


def test_metrics_off_source_emits_straight_into_its_channel() -> None:
    """With metrics off the source context's emitter is the transport's channel itself."""
    runtime, _ = plugin(False)
    source: SourceRuntime = start(runtime, "source", "three")
    assert source.ctx._emitter is source.channel
    runtime.shutdown()


def test_metrics_on_counts_source_rows_and_bytes() -> None:
    """With metrics on a source's rows and bytes are what went into its channel."""
    runtime, _ = plugin(True)
    source: SourceRuntime = start(runtime, "source", "three")
    assert source.thread is not None
    source.thread.join(5)
    sent = source.channel.sent  # type: ignore[union-attr]
    assert source.stats is not None
    assert (source.stats.rows, source.stats.bytes) == (3, sum(map(len, sent)))
    runtime.shutdown()


def test_emit_timing_out_marks_blocked_until_a_send_succeeds() -> None:
    """While emit waits on a send that timed out the source is blocked; a success clears it."""
    from ekuiper._metrics import SymbolStats
    from ekuiper._protocol import Meta
    from ekuiper._runtime.context import SymbolContext
    from ekuiper._runtime.instrument import instrument

    stats = SymbolStats({})
    blocked_while_waiting: list[int] = []

    class Full:
        """eKuiper not reading for two sends, then taking the row."""
        timeouts = 2

        def send(self, data: bytes) -> None:
            if self.timeouts:
                self.timeouts -= 1
                blocked_while_waiting.append(stats.blocked_since_ns)
                raise ChannelTimeout("full")

    class SourceLike:
        control = Control("src", SOURCE.wire, Meta("r", "op", 0))
        ctx = SymbolContext(SOURCE.noun, "src", Meta("r", "op", 0), logging.getLogger("t"))

    SourceLike.ctx.attach_emitter(Full())  # type: ignore[arg-type]
    source = SourceLike()
    source.stats = stats  # type: ignore[attr-defined]
    instrument(source)
    source.ctx.emit({"i": 1})
    # The first timeout is seen before it is marked; the retry inside the wait sees it.
    assert blocked_while_waiting[0] == 0 and blocked_while_waiting[1] > 0
    assert stats.blocked_since_ns == 0 and stats.rows == 1


class Up(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        return str(args[0]).upper()


def test_an_idle_keepalive_is_counted_as_hearing_from_ekuiper() -> None:
    """A function receive that times out (eKuiper's idle keepalive) counts as heard."""
    transport = MemoryTransport()
    runtime = PluginRuntime(PluginConfig("p", {}, {}, {"up": Up}), transport)
    runtime.metrics_on = True
    control = {"symbolName": "up", "meta": {"ruleId": "", "opId": "", "instanceId": 0},
               "pluginType": "func"}
    assert runtime.handle(json.dumps({"cmd": "start", "arg": json.dumps(control)}).encode()) \
        == b"ok"
    function = runtime.functions["up"]
    assert function.stats is not None
    heard = function.stats.heard
    function.channel.inbox.put(None)  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while function.stats.heard == heard and time.monotonic() < deadline:
        time.sleep(0.01)
    assert function.stats.heard == heard + 1
    runtime.shutdown()


class _Scripted:
    """A function channel that hands out ``requests``, then is closed; each send records
    the rule's call count at that moment."""

    def __init__(self, requests: list[bytes], counted: Any) -> None:
        self.requests = requests
        self.counted = counted
        self.sent: list[tuple[bytes, int]] = []

    def send(self, data: bytes) -> None:
        self.sent.append((data, self.counted()))

    def recv(self) -> bytes:
        if not self.requests:
            raise ChannelClosedError("done")
        return self.requests.pop(0)

    def close(self) -> None:
        pass


def _counted_function() -> FunctionRuntime:
    function = FunctionRuntime(Control("up", FUNCTION.wire, Meta("", "", 0)), Up(), "p",
                               MemoryTransport(), logging.getLogger("test"))
    function.stats = SymbolStats({"kind": "function", "rule": ""})
    instrument(function)
    return function


def _exec(rule: str, *args: Any) -> bytes:
    meta = json.dumps({"ruleId": rule, "opId": "o", "instanceId": 0, "funcId": 0})
    return json.dumps({"func": "Exec", "arg": [*args, meta]}).encode()


def test_metrics_off_function_serves_with_its_class_loop() -> None:
    """With metrics off a function's request loop is FunctionRuntime's own."""
    runtime = PluginRuntime(PluginConfig("p", {}, {}, {"up": Up}), MemoryTransport())
    control = {"symbolName": "up", "meta": {"ruleId": "", "opId": "", "instanceId": 0},
               "pluginType": "func"}
    assert runtime.handle(json.dumps({"cmd": "start", "arg": json.dumps(control)}).encode()) \
        == b"ok"
    function = runtime.functions["up"]
    assert "serve" not in vars(function) and function.stats is None
    runtime.shutdown()


def test_function_counts_each_rules_requests_after_their_reply_is_sent() -> None:
    """Each rule's calls, rows and bytes count, each after the reply went out."""
    function = _counted_function()
    requests = [_exec("r1", "a"), _exec("r2", "b"), _exec("r1", "c")]
    channel = _Scripted(list(requests),
                        lambda: sum(s.calls for s in function_rules(function).values()))
    with pytest.raises(ChannelClosedError):
        function.serve(channel)
    assert [json.loads(data)["result"] for data, _ in channel.sent[1:]] == ["A", "B", "C"]
    assert [calls for _, calls in channel.sent[1:]] == [0, 1, 2]  # not yet counted
    r1 = function_rules(function)["r1"]
    assert (r1.calls, r1.rows, r1.bytes) == (2, 2, len(requests[0]) + len(requests[2]))
    assert function_rules(function)["r2"].calls == 1


def test_function_error_reply_counts_as_the_rules_error() -> None:
    """A failing exec counts an error, with its text, for the calling rule."""
    function = _counted_function()
    with pytest.raises(ChannelClosedError):
        function.serve(_Scripted([_exec("r1")], lambda: 0))  # no args[0]: IndexError
    r1 = function_rules(function)["r1"]
    assert (r1.calls, r1.rows, r1.errors) == (1, 0, 1)
    assert r1.last_error is not None and "IndexError" in r1.last_error
