"""Counting points: absent with metrics off, counting on the symbol's thread when on."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ekuiper import Context, Function, PluginConfig, Sink, Source
from ekuiper._kinds import SOURCE
from ekuiper._protocol import Control
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper._runtime.sink import SinkRuntime
from ekuiper._runtime.source import SourceRuntime
from ekuiper._transport import ChannelTimeout
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
    assert function.idle_stats is not None
    heard = function.idle_stats.heard
    function.channel.inbox.put(None)  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while function.idle_stats.heard == heard and time.monotonic() < deadline:
        time.sleep(0.01)
    assert function.idle_stats.heard == heard + 1
    runtime.shutdown()
