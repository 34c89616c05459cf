"""A sink's collect under a retry policy, through the real SinkRuntime (ekuiper.testing)."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest

from ekuiper import Context, ErrorPolicy, PluginConfig, Sink
from ekuiper._protocol import Control, Meta
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper._runtime.sink import SinkRuntime
from ekuiper.errors import PolicyError
from ekuiper.testing import MemoryTransport, run_sink


class Flaky(Sink):
    """Raises on the first ``fails`` attempts of each message, then keeps it."""

    on_error = ErrorPolicy.retry(3, 0.001, 0.004)

    def __init__(self, fails: int = 2, ack: str = "") -> None:
        self.fails = fails
        self.ack = ack
        self.attempts: list[tuple[str, float]] = []
        self.kept: list[str] = []

    def collect(self, ctx: Context, data: Any) -> None:
        text = data.decode()
        self.attempts.append((text, time.monotonic()))
        if sum(1 for seen, _ in self.attempts if seen == text) <= self.fails:
            if self.ack:
                ctx.ack_error(f"{self.ack} {len(self.attempts)}")
            raise OSError(f"store down for {text}")
        self.kept.append(text)


def _texts(sink: Flaky) -> list[str]:
    return [text for text, _ in sink.attempts]


def test_failing_twice_then_succeeding_is_delivered_once_in_order() -> None:
    """Each message is retried until it is kept; the next waits; one ok ack each."""
    sink = Flaky(fails=2)
    run = run_sink(sink, [{"n": 1}, {"n": 2}], send_single=True, require_ack=True)
    assert sink.kept == ['{"n":1}', '{"n":2}']
    assert _texts(sink) == ['{"n":1}'] * 3 + ['{"n":2}'] * 3
    assert run.acks == [{}, {}]
    assert (run.retries, run.retry_exhausted) == (4, 0)


def test_exhausted_retries_ack_the_error_once() -> None:
    """After the last retry the message is acked with the error once, and the next goes on."""
    sink = Flaky(fails=9)
    run = run_sink(sink, [{"n": 1}, {"n": 2}], send_single=True, require_ack=True,
                   raise_errors=False)
    assert _texts(sink) == ['{"n":1}'] * 4 + ['{"n":2}'] * 4
    assert run.acks == [{"error": 'OSError: store down for {"n":1} (gave up after 4 attempts)'},
                        {"error": 'OSError: store down for {"n":2} (gave up after 4 attempts)'}]
    assert (run.retries, run.retry_exhausted) == (6, 2)


def test_exhausted_retries_raise_in_run_sink() -> None:
    """run_sink re-raises the exception of a message that failed all its attempts."""
    with pytest.raises(OSError, match="store down"):
        run_sink(Flaky(fails=9), [{"n": 1}], send_single=True)


def test_acks_made_by_failed_attempts_are_not_sent() -> None:
    """Only the last attempt's own ack goes out; earlier attempts' acks are dropped."""
    run = run_sink(Flaky(fails=9, ack="nack"), [{"n": 1}], send_single=True, require_ack=True,
                   raise_errors=False)
    assert run.acks == [{"error": "nack 4"}]


def test_backoff_doubles_between_attempts() -> None:
    """The waits between attempts follow the policy's schedule (at least its delays)."""

    class Slow(Flaky):
        on_error = ErrorPolicy.retry(3, 0.05, 0.1)

    sink = Slow(fails=3)
    run_sink(sink, [{"n": 1}], send_single=True)
    times = [at for _, at in sink.attempts]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert [round(g, 2) >= d for g, d in zip(gaps, [0.05, 0.1, 0.1])] == [True] * 3


def test_action_property_overrides_the_class() -> None:
    """collectRetries in the action's properties replaces the class's retry count."""
    sink = Flaky(fails=9)
    run = run_sink(sink, [{"n": 1}], {"collectRetries": 1}, send_single=True,
                   require_ack=True, raise_errors=False)
    assert len(sink.attempts) == 2
    assert run.retries == 1


