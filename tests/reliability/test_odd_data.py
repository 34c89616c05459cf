"""Large and odd data through a live plugin (oddplug) under the ProtocolHost.

Sources: what ``emit`` sends, or the clear source error when it cannot. Sinks: frames
eKuiper could send reach ``collect`` intact, as bytes and decoded. Functions: results
JSON cannot carry become ``{"state": false, "result": <text>}``. The plugin lives on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ekuiper.testing import FunctionHandle, SinkHandle
from ekuiper.testing._host import _rep_request
from tests.reliability.conftest import UncappedHost
from tests.reliability.oddplug.oddplug import big_text, nested

NAN_ERROR = ("NaN and Infinity cannot be sent to eKuiper (JSON has no such numbers); "
             "replace them with None or a finite value")
BYTES_ERROR = ("bytes that are not UTF-8 cannot be sent as JSON; encode them (e.g. base64) "
               "first")
UNICODE = "h\u00e9llo \U0001f30d \u4e2d\u6587 \u202eRTL\u202c \x00\u2028"
# JSON escapes only the NUL; every other character travels as raw UTF-8.
UNICODE_JSON = json.dumps(UNICODE, ensure_ascii=False).encode()
assert UNICODE_JSON == ('"h\u00e9llo \U0001f30d \u4e2d\u6587 \u202eRTL\u202c \\u0000\u2028"'
                        .encode())


def source_frame(host: UncappedHost, payload: str) -> bytes:
    """Start the odd source emitting ``payload`` and return its first frame."""
    reply, source = host.start_source("odd", rule=f"r_{payload}", config={"payload": payload})
    assert reply == b"ok"
    return source.frames(1, timeout=30)[0]


def row_frame(value_json: bytes) -> bytes:
    return b'{"message":{"value":' + value_json + b'},"meta":null}'


def open_error(exc_type: str, text: str) -> bytes:
    return f"source error: open() raised {exc_type}: {text}".encode()


def start_sink(host: UncappedHost, symbol: str) -> SinkHandle:
    reply, sink = host.start_sink(symbol, config={"requireAck": True})
    assert reply == b"ok" and sink is not None
    return sink


def collected(out_dir: Path, symbol: str, index: int = 0) -> bytes:
    """What the sink's collect() got (rows: {"type", "data"} as JSON)."""
    return (out_dir / f"{symbol}-{index}.bin").read_bytes()


def function(host: UncappedHost, symbol: str) -> FunctionHandle:
    reply, fn = host.start_function(symbol)
    assert reply == b"ok"
    return fn


def exec_raw(fn: FunctionHandle, *args: Any) -> bytes:
    """Exec as eKuiper (Go) sends it: raw UTF-8, not \\u escapes; the raw reply bytes."""
    request = {"func": "Exec", "arg": [*args, json.dumps({"ruleId": "r1", "opId": "op1"})]}
    return _rep_request(fn.sock, json.dumps(request, ensure_ascii=False).encode(),
                        skip_handshakes=True)


def odd_result(host: UncappedHost, name: str) -> dict[str, Any]:
    return dict(json.loads(exec_raw(function(host, "oddresult"), name)))


def cannot_send(text: str) -> dict[str, Any]:
    return {"state": False, "result": f"function result cannot be sent to eKuiper: {text}"}


# -- sources --------------------------------------------------------------------------

def test_source_row_of_10_mb_arrives_intact(oddplug: UncappedHost) -> None:
    """A 10 MB row (1- to 4-byte UTF-8 characters) arrives as one intact frame."""
    expected = row_frame(json.dumps(big_text(), ensure_ascii=False).encode())
    assert len(expected) > 10 * 1024 * 1024
    assert source_frame(oddplug, "big") == expected


def test_source_row_200_levels_deep_round_trips(oddplug: UncappedHost) -> None:
    """A row nested 200 levels deep arrives and decodes to the same value."""
    frame = source_frame(oddplug, "deep200")
    assert json.loads(frame) == {"message": {"value": nested(200)}, "meta": None}


