"""Counting points: absent with metrics off, counting on the symbol's thread when on."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ekuiper import Context, Function, PluginConfig, Sink, Source, _protocol
from ekuiper._kinds import SOURCE
from ekuiper._metrics import SymbolStats
from ekuiper._protocol import Control
from ekuiper._runtime.instrument import function_rules, settle, sync_sink
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper._runtime.sink import SinkRuntime
from ekuiper._runtime.source import SourceRuntime
from ekuiper._transport import Channel, ChannelTimeout
from ekuiper.testing import MemoryTransport
from ekuiper.testing._memory import MemoryChannel
from tests.protocol.events import wait_for


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
    assert sink.stats is None and "_receive" not in vars(sink)
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


def test_metrics_on_counts_a_source_error_frame_as_an_error_not_a_row() -> None:
    """emit_error counts an error (with its text and bytes), never a row."""
    class Failing(Source):
        def open(self, ctx: Context) -> None:
            ctx.emit({"i": 0})
            ctx.emit_error("sensor offline")

    runtime = PluginRuntime(PluginConfig("p", {"failing": Failing}, {}), MemoryTransport())
    runtime.metrics_on = True
    source: SourceRuntime = start(runtime, "source", "failing")
    assert source.thread is not None
    source.thread.join(5)
    sent = source.channel.sent  # type: ignore[union-attr]
    stats = source.stats
    assert stats is not None and len(sent) == 2 and sent[1].startswith(
        _protocol.SOURCE_ERROR_PREFIX)
    assert (stats.rows, stats.errors, stats.bytes) == (1, 1, sum(map(len, sent)))
    assert stats.last_error == "sensor offline" and stats.blocked_since_ns == 0
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


def test_a_sink_is_in_call_exactly_while_collect_runs() -> None:
    """sync_sink says in_call False before a message, True while collect() holds it
    (the message already counted in rows), False after."""
    entered, release = threading.Event(), threading.Event()

    class Held(Sink):
        def collect(self, ctx: Context, data: Any) -> None:
            entered.set()
            release.wait(5)

    transport = MemoryTransport()
    runtime = PluginRuntime(PluginConfig("p", {}, {"held": Held}), transport)
    runtime.metrics_on = True
    sink: SinkRuntime = start(runtime, "sink", "held")
    assert sink.stats is not None
    sync_sink(sink)
    assert (sink.stats.in_call, sink.stats.rows) == (False, 0)
    transport.channels["sink:r"].inbox.put(b'{"a": 1}')
    assert entered.wait(5)
    sync_sink(sink)
    assert (sink.stats.in_call, sink.stats.rows) == (True, 1)
    release.set()
    wait_for(lambda: sink.delivered >= 1, timeout=5, what="the held message delivered")
    sync_sink(sink)
    assert (sink.stats.in_call, sink.stats.rows) == (False, 1)
    runtime.shutdown()


def test_sync_sink_never_counts_ahead_of_the_sink() -> None:
    """Read while the loop is between its two counts, sync_sink gives the message in hand
    once: delivered already past it, last_taken still naming it."""
    from types import SimpleNamespace

    stats = SymbolStats({})
    stats.last_taken = 4
    sink = SimpleNamespace(delivered=5, stats=stats)
    sync_sink(sink)
    assert (stats.rows, stats.in_call) == (5, False)
    stats.last_taken = 5  # the sixth message taken, not yet delivered
    sync_sink(sink)
    assert (stats.rows, stats.in_call) == (6, True)


def test_a_sink_times_every_nth_collect(monkeypatch: Any) -> None:
    """With a latency sample of 4, messages 4 and 8 of 10 are timed; all 10 are counted."""
    import ekuiper._runtime.instrument as instrument_module

    monkeypatch.setattr(instrument_module, "latency_every", 4)
    runtime, transport = plugin(True)
    sink: SinkRuntime = start(runtime, "sink", "quiet")
    for i in range(10):
        transport.channels["sink:r"].inbox.put(b'{"i": %d}' % i)
    wait_for(lambda: sink.delivered >= 10, timeout=5, what="10 messages delivered")
    assert sink.stats is not None
    sync_sink(sink)
    assert (sink.stats.rows, sum(sink.stats.hist)) == (10, 2)
    runtime.shutdown()


# CPython (3.11 to 3.13) keeps at most this many attribute names in the key table an
# instance shares with its class's other instances; one more and the attribute and method
# lookups specialised on that table fall back to dict lookups, on every row.
SHARED_KEYS_MAX = 30


def test_instrumented_runtimes_keep_a_shared_key_instance_dict() -> None:
    """With metrics on, a sink, a function and a source's context each hold fewer
    instance attributes than CPython's shared-key table takes."""
    runtime, _ = plugin(True)
    sink = start(runtime, "sink", "quiet")
    source = start(runtime, "source", "three")
    functions, function = start_up(True)
    sizes = {"sink": len(vars(sink)), "function": len(vars(function)),
             "source context": len(vars(source.ctx))}
    assert all(size < SHARED_KEYS_MAX for size in sizes.values()), sizes
    runtime.shutdown()
    functions.shutdown()