def test_action_properties_add_retries_to_any_sink() -> None:
    """A sink without on_error is retried when the action sets collectRetries."""

    class Plain(Flaky):
        on_error = None

    sink = Plain(fails=1)
    run = run_sink(sink, [{"n": 1}], {"collectRetries": 2, "collectBackoff": 1},
                   send_single=True, require_ack=True)
    assert (sink.kept, run.acks) == (['{"n":1}'], [{}])


def test_without_requireack_nothing_is_acked() -> None:
    """A retried collect without requireAck sends no ack at all."""
    run = run_sink(Flaky(fails=1), [{"n": 1}], send_single=True)
    assert run.acks == []


def test_bad_action_property_fails_start_naming_it() -> None:
    """A bad collect* value fails the start with field, value and what is expected."""
    with pytest.raises(PolicyError, match="collectRetries is 'many'; expected a whole number"):
        run_sink(Flaky(), [], {"collectRetries": "many"})


def test_bad_action_property_is_the_start_reply() -> None:
    """Through the control loop, the start reply to eKuiper is the policy's message."""
    runtime = PluginRuntime(PluginConfig("p", {}, {"flaky": Flaky}, {}), MemoryTransport())
    ctrl = {"symbolName": "flaky", "pluginType": "sink",
            "meta": {"ruleId": "r", "opId": "op", "instanceId": 0},
            "config": {"collectBackoff": "soon", "collectRetries": 1}}
    reply = runtime.handle(json.dumps({"cmd": "start", "arg": json.dumps(ctrl)}).encode())
    runtime.shutdown()
    assert reply.decode().startswith("sink 'flaky': action property collectBackoff is 'soon'")


def test_stop_ends_a_backoff_at_once() -> None:
    """A rule stop during a long backoff returns promptly; nothing is acked or kept."""

    class Patient(Flaky):
        on_error = ErrorPolicy.retry(5, 30.0, 60.0)

    sink = Patient(fails=9)
    control = Control("patient", "sink", Meta("r", "op", 0), "", {"requireAck": True})
    transport = MemoryTransport()
    runtime = SinkRuntime(control, sink, transport, 100, logging.getLogger("test.retry"))
    runtime.start()
    transport.channels["sink:r"].inbox.put(b'{"n":1}')
    deadline = time.monotonic() + 5
    while runtime.retries < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    runtime.stop()
    assert time.monotonic() - began < 1.0
    assert runtime.thread is not None and not runtime.thread.is_alive()
    assert (len(sink.attempts), sink.kept, transport.channels["ack:r"].sent) == (1, [], [])


def test_retries_are_logged_as_warnings_then_the_failure_as_error(
        caplog: pytest.LogCaptureFixture) -> None:
    """Each retry is a warning saying when the next attempt comes; giving up is an error."""
    with caplog.at_level(logging.WARNING):
        run_sink(Flaky(fails=9), [{"n": 1}], send_single=True, raise_errors=False)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records
             if r.getMessage().startswith("collect()")]
    assert [level for level, _ in lines] == [logging.WARNING] * 3 + [logging.ERROR]
    assert "(attempt 1 of 4) raised; retrying in 0.001 s" in lines[0][1]
    assert lines[1][1] == ('collect() (attempt 2 of 4) raised OSError: store down for {"n":1}; '
                           'retrying in 0.002 s')


def test_collect_in_progress_is_not_retried_after_stop() -> None:
    """A collect that raises because the rule is stopping is not tried again."""
    entered, release = threading.Event(), threading.Event()

    class Stopping(Flaky):
        def collect(self, ctx: Context, data: Any) -> None:
            self.attempts.append((data.decode(), time.monotonic()))
            entered.set()
            release.wait(5)
            raise OSError("connection reset")

    sink = Stopping()
    control = Control("stopping", "sink", Meta("r", "op", 0), "", {})
    transport = MemoryTransport()
    runtime = SinkRuntime(control, sink, transport, 100, logging.getLogger("test.retry"))
    runtime.start()
    transport.channels["sink:r"].inbox.put(b"x")
    assert entered.wait(5)
    stopper = threading.Thread(target=runtime.stop)
    stopper.start()
    while not runtime.stopping:
        time.sleep(0.001)
    release.set()
    stopper.join(5)
    assert len(sink.attempts) == 1
    assert runtime.retries == 0
