"""Async symbols: the plugin's one event loop and the async source, sink and function."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ekuiper import Context, ErrorPolicy, Function, PluginConfig, Sink, Source
from ekuiper._protocol import Control, Meta
from ekuiper._runtime import aio, base
from ekuiper._runtime import sink as sink_runtime
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper._runtime.source import SourceRuntime
from ekuiper._transport import ChannelTimeout
from ekuiper.errors import ChannelClosedError, SymbolError
from ekuiper.testing import MemoryTransport, call_function, run_sink, run_source
from ekuiper.testing._memory import MemoryChannel
from tests.conftest import loaded_after


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == aio.LOOP_THREAD_NAME]


# -- the loop -----------------------------------------------------------------------------


def test_one_loop_serves_every_async_symbol() -> None:
    """Coroutines of different symbols run on the same loop, on one thread."""
    seen: list[int] = []

    async def where() -> None:
        seen.append(id(asyncio.get_running_loop()))

    aio.run(where())
    aio.run(where())
    assert len(set(seen)) == 1
    assert len(_loop_threads()) == 1


def test_run_returns_the_coroutines_result_and_raises_its_exception() -> None:
    """run() hands back what the coroutine returned, or re-raises what it raised."""
    async def ok() -> int:
        return 7

    async def bad() -> None:
        raise KeyError("k")

    assert aio.run(ok()) == 7
    with pytest.raises(KeyError):
        aio.run(bad())


def test_an_exception_leaves_the_loop_serving() -> None:
    """A coroutine that raises ends only itself: the loop runs the next one."""
    async def bad() -> None:
        raise RuntimeError("boom")

    async def ok() -> str:
        return "still here"

    with pytest.raises(RuntimeError):
        aio.run(bad())
    assert aio.run(ok()) == "still here"


def test_run_on_the_loop_thread_is_refused() -> None:
    """A blocking run() from the loop's own thread raises instead of deadlocking."""
    async def nested() -> str:
        inner = asyncio.sleep(0)
        try:
            aio.run(inner)  # type: ignore[arg-type]
        except RuntimeError as exc:
            return str(exc)
        return "not refused"

    assert "await it instead" in aio.run(nested())


def test_owner_cancel_reaches_tasks_the_coroutine_created() -> None:
    """Cancelling an owner cancels its coroutine and the tasks that coroutine started."""
    owner = aio.Owner("test", logging.getLogger("test.aio"))
    cancelled: list[str] = []

    async def child() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append("child")
            raise

    async def parent() -> None:
        asyncio.get_running_loop().create_task(child())
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append("parent")
            raise

    aio.submit(owner.own(parent()))
    _wait_for(lambda: len(owner.tasks) == 2, "both tasks to start")
    assert owner.cancel(timeout=2) == 0
    assert sorted(cancelled) == ["child", "parent"]


def test_stop_ends_the_loop_thread_and_a_later_use_starts_a_new_one() -> None:
    """stop() cancels what runs and ends the thread; the next use starts a fresh loop."""
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(60)

    future = aio.submit(forever())
    assert started.wait(5)
    aio.stop()
    assert future.cancelled()
    assert _loop_threads() == []

    async def ok() -> int:
        return 1

    assert aio.run(ok()) == 1


# -- sources ------------------------------------------------------------------------------


class Numbers(Source):
    """An async generator source: yields {"n": i}."""

    def __init__(self) -> None:
        self.finished = threading.Event()

    async def open(self, ctx: Context) -> AsyncIterator[dict[str, int]]:  # type: ignore[override]
        n = 0
        try:
            while True:
                yield {"n": n}
                n += 1
                await asyncio.sleep(0)
        finally:
            self.finished.set()


def test_async_generator_source_emits_what_it_yields_in_order() -> None:
    """Each row an async generator open yields is emitted, in order."""
    rows = run_source(Numbers(), count=20).rows
    assert [row["n"] for row in rows[:20]] == list(range(20))


def test_stop_cancels_the_async_generator() -> None:
    """Stopping the source runs the generator's finally: the open is cancelled."""
    source = Numbers()
    run_source(source, count=3)
    assert source.finished.is_set()


class Emits(Source):
    """An async open that emits with emit_async, configured asynchronously."""

    async def configure(self, datasource: str, conf: dict[str, Any]) -> None:
        self.datasource = datasource
        self.thread = threading.current_thread().name

    async def open(self, ctx: Context) -> None:
        await ctx.emit_async({"ds": self.datasource})
        await ctx.emit_async([{"i": 1}, {"i": 2}], {"m": 1})
        await asyncio.sleep(60)


