"""Sink symbols: data as bytes or rows, acks, failures that do not stop the sink."""

from __future__ import annotations

import json
from pathlib import Path

from ekuiper.testing import ProtocolHost
from tests.protocol.events import events, wait_for


def _collected(out_dir: Path, count: int) -> list[dict]:
    return wait_for(lambda: len(events(out_dir, "collect")) >= count
                    and events(out_dir, "collect"), what=f"{count} collects")


def test_collect_gets_the_bytes_ekuiper_sent(testplug: ProtocolHost, out_dir: Path) -> None:
    """By default collect receives the raw bytes, as with the official SDK."""
    _, sink = testplug.start_sink("recorder")
    sink.send(b'[{"a":1}]')
    got = _collected(out_dir, 1)[0]
    assert (got["data"], got["type"]) == ('[{"a":1}]', "bytes")


def test_decode_rows_gives_list_for_array_frame(testplug: ProtocolHost, out_dir: Path) -> None:
    """With decode_rows, a sendSingle:false array arrives as a list of dicts."""
    _, sink = testplug.start_sink("rows")
    sink.send(b'[{"a":1},{"a":2}]')
    got = _collected(out_dir, 1)[0]
    assert (json.loads(got["data"]), got["type"]) == ([{"a": 1}, {"a": 2}], "list")


def test_decode_rows_gives_list_for_single_frame(testplug: ProtocolHost, out_dir: Path) -> None:
    """With decode_rows, a sendSingle:true object arrives as a one-row list."""
    _, sink = testplug.start_sink("rows", config={"sendSingle": True})
    sink.send(b'{"a":1}')
    assert json.loads(_collected(out_dir, 1)[0]["data"]) == [{"a": 1}]


def test_require_ack_acks_ok_when_collect_returns(testplug: ProtocolHost) -> None:
    """With requireAck, a collect that returns without acking is acked ok."""
    _, sink = testplug.start_sink("recorder", config={"requireAck": True})
    sink.send(b'{"a":1}')
    assert sink.ack() == {}


def test_require_ack_reports_collect_exception(testplug: ProtocolHost) -> None:
    """With requireAck, a collect that raises is acked with the exception's type and text."""
    _, sink = testplug.start_sink("recorder", config={"requireAck": True, "fail_on": "bad"})
    sink.send(b'{"v":"bad"}')
    assert sink.ack() == {"error": 'ValueError: cannot store {"v":"bad"}'}


def test_explicit_ack_error_is_sent_once(testplug: ProtocolHost) -> None:
    """A collect that calls ack_error gets exactly that ack, not a second automatic one."""
    _, sink = testplug.start_sink("recorder", config={"requireAck": True, "nack_on": "no"})
    sink.send(b'{"v":"no"}')
    assert sink.ack() == {"error": "rejected by recorder"}
    assert sink.no_ack_within(0.5)


def test_manual_ack_ok_is_sent_once(testplug: ProtocolHost) -> None:
    """A collect that calls ack_ok itself produces a single ok ack."""
    _, sink = testplug.start_sink("recorder", config={"requireAck": True, "manual_ack": True})
    sink.send(b'{"v":1}')
    assert sink.ack() == {}
    assert sink.no_ack_within(0.5)


def test_failing_message_does_not_stop_sink(testplug: ProtocolHost, out_dir: Path) -> None:
    """After a collect raises, later messages are still collected and acked."""
    _, sink = testplug.start_sink("recorder", config={"requireAck": True, "fail_on": "bad"})
    for payload in (b'{"v":"bad"}', b'{"v":"good1"}', b'{"v":"good2"}'):
        sink.send(payload)
    assert [sink.ack() for _ in range(3)] == [{"error": 'ValueError: cannot store {"v":"bad"}'},
                                              {}, {}]
    assert [e["data"] for e in _collected(out_dir, 3)][1:] == ['{"v":"good1"}', '{"v":"good2"}']


def test_ack_without_require_ack_is_not_sent(testplug: ProtocolHost) -> None:
    """Without requireAck, ctx.ack_ok does nothing (eKuiper is not reading acks)."""
    _, sink = testplug.start_sink("recorder", config={"manual_ack": True})
    sink.send(b'{"v":1}')
    assert sink.no_ack_within(0.5)


def test_open_failure_acks_every_message_with_error(testplug: ProtocolHost) -> None:
    """If open raised, each message is acked with the open error instead of hanging."""
    _, sink = testplug.start_sink("badopen", config={"requireAck": True})
    sink.send(b'{"v":1}')
    assert sink.ack() == {"error": "open() of sink 'badopen' raised ConnectionError: "
                                   "database down"}


def test_stop_runs_close_once_after_collect(testplug: ProtocolHost, out_dir: Path) -> None:
    """stop runs close exactly once, after the collects that arrived before it."""
    _, sink = testplug.start_sink("recorder", rule="rs")
    sink.send(b'{"v":1}')
    _collected(out_dir, 1)
    assert testplug.stop("sink", "recorder", rule="rs") == b"ok"
    assert testplug.stop("sink", "recorder", rule="rs") == b"ok"
    kinds = [e["event"] for e in events(out_dir) if e.get("symbol") == "recorder"]
    assert kinds == ["configure", "open", "collect", "close"]


def test_sink_restart_reuses_socket_path(testplug: ProtocolHost, out_dir: Path) -> None:
    """After stop, the same rule/op/instance can start the sink again (socket released)."""
    testplug.start_sink("recorder", rule="again")
    testplug.stop("sink", "recorder", rule="again")
    reply, sink = testplug.start_sink("recorder", rule="again")
    assert reply == b"ok"
    assert sink is not None
    sink.send(b'{"v":2}')
    assert _collected(out_dir, 1)[0]["data"] == '{"v":2}'


def test_retry_policy_delivers_after_failures_in_order(testplug: ProtocolHost,
                                                       out_dir: Path) -> None:
    """A sink failing twice per message is retried by its policy: each kept once, in order,
    the next message waiting for the previous, one ok ack per message."""
    _, sink = testplug.start_sink("flaky", config={"requireAck": True})
    for n in range(3):
        sink.send(f'{{"n":{n}}}'.encode())
    assert [sink.ack() for _ in range(3)] == [{}, {}, {}]
    assert [e["data"] for e in _collected(out_dir, 3)] == ['{"n":0}', '{"n":1}', '{"n":2}']
    assert [(e["data"], e["n"]) for e in events(out_dir, "attempt")] == \
        [(f'{{"n":{n}}}', a) for n in range(3) for a in (1, 2, 3)]


def test_exhausted_retries_ack_the_error_once(testplug: ProtocolHost, out_dir: Path) -> None:
    """With collectRetries below the failures, the message is acked failed once, after the
    last attempt."""
    _, sink = testplug.start_sink("flaky", config={"requireAck": True, "collectRetries": 1})
    sink.send(b'{"n":0}')
    assert sink.ack() == {"error": "ConnectionError: store unavailable (attempt 2) "
                                   "(gave up after 2 attempts)"}
    assert sink.no_ack_within(0.5)
    assert len(events(out_dir, "attempt")) == 2


def test_bad_retry_property_fails_the_start(testplug: ProtocolHost) -> None:
    """A collect* property eKuiper passes through with a bad value is the start's error."""
    reply, _ = testplug.start_sink("flaky", config={"collectMaxBackoff": "later"})
    assert reply.decode().startswith("sink 'flaky': action property collectMaxBackoff is "
                                     "'later'; expected a duration")