def test_source_row_5000_levels_deep_is_a_clear_source_error(oddplug: UncappedHost) -> None:
    """A row nested 5000 levels deep fails in emit; eKuiper gets that as a source error."""
    assert source_frame(oddplug, "deep5000") == open_error(
        "ValueError", "value is nested too deeply to be sent as JSON")


def test_source_unicode_row_is_sent_unescaped(oddplug: UncappedHost) -> None:
    """Accents, CJK, emoji and bidi controls travel as raw UTF-8, byte for byte."""
    assert source_frame(oddplug, "unicode") == row_frame(UNICODE_JSON)


@pytest.mark.parametrize("payload", ["nan", "inf", "-inf"])
def test_source_nan_row_is_a_clear_source_error(oddplug: UncappedHost, payload: str) -> None:
    """A NaN or Infinity in a row fails emit with an error naming NaN and Infinity."""
    assert source_frame(oddplug, payload) == open_error("ValueError", NAN_ERROR)


def test_source_nan_error_is_logged(oddplug: UncappedHost) -> None:
    """The plugin logs the failed open() with its rule and the NaN/Infinity reason."""
    source_frame(oddplug, "nan")
    log = oddplug.log()
    assert ("ERROR [oddplug/odd rule=r_nan op=op1/0] open() raised; the source produces "
            "nothing until the rule restarts") in log
    assert f"ValueError: {NAN_ERROR}" in log


@pytest.mark.parametrize("payload", ["utf8bytes", "utf8bytearray", "utf8memoryview"])
def test_source_utf8_bytes_become_text(oddplug: UncappedHost, payload: str) -> None:
    """bytes, bytearray and memoryview holding UTF-8 travel as JSON strings."""
    text = "caf\u00e9 \U0001f30d" if payload == "utf8bytes" else "caf\u00e9"
    assert source_frame(oddplug, payload) == row_frame(f'"{text}"'.encode())


def test_source_non_utf8_bytes_is_a_clear_source_error(oddplug: UncappedHost) -> None:
    """Bytes that are not UTF-8 fail emit with an error that says to encode them."""
    assert source_frame(oddplug, "badbytes") == open_error("TypeError", BYTES_ERROR)


def test_source_none_is_sent_as_null(oddplug: UncappedHost) -> None:
    """A None value travels as JSON null."""
    assert source_frame(oddplug, "none") == row_frame(b"null")


def test_plugin_serves_after_source_errors(oddplug: UncappedHost) -> None:
    """After sources failed on NaN, bad bytes and deep nesting, new starts still work."""
    for payload in ("nan", "badbytes", "deep5000"):
        assert source_frame(oddplug, payload).startswith(b"source error: open() raised ")
    assert oddplug.stop("source", "odd", rule="r_nan") == b"ok"
    assert source_frame(oddplug, "none") == row_frame(b"null")
    assert exec_raw(function(oddplug, "echo"), "ok?") == b'{"state":true,"result":"ok?"}'


# -- sinks ----------------------------------------------------------------------------

def test_sink_frame_of_10_mb_arrives_intact(oddplug: UncappedHost, out_dir: Path) -> None:
    """A 10 MB frame reaches collect() byte for byte."""
    frame = json.dumps([{"value": big_text()}], ensure_ascii=False).encode()
    sink = start_sink(oddplug, "keep")
    sink.send(frame)
    assert sink.ack(timeout=30) == {}
    assert collected(out_dir, "keep") == frame


def test_sink_huge_json_array_decodes_to_rows(oddplug: UncappedHost, out_dir: Path) -> None:
    """A JSON array of 100,000 rows (about 8 MB) reaches a decode_rows sink as rows."""
    rows = [{"n": n, "text": "\u00e9\u4e2d" * 20, "none": None} for n in range(100_000)]
    frame = json.dumps(rows, ensure_ascii=False).encode()
    sink = start_sink(oddplug, "keeprows")
    sink.send(frame)
    assert sink.ack(timeout=30) == {}
    assert json.loads(collected(out_dir, "keeprows")) == {"type": "list", "data": rows}