def test_async_configure_and_emit_async() -> None:
    """An async configure runs on the loop; emit_async sends a row and a list of rows."""
    source = Emits()
    run = run_source(source, datasource="dev", count=3)
    assert run.rows == [{"ds": "dev"}, {"i": 1}, {"i": 2}]
    assert run.metas[1:] == [{"m": 1}, {"m": 1}]
    assert source.thread == aio.LOOP_THREAD_NAME


class Sleeps(Source):
    """An async open that emits once, then only awaits: only cancellation ends it."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    async def open(self, ctx: Context) -> None:
        try:  # the stop may come as soon as the row is out, before emit_async returns
            await ctx.emit_async({"x": 1})
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


def test_stop_cancels_an_async_open_at_once() -> None:
    """Stopping a source whose open awaits cancels the open, well inside CLOSE_TIMEOUT_S."""
    source = Sleeps()
    began = time.monotonic()
    assert run_source(source).rows == [{"x": 1}]
    assert source.cancelled.is_set()
    assert time.monotonic() - began < 2


def test_async_configure_exception_fails_the_start() -> None:
    """What an async configure raises fails the start, as a sync configure's would."""
    class BadConf(Emits):
        async def configure(self, datasource: str, conf: dict[str, Any]) -> None:
            raise ValueError("interval must be > 0")

    with pytest.raises(ValueError, match="interval must be > 0"):
        run_source(BadConf())


class IgnoresCancel(Source):
    """Swallows the stop's cancellation and tries to emit once more."""

    def __init__(self) -> None:
        self.late: BaseException | None = None

    async def open(self, ctx: Context) -> None:
        try:
            await ctx.emit_async({"x": 1})
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            try:
                await ctx.emit_async({"x": 2})
            except Exception as exc:
                self.late = exc


def test_emit_async_after_stop_raises_channel_closed() -> None:
    """emit_async after the source was stopped raises ChannelClosedError."""
    source = IgnoresCancel()
    assert run_source(source).rows == [{"x": 1}]
    assert isinstance(source.late, ChannelClosedError)


class Mixed(Source):
    """A sync open beside an async close: each runs where it belongs."""

    def __init__(self) -> None:
        self.threads: dict[str, str] = {}
        self.stop = threading.Event()

    def open(self, ctx: Context) -> None:
        self.threads["open"] = threading.current_thread().name
        ctx.emit({"x": 1})
        self.stop.wait(10)

    async def close(self, ctx: Context) -> None:
        self.threads["close"] = threading.current_thread().name
        self.stop.set()


def test_sync_open_never_runs_on_the_loop() -> None:
    """In a mixed source the sync open runs on the source's thread, the async close on
    the loop."""
    source = Mixed()
    assert run_source(source).rows == [{"x": 1}]
    assert source.threads["open"] != aio.LOOP_THREAD_NAME
    assert source.threads["close"] == aio.LOOP_THREAD_NAME


class Fails(Source):
    async def open(self, ctx: Context) -> None:
        raise ConnectionRefusedError("no broker at mqtt://b:1883")


def test_async_open_exception_reaches_the_test() -> None:
    """What an async open raises is re-raised by run_source, as for a sync one."""
    with pytest.raises(ConnectionRefusedError, match="no broker"):
        run_source(Fails(), timeout=5)


