"""Source symbols: datasource, frames, lists, errors, stop."""

from __future__ import annotations

import json
from pathlib import Path

from ekuiper.testing import ProtocolHost
from tests.protocol.events import events, wait_for


def test_v2_datasource_reaches_configure(testplug: ProtocolHost, out_dir: Path) -> None:
    """eKuiper 2.x's config.datasource is what configure() gets as datasource."""
    testplug.start_source("counter", datasource="topic/a", config={"interval": 0.05})
    configured = wait_for(lambda: events(out_dir, "configure"))
    assert configured[0]["datasource"] == "topic/a"
    assert configured[0]["conf"]["interval"] == 0.05


def test_emit_sends_message_and_meta_frame(testplug: ProtocolHost) -> None:
    """Each emit is one {"message", "meta"} JSON object frame."""
    _, source = testplug.start_source("counter", datasource="d")
    first = source.rows(1)[0]
    assert first == {"message": {"n": 0, "datasource": "d"}, "meta": {"seq": 0}}


def test_emitted_list_goes_out_one_frame_per_row(testplug: ProtocolHost) -> None:
    """A list passed to emit becomes one object frame per row, never an array."""
    _, source = testplug.start_source("counter", datasource="d",
                                      config={"batch": 3, "limit": 3})
    frames = source.frames(3)
    rows = [json.loads(f) for f in frames]
    assert [r["message"]["n"] for r in rows] == [0, 1, 2]
    assert all(f.startswith(b"{") for f in frames)


def test_emit_error_becomes_undecodable_frame(testplug: ProtocolHost) -> None:
    """emit_error sends a text frame eKuiper counts as a source exception, not a row."""
    _, source = testplug.start_source("reporter")
    error, after = source.frames(2)
    assert error == b"source error: sensor offline"
    assert json.loads(after)["message"] == {"after": "error"}


def test_open_exception_is_reported_to_ekuiper(testplug: ProtocolHost) -> None:
    """An exception raised from open() reaches eKuiper as a source error frame."""
    _, source = testplug.start_source("broken")
    assert source.frames(1)[0] == b"source error: open() raised RuntimeError: device unplugged"


def test_open_exception_without_message_is_named_once(testplug: ProtocolHost) -> None:
    """An exception with no message reaches eKuiper as its type alone, not 'X: X'."""
    _, source = testplug.start_source("broken", config={"bare": True})
    assert source.frames(1)[0] == b"source error: open() raised KeyError"


def test_open_exception_is_logged_with_context(testplug: ProtocolHost) -> None:
    """The traceback of open() is logged with plugin, symbol and rule on the line."""
    _, source = testplug.start_source("broken", rule="rule7", op="op3")
    source.frames(1)
    log = wait_for(lambda: "device unplugged" in testplug.log() and testplug.log())
    assert "[testplug/broken rule=rule7 op=op3/0] open() raised" in log
    assert "RuntimeError: device unplugged" in log


def test_stop_runs_close_exactly_once(testplug: ProtocolHost, out_dir: Path) -> None:
    """stop calls the source's close once, even when stop is sent twice."""
    _, source = testplug.start_source("counter", rule="r9")
    source.rows(1)
    assert testplug.stop("source", "counter", rule="r9") == b"ok"
    assert testplug.stop("source", "counter", rule="r9") == b"ok"
    assert [e["rule"] for e in events(out_dir, "close")] == ["r9"]


def test_source_ignoring_close_is_ended_by_emit(testplug: ProtocolHost) -> None:
    """A source whose open ignores close ends because emit raises after stop."""
    _, source = testplug.start_source("stubborn")
    source.rows(1)
    assert testplug.stop("source", "stubborn") == b"ok"
    log = testplug.log()
    assert "did not return" not in log


def test_backpressure_blocks_emit_instead_of_failing(testplug: ProtocolHost) -> None:
    """While eKuiper does not read, emit waits; the rows arrive once reading resumes."""
    _, source = testplug.start_source("counter", config={"interval": 0.0, "limit": 5000})
    import time
    time.sleep(2.5)  # several send timeouts (1 s each) pass without a reader
    rows = source.rows(5000, timeout=30)
    assert [r["message"]["n"] for r in rows] == list(range(5000))
    assert "open() raised" not in testplug.log()


def test_hanging_close_is_bounded_and_logged(testplug: ProtocolHost) -> None:
    """A close() that hangs delays stop by at most the bound, and says so in the log."""
    import time
    _, source = testplug.start_source("hangs", rule="slow")
    source.rows(1)
    started = time.monotonic()
    assert testplug.stop("source", "hangs", rule="slow") == b"ok"
    assert time.monotonic() - started < 7
    assert "close() of source 'hangs' (rule 'slow', op 'op1', instance 0) did not return" \
        in testplug.log()


def test_open_returning_at_once_keeps_source_attached(testplug: ProtocolHost) -> None:
    """A source whose open returns immediately still delivers what its threads emit."""
    _, source = testplug.start_source("threaded", config={"threads": 1, "rows": 20})
    rows = source.rows(20)
    assert [r["message"]["i"] for r in rows] == list(range(20))


def test_emit_from_several_threads_keeps_frames_whole(testplug: ProtocolHost) -> None:
    """Four threads emitting at once: every frame is one whole row, none lost, and each
    thread's rows arrive in its order."""
    _, source = testplug.start_source("threaded", config={"threads": 4, "rows": 250})
    rows = [r["message"] for r in source.rows(1000, timeout=30)]
    for worker in range(4):
        mine = [r["i"] for r in rows if r["worker"] == worker]
        assert mine == list(range(250))
    assert all(r["pad"] == "x" * (r["i"] % 50) for r in rows)