def test_sink_unicode_frame_arrives_byte_identical(oddplug: UncappedHost, out_dir: Path,
                                                   ) -> None:
    """A frame of accents, CJK, emoji and bidi controls reaches collect() unchanged."""
    frame = b'[{"text":' + UNICODE_JSON + b"}]"
    sink = start_sink(oddplug, "keep")
    sink.send(frame)
    assert sink.ack() == {}
    assert collected(out_dir, "keep") == frame


def test_sink_unicode_rows_decode_unchanged(oddplug: UncappedHost, out_dir: Path) -> None:
    """A sendSingle unicode frame decodes to the same text in a decode_rows sink."""
    sink = start_sink(oddplug, "keeprows")
    sink.send(b'{"text":' + UNICODE_JSON + b"}")
    assert sink.ack() == {}
    assert collected(out_dir, "keeprows") == (
        b'{"type": "list", "data": [{"text": ' + UNICODE_JSON + b"}]}")


def test_sink_rows_200_levels_deep_decode(oddplug: UncappedHost, out_dir: Path) -> None:
    """Rows nested 200 levels deep decode to the same value."""
    rows = [{"deep": nested(200)}]
    sink = start_sink(oddplug, "keeprows")
    sink.send(json.dumps(rows).encode())
    assert sink.ack() == {}
    assert json.loads(collected(out_dir, "keeprows")) == {"type": "list", "data": rows}


def test_sink_rows_5000_levels_deep_get_a_clear_ack_error(oddplug: UncappedHost) -> None:
    """Rows nested 5000 levels deep are refused by decode_rows with a clear ack error."""
    sink = start_sink(oddplug, "keeprows")
    sink.send(b'[{"deep":' + b"[" * 5000 + b"]" * 5000 + b"}]")
    assert sink.ack() == {"error": "sink data is nested too deeply to decode"}


def test_sink_raw_frame_5000_levels_deep_arrives_intact(oddplug: UncappedHost, out_dir: Path,
                                                        ) -> None:
    """Without decode_rows, a frame nested 5000 levels deep reaches collect() as bytes."""
    frame = b'[{"deep":' + b"[" * 5000 + b"]" * 5000 + b"}]"
    sink = start_sink(oddplug, "keep")
    sink.send(frame)
    assert sink.ack() == {}
    assert collected(out_dir, "keep") == frame


def test_sink_collects_after_an_undecodable_frame(oddplug: UncappedHost, out_dir: Path) -> None:
    """After a frame it could not decode, the decode_rows sink collects the next one."""
    sink = start_sink(oddplug, "keeprows")
    sink.send(b"[" * 5000 + b"]" * 5000)
    assert sink.ack()["error"] == "sink data is nested too deeply to decode"
    sink.send(b'[{"a":1}]')
    assert sink.ack() == {}
    assert collected(out_dir, "keeprows") == b'{"type": "list", "data": [{"a": 1}]}'


def test_sink_null_decodes_to_none(oddplug: UncappedHost, out_dir: Path) -> None:
    """A null in a row reaches a decode_rows sink as None."""
    sink = start_sink(oddplug, "keeprows")
    sink.send(b'[{"v":null,"w":[null]}]')
    assert sink.ack() == {}
    assert collected(out_dir, "keeprows") == (
        b'{"type": "list", "data": [{"v": null, "w": [null]}]}')


def test_sink_non_utf8_frame_to_rows_gets_a_clear_ack_error(oddplug: UncappedHost) -> None:
    """A frame that is not UTF-8 is refused by decode_rows, naming the bad byte."""
    sink = start_sink(oddplug, "keeprows")
    sink.send(b'[{"a":"\xff"}]')
    assert sink.ack() == {"error": "sink data is not valid JSON ('utf-8' codec can't decode "
                                   "byte 0xff in position 7: invalid start byte): "
                                   "'[{\"a\":\"\ufffd\"}]'"}


def test_empty_sink_frame_is_collected(oddplug: UncappedHost, out_dir: Path) -> None:
    """An empty frame (e.g. a dataTemplate that renders nothing) reaches collect() as b''."""
    sink = start_sink(oddplug, "keep")
    sink.send(b"")
    assert sink.ack(timeout=3) == {}
    assert collected(out_dir, "keep") == b""