class _SlowChannel(MemoryChannel):
    """A source channel eKuiper is not reading from until ``release`` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = threading.Event()

    def send(self, data: bytes) -> None:
        if not self.release.wait(0.02):
            raise ChannelTimeout(self.name)
        super().send(data)


class _SlowTransport(MemoryTransport):
    def source(self, meta: Meta, send_timeout_ms: int) -> Any:
        channel = _SlowChannel(f"source:{meta.rule_id}")
        self.channels[channel.name] = channel
        return channel


class Waits(Source):
    def __init__(self) -> None:
        self.emitted = 0

    async def open(self, ctx: Context) -> None:
        for i in range(3):
            await ctx.emit_async({"i": i})
            self.emitted += 1
        await asyncio.sleep(60)


def _source_runtime(source: Source, transport: MemoryTransport) -> SourceRuntime:
    control = Control("s", "source", Meta("r", "op", 0), "", {})
    return SourceRuntime(control, source, transport, 20, logging.getLogger("test.aio"))


def test_emit_async_waits_for_ekuiper_without_blocking_the_loop() -> None:
    """While eKuiper does not read, emit_async waits and other coroutines still run."""
    transport = _SlowTransport()
    source = Waits()
    runtime = _source_runtime(source, transport)
    runtime.start()
    try:
        time.sleep(0.2)
        assert source.emitted == 0

        async def ping() -> str:
            return "pong"

        assert aio.submit(ping()).result(1) == "pong"
        channel = transport.channels["source:r"]
        assert isinstance(channel, _SlowChannel)
        channel.release.set()
        _wait_for(lambda: source.emitted == 3, "the rows to go out")
        assert [json.loads(f)["message"] for f in channel.sent] == [{"i": 0}, {"i": 1},
                                                                   {"i": 2}]
    finally:
        runtime.stop()


def test_stop_while_emit_async_waits_ends_the_source() -> None:
    """A source stopped while emit_async waits ends at once, without a failure."""
    transport = _SlowTransport()
    runtime = _source_runtime(Waits(), transport)
    runtime.start()
    time.sleep(0.1)
    runtime.stop()
    assert runtime.thread is not None and not runtime.thread.is_alive()
    assert runtime.failure is None


def test_emit_async_from_a_sink_context_is_a_type_error() -> None:
    """emit_async is for sources: a sink calling it gets emit's TypeError."""
    class Emitter(Sink):
        async def collect(self, ctx: Context, data: Any) -> None:
            await ctx.emit_async({"x": 1})

    with pytest.raises(TypeError, match="emit\\(\\) is for sources"):
        run_sink(Emitter(), [{"a": 1}])


def test_emit_async_of_the_base_context_names_the_class() -> None:
    """A Context subclass that does not implement emit_async says so."""
    class Bare(Context):
        def get_rule_id(self) -> str:
            return ""

        def get_op_id(self) -> str:
            return ""

        def get_instance_id(self) -> int:
            return 0

        def get_logger(self) -> logging.Logger:
            return logging.getLogger("x")

        def emit(self, message: Any, meta: Any = None) -> None:
            pass

        def emit_error(self, error: str) -> None:
            pass

        def ack_ok(self) -> None:
            pass

        def ack_error(self, error: str) -> None:
            pass

    with pytest.raises(NotImplementedError, match="Bare"):
        asyncio.run(Bare().emit_async({}))


# -- sinks --------------------------------------------------------------------------------


class Concurrent(Sink):
    """An async collect that records when each message starts and ends."""

    decode_rows = True
    max_in_flight = 4

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.started: list[int] = []
        self.finished: list[int] = []
        self.running = 0
        self.peak = 0
        self.closed_after: int | None = None

    async def collect(self, ctx: Context, data: Any) -> None:
        n = data[0]["n"]
        self.started.append(n)
        self.running += 1
        self.peak = max(self.peak, self.running)
        # Later messages finish sooner, so completions interleave.
        await asyncio.sleep(self.delay * (1 + (n % 3 == 0)))
        self.running -= 1
        self.finished.append(n)

    async def close(self, ctx: Context) -> None:
        self.closed_after = len(self.finished)


def test_in_flight_collects_are_bounded_started_in_order_and_all_done() -> None:
    """max_in_flight bounds concurrent collects; they start in arrival order, none is
    skipped, and close runs after the last."""
    sink = Concurrent()
    run_sink(sink, [{"n": i} for i in range(30)])
    assert sink.started == list(range(30))
    assert sorted(sink.finished) == list(range(30))
    assert sink.peak == 4
    assert sink.closed_after == 30


def test_in_flight_completions_may_interleave() -> None:
    """With more than one in flight a quicker later message may finish first."""
    sink = Concurrent()
    run_sink(sink, [{"n": i} for i in range(12)])
    assert sink.finished != sorted(sink.finished)


def test_require_ack_keeps_one_in_flight_and_acks_each() -> None:
    """With requireAck an async collect handles one message at a time, each acked."""
    sink = Concurrent(delay=0.001)
    acks = run_sink(sink, [{"n": i} for i in range(6)], require_ack=True).acks
    assert acks == [{}] * 6
    assert sink.peak == 1
    assert sink.finished == list(range(6))


class AsyncFailing(Sink):
    max_in_flight = 3

    def __init__(self) -> None:
        self.calls = 0

    async def collect(self, ctx: Context, data: Any) -> None:
        self.calls += 1
        raise OSError("disk full")