class Up(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        return str(args[0]).upper()


def start_up(metrics: bool, transport: MemoryTransport | None = None) -> tuple[PluginRuntime, Any]:
    """A plugin with the function "up", started (rule-less, as eKuiper starts functions)."""
    runtime = PluginRuntime(PluginConfig("p", {}, {}, {"up": Up}), transport or MemoryTransport())
    runtime.metrics_on = metrics
    control = {"symbolName": "up", "meta": {"ruleId": "", "opId": "", "instanceId": 0},
               "pluginType": "func"}
    assert runtime.handle(json.dumps({"cmd": "start", "arg": json.dumps(control)}).encode()) \
        == b"ok"
    return runtime, runtime.functions["up"]


def test_an_idle_keepalive_is_counted_as_hearing_from_ekuiper() -> None:
    """A function receive that times out (eKuiper's idle keepalive) counts as heard."""
    runtime, function = start_up(True)
    base = function.stats
    assert base is not None
    heard = base.heard
    function.channel.inbox.put(None)  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while base.heard == heard and time.monotonic() < deadline:
        time.sleep(0.01)
    assert base.heard == heard + 1
    runtime.shutdown()


def test_metrics_off_function_serves_with_its_class_loop() -> None:
    """With metrics off a function's request loop is FunctionRuntime's own."""
    runtime, function = start_up(False)
    assert function.stats is None and "_serve" not in vars(function)
    runtime.shutdown()


def test_settle_waits_for_a_call_being_counted() -> None:
    """settle returns once the call in progress is counted, well before its limit."""
    stats = SymbolStats({"kind": "function", "rule": ""})
    stats.in_call = True

    def count() -> None:
        time.sleep(0.01)
        stats.calls += 1
        stats.in_call = False

    counting = threading.Thread(target=count)
    counting.start()
    began = time.monotonic()
    settle(stats, max_wait_s=5.0)
    assert stats.calls == 1 and time.monotonic() - began < 4.0
    counting.join()


def test_settle_gives_up_on_a_call_still_running() -> None:
    """A call that stays in exec holds settle no longer than its limit."""
    stats = SymbolStats({"kind": "function", "rule": ""})
    stats.in_call = True
    began = time.monotonic()
    settle(stats, max_wait_s=0.05)
    assert 0.05 <= time.monotonic() - began < 2.0 and stats.in_call


class ScrapingWhileSending(MemoryChannel):
    """A function channel that, as each reply goes out, scrapes from another thread."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.scrape: Callable[[], int] | None = None
        self.scrapes: list[threading.Thread] = []
        self.seen: list[int] = []

    def send(self, data: bytes) -> None:
        super().send(data)
        scrape = self.scrape
        if data != _protocol.HANDSHAKE and scrape is not None:
            scraping = threading.Thread(target=lambda: self.seen.append(scrape()))
            scraping.start()
            self.scrapes.append(scraping)
            time.sleep(0.002)  # the send's system call, during which the GIL is free


class ScrapingTransport(MemoryTransport):
    def function(self, symbol_name: str, keepalive_ms: int) -> Channel:
        channel = ScrapingWhileSending(f"function:{symbol_name}")
        self.channels[channel.name] = channel
        return channel


def test_a_scrape_while_a_reply_is_sent_sees_its_call() -> None:
    """A reply is counted just after it is sent; a scrape meanwhile waits and sees it."""
    transport = ScrapingTransport()
    runtime, function = start_up(True, transport)
    channel = transport.channels["function:up"]
    assert isinstance(channel, ScrapingWhileSending)
    rules = function_rules(function)

    def scrape() -> int:
        settle(rules[""], max_wait_s=5.0)  # generous: a loaded machine may be slow
        return rules["r1"].calls if "r1" in rules else 0

    channel.scrape = scrape
    meta = json.dumps({"ruleId": "r1", "opId": "op", "instanceId": 0, "funcId": 0})
    for call in range(3):
        channel.inbox.put(json.dumps({"func": "Exec", "arg": ["a", meta]}).encode())
        deadline = time.monotonic() + 5
        while len(channel.scrapes) <= call and time.monotonic() < deadline:
            time.sleep(0.001)
        channel.scrapes[call].join(5)
    runtime.shutdown()
    assert channel.seen == [1, 2, 3]


def test_a_rule_id_no_kept_context_could_carry_counts_under_no_rule() -> None:
    """A call from a rule id over the kept-context cap counts under rule "", not its own."""
    runtime, function = start_up(True)
    rules = function_rules(function)
    rule = "r" * (_protocol.MAX_KEPT_CONTEXT_CHARS + 1)
    meta = json.dumps({"ruleId": rule, "opId": "op", "instanceId": 0, "funcId": 0})
    function.channel.inbox.put(json.dumps({"func": "Exec", "arg": ["a", meta]}).encode())
    deadline = time.monotonic() + 5
    while rules[""].calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    runtime.shutdown()
    assert rules[""].calls == 1 and list(rules) == [""]