# -- functions ------------------------------------------------------------------------

def test_function_unicode_round_trips_unescaped(oddplug: UncappedHost) -> None:
    """A unicode argument comes back as raw UTF-8 (only the NUL escaped), byte for byte."""
    reply = exec_raw(function(oddplug, "echo"), UNICODE)
    assert reply == b'{"state":true,"result":' + UNICODE_JSON + b"}"


def test_function_10_mb_argument_round_trips(oddplug: UncappedHost) -> None:
    """A 10 MB argument comes back intact."""
    reply = exec_raw(function(oddplug, "echo"), big_text())
    assert reply == (b'{"state":true,"result":' +
                     json.dumps(big_text(), ensure_ascii=False).encode() + b"}")


def test_function_200_levels_deep_round_trips(oddplug: UncappedHost) -> None:
    """An argument nested 200 levels deep comes back as the same value."""
    reply = exec_raw(function(oddplug, "echo"), nested(200))
    assert json.loads(reply) == {"state": True, "result": nested(200)}


def test_function_5000_levels_deep_argument_is_refused_clearly(oddplug: UncappedHost) -> None:
    """A request nested 5000 levels deep is refused with a clear text, not a crash."""
    fn = function(oddplug, "echo")
    request = b'{"func":"Exec","arg":[' + b"[" * 5000 + b"]" * 5000 + b',"{}"]}'
    assert json.loads(_rep_request(fn.sock, request, skip_handshakes=True)) == {
        "state": False, "result": "function request is nested too deeply to decode"}


def test_function_null_round_trips(oddplug: UncappedHost) -> None:
    """A null argument comes back as null."""
    assert exec_raw(function(oddplug, "echo"), None) == b'{"state":true,"result":null}'


@pytest.mark.parametrize("name", ["nan", "inf", "-inf"])
def test_function_nan_result_is_a_clear_error(oddplug: UncappedHost, name: str) -> None:
    """A NaN or Infinity result becomes state false naming NaN and Infinity."""
    assert odd_result(oddplug, name) == cannot_send(NAN_ERROR)


def test_function_object_result_is_a_clear_error(oddplug: UncappedHost) -> None:
    """A result holding an arbitrary object becomes state false naming its type."""
    assert odd_result(oddplug, "object") == cannot_send(
        "Object of type object is not JSON serializable")


def test_function_non_utf8_bytes_result_is_a_clear_error(oddplug: UncappedHost) -> None:
    """A result holding non-UTF-8 bytes becomes state false saying to encode them."""
    assert odd_result(oddplug, "badbytes") == cannot_send(BYTES_ERROR)


def test_function_surrogate_result_is_a_clear_error(oddplug: UncappedHost) -> None:
    """A result holding a lone surrogate becomes state false, placed in the result's JSON."""
    assert odd_result(oddplug, "surrogate") == cannot_send(
        "'utf-8' codec can't encode character '\\ud800' in position 10: "
        "surrogates not allowed")


def test_function_5000_levels_deep_result_is_an_error_reply(oddplug: UncappedHost) -> None:
    """A result nested 5000 levels deep becomes state false, and the plugin lives on."""
    assert odd_result(oddplug, "deep5000") == cannot_send(
        "value is nested too deeply to be sent as JSON")


@pytest.mark.parametrize(("name", "value"), [
    ("utf8bytes", "caf\u00e9 \U0001f30d"), ("set", [3]), ("tuple", [1, "a"]), ("none", None),
])
def test_function_convertible_result_is_sent(oddplug: UncappedHost, name: str,
                                             value: Any) -> None:
    """UTF-8 bytes become text, sets and tuples lists, None null."""
    assert odd_result(oddplug, name) == {"state": True, "result": {"value": value}}


def test_function_serves_after_bad_results(oddplug: UncappedHost) -> None:
    """After results it could not send, the same function answers the next call."""
    fn = function(oddplug, "oddresult")
    for name in ("nan", "object", "badbytes", "deep5000"):
        assert json.loads(exec_raw(fn, name))["state"] is False
    assert json.loads(exec_raw(fn, "none")) == {"state": True, "result": {"value": None}}