def test_in_flight_failure_is_logged_once_with_traceback_and_reraised(
        caplog: pytest.LogCaptureFixture) -> None:
    """Failing in-flight collects are each logged, with one traceback, and the first is
    re-raised by run_sink; every message was still tried."""
    sink = AsyncFailing()
    with caplog.at_level(logging.ERROR), pytest.raises(OSError, match="disk full"):
        run_sink(sink, [{"a": i} for i in range(5)])
    assert sink.calls == 5
    failures = [r for r in caplog.records if r.getMessage().startswith("collect() raised")]
    assert len(failures) == 5
    assert sum(r.exc_info is not None for r in failures) == 1


def test_async_collect_with_ack_error_is_acked_with_its_text() -> None:
    """An async collect that raises under requireAck is acked with the exception text."""
    acks = run_sink(AsyncFailing(), [{"a": 1}], require_ack=True, raise_errors=False).acks
    assert acks == [{"error": "OSError: disk full"}]


def test_explicit_ack_from_an_async_collect() -> None:
    """ctx.ack_error inside an async collect is the message's ack, as from a sync one."""
    class Rejects(Sink):
        async def collect(self, ctx: Context, data: Any) -> None:
            await asyncio.sleep(0)
            ctx.ack_error("rejected: no tenant")

    acks = run_sink(Rejects(), [{"a": 1}, {"a": 2}], require_ack=True).acks
    assert acks == [{"error": "rejected: no tenant"}] * 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, "4", True])
def test_bad_max_in_flight_fails_the_start(bad: Any) -> None:
    """max_in_flight that is not an integer >= 1 fails the sink's start, naming it."""
    class Bad(Concurrent):
        max_in_flight = bad

    with pytest.raises(SymbolError, match=r"max_in_flight must be an integer >= 1"):
        run_sink(Bad(), [])


class Hangs(Sink):
    max_in_flight = 2

    def __init__(self) -> None:
        self.cancelled = 0

    async def collect(self, ctx: Context, data: Any) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def test_close_cancels_collects_still_running_after_the_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In-flight collects still running after CLOSE_TIMEOUT_S are cancelled at close."""
    monkeypatch.setattr(aio, "CLOSE_TIMEOUT_S", 0.2)
    sink = Hangs()
    run_sink(sink, [{"a": 1}, {"a": 2}])
    assert sink.cancelled == 2


def test_stop_with_a_full_window_is_bounded_and_leaves_no_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A message waiting for a slot behind hanging collects is dropped at stop: the stop
    takes about CLOSE_TIMEOUT_S once, and the sink's thread has ended when it returns."""
    for module in (aio, base, sink_runtime):
        monkeypatch.setattr(module, "CLOSE_TIMEOUT_S", 1.0, raising=False)
    before = set(threading.enumerate())
    sink = Hangs()
    started = time.monotonic()
    with pytest.raises(TimeoutError):  # the third message never gets a slot
        run_sink(sink, [{"a": i} for i in range(Hangs.max_in_flight + 1)], timeout=0.3)
    assert time.monotonic() - started < 0.3 + 1.6  # once 1.0 s, not twice
    assert sink.cancelled == Hangs.max_in_flight
    left = [t for t in set(threading.enumerate()) - before
            if t.is_alive() and t.name != aio.LOOP_THREAD_NAME]
    assert left == []


def test_task_started_in_an_empty_context_outlives_the_symbol() -> None:
    """A task started via contextvars.Context().run belongs to no symbol: stop spares it."""
    import contextvars

    tasks: dict[str, asyncio.Task[None]] = {}

    class Starts(Sink):
        async def collect(self, ctx: Context, data: Any) -> None:
            tasks["owned"] = asyncio.ensure_future(asyncio.sleep(30))
            tasks["shared"] = contextvars.Context().run(asyncio.ensure_future,
                                                        asyncio.sleep(30))

    run_sink(Starts(), [{"a": 1}])
    _wait_for(lambda: tasks["owned"].cancelled(), "the owned task's cancel")
    assert not tasks["shared"].done()
    aio.loop().call_soon_threadsafe(tasks["shared"].cancel)


# -- functions ----------------------------------------------------------------------------


class Double(Function):
    async def exec(self, args: list[Any], ctx: Context) -> Any:
        await asyncio.sleep(0)
        return [args[0] * 2, threading.current_thread().name]


def test_async_exec_is_awaited_on_the_loop() -> None:
    """call_function awaits an async exec on the loop and returns its result."""
    assert call_function(Double(), 21) == [42, aio.LOOP_THREAD_NAME]


def test_async_exec_exception_propagates() -> None:
    """What an async exec raises comes back from call_function."""
    class Divide(Function):
        async def exec(self, args: list[Any], ctx: Context) -> Any:
            return args[0] / args[1]

    with pytest.raises(ZeroDivisionError):
        call_function(Divide(), 1, 0)


class HangingExec(Function):
    def __init__(self) -> None:
        self.running = threading.Event()

    async def exec(self, args: list[Any], ctx: Context) -> Any:
        self.running.set()
        await asyncio.sleep(60)


def test_stop_cancels_a_running_async_exec_before_waiting() -> None:
    """Stopping a function whose async exec hangs cancels it at once: no CLOSE_TIMEOUT_S."""
    from ekuiper._runtime.function import FunctionRuntime

    function = HangingExec()
    transport = MemoryTransport()
    runtime = FunctionRuntime(Control("hang", "func", Meta("", "", 0)), function, "p",
                              transport, logging.getLogger("test.hang"))
    runtime.start()
    meta = json.dumps({"ruleId": "r", "opId": "o", "instanceId": 0, "funcId": 0})
    request = {"func": "Exec", "arg": [meta]}
    transport.channels["function:hang"].inbox.put(json.dumps(request).encode())
    assert function.running.wait(5)
    started = time.monotonic()
    runtime.stop()
    assert time.monotonic() - started < 2.0
    assert runtime.thread is not None and not runtime.thread.is_alive()


def test_async_validate_is_refused_with_a_clear_error() -> None:
    """Only exec may be async: an async validate fails the function's start."""
    class AsyncValidate(Double):
        async def validate(self, args: list[Any]) -> str:  # type: ignore[override]
            return ""

    with pytest.raises(SymbolError, match=r"validate\(\) is async; only exec\(\) may be"):
        call_function(AsyncValidate(), 1)


# -- the plugin process ---------------------------------------------------------------------


def test_plugin_shutdown_stops_the_loop() -> None:
    """Shutting the plugin down cancels the async open and ends the loop's thread."""
    source = Numbers()
    runtime = PluginRuntime(PluginConfig("p", {"numbers": lambda: source}, {}, {}),
                            MemoryTransport())
    ctrl = {"symbolName": "numbers", "pluginType": "source",
            "meta": {"ruleId": "r1", "opId": "op", "instanceId": 0}}
    reply = runtime.handle(json.dumps({"cmd": "start", "arg": json.dumps(ctrl)}).encode())
    assert reply == b"ok"
    runtime.shutdown()
    assert source.finished.is_set()
    assert _loop_threads() == []


def test_sync_plugin_never_imports_asyncio() -> None:
    """A plugin whose symbols are all sync runs them without importing asyncio."""
    code = """
from ekuiper import Context, Function, Sink, Source
from ekuiper.testing import call_function, run_sink, run_source
class S(Source):
    def open(self, ctx): ctx.emit({"a": 1})
class K(Sink):
    def collect(self, ctx, data): pass
class F(Function):
    def exec(self, args, ctx): return 1
run_source(S()); run_sink(K(), [{"a": 1}]); call_function(F())
"""
    assert loaded_after(code, ("asyncio",)) == []



# -- with the other opt-ins ---------------------------------------------------------------


@dataclass
class _TickConf:
    period: float = 1.0


class TypedAsync(Source):
    """An async source with a typed config."""

    config_type = _TickConf

    async def configure(self, datasource: str, conf: _TickConf) -> None:
        self.conf = conf

    async def open(self, ctx: Context) -> None:
        await ctx.emit_async({"period": self.conf.period})
        await asyncio.sleep(60)


def test_async_source_gets_its_typed_config() -> None:
    """config_type is read from the user's class, not the async wrapper."""
    run = run_source(TypedAsync(), conf={"period": 2}, count=1)
    assert run.rows == [{"period": 2.0}]


class FlakyAsync(Sink):
    """An async collect that fails its first attempt per message, with a retry policy."""

    decode_rows = True
    max_in_flight = 4
    on_error = ErrorPolicy.retry(2, backoff=0.001)

    def __init__(self) -> None:
        self.attempts: list[int] = []

    async def collect(self, ctx: Context, data: Any) -> None:
        n = data[0]["n"]
        self.attempts.append(n)
        if self.attempts.count(n) == 1:
            raise RuntimeError(f"first try of {n}")


def test_async_sink_retry_policy_retries_one_message_at_a_time() -> None:
    """A retry policy on an async sink retries each message before the next (in flight 1)."""
    sink = FlakyAsync()
    run = run_sink(sink, [{"n": i} for i in range(3)])
    assert sink.attempts == [0, 0, 1, 1, 2, 2]
    assert run.retries == 3
