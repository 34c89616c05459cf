"""Unit tests for ekuiper._protocol: the wire protocol as pure functions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ekuiper import _protocol
from ekuiper._protocol import (
    ACK_OK,
    CONTROL_OK,
    HANDSHAKE,
    Command,
    Control,
    ExecCaller,
    FuncRequest,
    Meta,
    PluginArgs,
    control_error_reply,
    control_url,
    decode_sink_rows,
    encode_ack_error,
    encode_func_reply,
    encode_source_error_frame,
    encode_source_frame,
    function_url,
    parse_command,
    parse_func_request,
    parse_plugin_args,
    sink_ack_url,
    symbol_data_url,
)
from ekuiper.errors import ProtocolError

META = {"ruleId": "r1", "opId": "op", "instanceId": 0}


def frame(cmd: str = "start", **control: object) -> bytes:
    """A control-channel frame as eKuiper sends it: ``arg`` is a JSON *string*."""
    return json.dumps({"cmd": cmd, "arg": json.dumps(control)}).encode()


def source_control(**overrides: object) -> dict[str, object]:
    control: dict[str, object] = {
        "symbolName": "pyjson",
        "meta": META,
        "pluginType": "source",
        "config": {"datasource": "t1", "format": "json"},
    }
    control.update(overrides)
    return control


def func_frame(func: str, arg: object) -> bytes:
    return json.dumps({"func": func, "arg": arg}).encode()


# -- constants ----------------------------------------------------------------------------


def test_wire_constants_match_the_protocol() -> None:
    """The handshake, control ok and ack ok frames are the exact bytes eKuiper expects."""
    assert (HANDSHAKE, CONTROL_OK, ACK_OK) == (b"handshake", b"ok", b"{}")


# -- parse_command ------------------------------------------------------------------------


def test_parse_command_v2_reads_datasource_from_config() -> None:
    """A v2 start command (no dataSource) takes the DATASOURCE from config.datasource."""
    command = parse_command(frame(**source_control()))
    assert command == Command(
        "start",
        Control("pyjson", "source", Meta("r1", "op", 0), "t1",
                {"datasource": "t1", "format": "json"}),
    )


def test_parse_command_v1_reads_top_level_datasource() -> None:
    """A v1 start command carries the DATASOURCE in the top-level dataSource field."""
    control = source_control(dataSource="topic/a")
    del control["config"]
    command = parse_command(frame(**control))
    assert command.control.datasource == "topic/a"
    assert command.control.config == {}


def test_parse_command_prefers_v1_datasource_over_config() -> None:
    """When both dataSource and config.datasource exist, dataSource wins."""
    command = parse_command(frame(**source_control(dataSource="v1-topic")))
    assert command.control.datasource == "v1-topic"


def test_parse_command_without_any_datasource_gives_empty_string() -> None:
    """A sink command with neither dataSource nor config.datasource has datasource ""."""
    command = parse_command(frame(symbolName="print", meta=META, pluginType="sink",
                                  config={"requireAck": True}))
    assert command.control.datasource == ""
    assert command.control.config == {"requireAck": True}


def test_parse_command_decodes_arg_given_as_json_string() -> None:
    """The arg field is a string holding JSON; it is decoded into the Control."""
    raw = b'{"cmd":"stop","arg":"{\\"symbolName\\":\\"print\\",\\"pluginType\\":\\"sink\\",' \
          b'\\"meta\\":{\\"ruleId\\":\\"r9\\",\\"opId\\":\\"sink_0\\",\\"instanceId\\":3}}"}'
    command = parse_command(raw)
    assert command == Command("stop", Control("print", "sink", Meta("r9", "sink_0", 3)))


def test_parse_command_accepts_arg_given_as_object() -> None:
    """An arg that is already a JSON object is accepted as the Control."""
    raw = json.dumps({"cmd": "start", "arg": source_control()}).encode()
    assert parse_command(raw).control.symbol_name == "pyjson"


def test_parse_command_stop() -> None:
    """A stop command parses with cmd 'stop'."""
    assert parse_command(frame("stop", **source_control())).cmd == "stop"


def test_parse_command_missing_meta_is_empty_meta() -> None:
    """A function start command without meta gets an empty Meta."""
    command = parse_command(frame(symbolName="revert", pluginType="func"))
    assert command.control.meta == Meta("", "", 0)
    assert command.control.meta.is_empty is True


def test_parse_command_null_config_is_empty_dict() -> None:
    """config: null parses as an empty config."""
    command = parse_command(frame(**source_control(config=None)))
    assert command.control.config == {}


def test_control_label_of_function_has_no_rule() -> None:
    """A function's label names only kind and symbol."""
    command = parse_command(frame(symbolName="revert", pluginType="func",
                                  meta={"ruleId": "", "opId": "", "instanceId": 0}))
    assert command.control.label == "function 'revert'"


def test_control_label_of_rule_symbol_names_rule_op_instance() -> None:
    """A source/sink label names rule, operator and instance."""
    command = parse_command(frame(symbolName="print", pluginType="sink",
                                  meta={"ruleId": "r1", "opId": "op", "instanceId": 2}))
    assert command.control.label == "sink 'print' (rule 'r1', op 'op', instance 2)"


def test_control_key_identifies_rule_op_instance_symbol() -> None:
    """The registry key is (ruleId, opId, instanceId, symbolName)."""
    command = parse_command(frame(**source_control(meta={"ruleId": "r1", "opId": "o",
                                                         "instanceId": 4})))
    assert command.control.key == ("r1", "o", 4, "pyjson")


def test_meta_with_rule_is_not_empty() -> None:
    """A Meta that names a rule is not empty."""
    assert Meta("r1", "op", 0).is_empty is False


def _arg(**overrides: object) -> bytes:
    """A start frame for the source control with some fields overridden."""
    return frame(**source_control(**overrides))

MALFORMED_COMMANDS = [
    pytest.param(b"not json",
                 "control command is not valid JSON (Expecting value: line 1 column 1 "
                 "(char 0)): 'not json'", id="outer-not-json"),
    pytest.param(b"[]", "control command must be a JSON object, got list", id="outer-list"),
    pytest.param(b'{"arg": "{}"}', "control command lacks the 'cmd' field: {'arg': '{}'}",
                 id="no-cmd"),
    pytest.param(b'{"cmd": 1, "arg": "{}"}', "control command field 'cmd' must be str, got int",
                 id="cmd-not-str"),
    pytest.param(b'{"cmd": "restart", "arg": "{}"}',
                 "unknown control command 'restart': expected 'start' or 'stop'",
                 id="unknown-cmd"),
    pytest.param(b'{"cmd": "start"}', "control command lacks the 'arg' field: {'cmd': 'start'}",
                 id="no-arg"),
    pytest.param(b'{"cmd": "start", "arg": 5}',
                 "control command field 'arg' must be str or dict, got int", id="arg-int"),
    pytest.param(b'{"cmd": "start", "arg": "nope"}',
                 "control command arg is not valid JSON (Expecting value: line 1 column 1 "
                 "(char 0)): 'nope'", id="arg-not-json"),
    pytest.param(b'{"cmd": "start", "arg": "[1]"}',
                 "control arg must be a JSON object, got list", id="arg-list"),
    pytest.param(frame(pluginType="source"),
                 "control arg lacks the 'symbolName' field: {'pluginType': 'source'}",
                 id="no-symbol"),
    pytest.param(_arg(symbolName=3), "control arg field 'symbolName' must be str, got int",
                 id="symbol-int"),
    pytest.param(_arg(symbolName=""), "control arg has an empty symbolName", id="symbol-empty"),
    pytest.param(frame(symbolName="pyjson"),
                 "control arg lacks the 'pluginType' field: {'symbolName': 'pyjson'}",
                 id="no-plugin-type"),
    pytest.param(_arg(pluginType="filter"),
                 "unknown pluginType 'filter' for symbol 'pyjson': "
                 "expected one of source, sink, func", id="unknown-plugin-type"),
    pytest.param(_arg(meta="r1"), "control arg meta must be an object, got str",
                 id="meta-str"),
    pytest.param(_arg(meta={"ruleId": 1, "opId": "op", "instanceId": 0}),
                 "control arg meta ruleId and opId must be strings: "
                 "{'ruleId': 1, 'opId': 'op', 'instanceId': 0}", id="rule-id-int"),
    pytest.param(_arg(meta={"ruleId": "r1", "opId": None, "instanceId": 0}),
                 "control arg meta ruleId and opId must be strings: "
                 "{'ruleId': 'r1', 'opId': None, 'instanceId': 0}", id="op-id-null"),
    pytest.param(_arg(meta={"ruleId": "r1", "opId": "op", "instanceId": "0"}),
                 "control arg meta instanceId must be an integer: "
                 "{'ruleId': 'r1', 'opId': 'op', 'instanceId': '0'}", id="instance-str"),
    pytest.param(_arg(meta={"ruleId": "r1", "opId": "op", "instanceId": True}),
                 "control arg meta instanceId must be an integer: "
                 "{'ruleId': 'r1', 'opId': 'op', 'instanceId': True}", id="instance-bool"),
    pytest.param(_arg(config=[1]), "control arg config must be an object, got list",
                 id="config-list"),
    pytest.param(_arg(config="x"), "control arg config must be an object, got str",
                 id="config-str"),
    pytest.param(_arg(dataSource=5), "datasource must be a string, got int",
                 id="datasource-int"),
    pytest.param(_arg(config={"datasource": ["t1"]}), "datasource must be a string, got list",
                 id="config-datasource-list"),
]


@pytest.mark.parametrize(("raw", "message"), MALFORMED_COMMANDS)
def test_parse_command_malformed_raises_protocol_error(raw: bytes, message: str) -> None:
    """Each malformed control frame raises ProtocolError with a message naming the fault."""
    with pytest.raises(ProtocolError) as info:
        parse_command(raw)
    assert str(info.value) == message


def test_parse_command_non_utf8_bytes_raise_protocol_error() -> None:
    """A frame that is not UTF-8 raises ProtocolError, not UnicodeDecodeError."""
    with pytest.raises(ProtocolError,
                       match=r"^control command is not valid JSON \('utf-8' codec can't "
                             r"decode byte 0xff"):
        parse_command(b'{"cmd": "\xff"}')


def test_parse_command_long_garbage_is_truncated_in_message() -> None:
    """The malformed frame quoted in the error is cut to 200 characters."""
    with pytest.raises(ProtocolError) as info:
        parse_command(b"x" * 1000)
    assert str(info.value).endswith(": '" + "x" * 200 + "'")


def test_parse_command_deeply_nested_input_raises_protocol_error() -> None:
    """Deeply nested (unterminated) JSON raises ProtocolError rather than RecursionError."""
    with pytest.raises(ProtocolError):
        parse_command(b"[" * 100_000)


# -- control_error_reply ------------------------------------------------------------------


def test_control_error_reply_plain_message_is_sent_verbatim() -> None:
    """An ordinary error text is sent unchanged as UTF-8."""
    assert control_error_reply("symbol not found") == b"symbol not found"


@pytest.mark.parametrize(("message", "expected"), [
    ("handshake failed", b"error: handshake failed"),
    ("Hello world", b"error: Hello world"),
    ("  how odd  ", b"error: how odd"),
])
def test_control_error_reply_prefixes_text_starting_with_h(message: str, expected: bytes) -> None:
    """A message starting with h/H (after stripping) gets an 'error: ' prefix."""
    assert control_error_reply(message) == expected


@pytest.mark.parametrize("message", ["", "   ", "\n\t"])
def test_control_error_reply_empty_message_gets_placeholder(message: str) -> None:
    """An empty or blank message is replaced by a fixed non-empty text."""
    assert control_error_reply(message) == b"unknown error in the plugin"


@pytest.mark.parametrize("message", [
    "", " ", "h", "H", "handshake", "Help", "\nhm", "ok", "x", "héllo", "🙂",
])
def test_control_error_reply_never_starts_with_h_nor_is_empty(message: str) -> None:
    """No error reply is empty or starts with 'h'/'H' (eKuiper's handshake marker)."""
    reply = control_error_reply(message)
    assert reply
    assert reply[:1] not in (b"h", b"H")


def test_control_error_reply_keeps_unicode() -> None:
    """Non-ASCII text is UTF-8 encoded, not escaped."""
    assert control_error_reply("crème brûlée 🙂") == "crème brûlée 🙂".encode()


def test_control_error_reply_replaces_lone_surrogates() -> None:
    """A lone surrogate is replaced instead of raising UnicodeEncodeError."""
    assert control_error_reply("bad \udcff") == b"bad ?"


# -- encode_source_frame ------------------------------------------------------------------


def test_encode_source_frame_dict_with_null_meta() -> None:
    """A dict row becomes compact {"message": ..., "meta": null} JSON."""
    assert encode_source_frame({"a": 1, "b": "x"}, None) == \
        b'{"message":{"a":1,"b":"x"},"meta":null}'


def test_encode_source_frame_with_meta() -> None:
    """A meta dict travels next to the message."""
    assert encode_source_frame({"a": 1}, {"topic": "t"}) == \
        b'{"message":{"a":1},"meta":{"topic":"t"}}'


@pytest.mark.parametrize(("message", "type_name"), [
    ([{"a": 1}], "list"), (5, "int"), ("row", "str"), (None, "NoneType"),
])
def test_encode_source_frame_non_mapping_raises_type_error(message: object,
                                                           type_name: str) -> None:
    """A list or scalar message raises TypeError naming its type."""
    with pytest.raises(TypeError) as info:
        encode_source_frame(message, None)  # type: ignore[arg-type]
    assert str(info.value) == \
        f"emit() takes a dict (one row) or a list of dicts, got {type_name}"


def test_encode_source_frame_non_mapping_meta_raises_type_error() -> None:
    """A meta that is neither a dict nor None raises TypeError."""
    with pytest.raises(TypeError, match=r"^emit\(\) meta must be a dict or None, got list$"):
        encode_source_frame({"a": 1}, ["m"])  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_encode_source_frame_nan_or_infinity_raises_value_error(value: float) -> None:
    """NaN and +/-Infinity raise ValueError explaining that JSON cannot carry them."""
    with pytest.raises(ValueError) as info:
        encode_source_frame({"x": value}, None)
    assert str(info.value) == (
        "NaN and Infinity cannot be sent to eKuiper (JSON has no such numbers); "
        "replace them with None or a finite value"
    )


def test_encode_source_frame_nan_in_meta_raises_value_error() -> None:
    """NaN inside meta is refused like NaN in the message."""
    with pytest.raises(ValueError, match=r"^NaN and Infinity cannot be sent to eKuiper \(JSON"):
        encode_source_frame({"x": 1}, {"score": float("nan")})


def test_encode_source_frame_non_utf8_bytes_raise_type_error() -> None:
    """Bytes that are not UTF-8 raise TypeError suggesting an encoding."""
    with pytest.raises(TypeError) as info:
        encode_source_frame({"blob": b"\xff\xfe"}, None)
    assert str(info.value) == (
        "bytes that are not UTF-8 cannot be sent as JSON; encode them (e.g. base64) first"
    )


@pytest.mark.parametrize("blob", [b"h\xc3\xa9llo", bytearray(b"h\xc3\xa9llo"),
                                  memoryview(b"h\xc3\xa9llo")])
def test_encode_source_frame_utf8_bytes_become_strings(blob: object) -> None:
    """UTF-8 bytes, bytearray and memoryview values are sent as JSON strings."""
    assert encode_source_frame({"s": blob}, None) == \
        '{"message":{"s":"héllo"},"meta":null}'.encode()


def test_encode_source_frame_preserves_unicode_and_emoji() -> None:
    """Non-ASCII text and emoji are sent as UTF-8, not \\u-escaped."""
    raw = encode_source_frame({"name": "Zoë 🚀 東京"}, None)
    assert raw == '{"message":{"name":"Zoë 🚀 東京"},"meta":null}'.encode()
    assert b"\\u" not in raw


def test_encode_source_frame_tuple_and_set_become_lists() -> None:
    """Tuples and sets are encoded as JSON arrays."""
    assert encode_source_frame({"t": (1, 2), "s": {3}}, None) == \
        b'{"message":{"t":[1,2],"s":[3]},"meta":null}'


def test_encode_source_frame_unserializable_object_raises_type_error() -> None:
    """An arbitrary object raises TypeError naming its type."""
    with pytest.raises(TypeError, match=r"^Object of type object is not JSON serializable$"):
        encode_source_frame({"o": object()}, None)


def test_encode_source_frame_lone_surrogate_raises_value_error() -> None:
    """A string JSON cannot carry as UTF-8 (lone surrogate) raises a ValueError."""
    with pytest.raises(ValueError, match="surrogates not allowed"):
        encode_source_frame({"s": "\udcff"}, None)


# -- encode_source_error_frame / encode_ack_error -----------------------------------------


def test_encode_source_error_frame_is_prefixed_plain_text() -> None:
    """A source error travels as the plain text 'source error: <text>'."""
    assert encode_source_error_frame("broker down") == b"source error: broker down"


def test_encode_source_error_frame_is_not_json_row() -> None:
    """The error frame is not JSON, so eKuiper counts it as a decode exception."""
    with pytest.raises(ValueError):
        json.loads(encode_source_error_frame("x"))


def test_encode_source_error_frame_keeps_unicode_and_replaces_surrogates() -> None:
    """Unicode is UTF-8 encoded and a lone surrogate becomes '?'."""
    assert encode_source_error_frame("é \udcff") == "source error: é ?".encode()


def test_encode_ack_error_wraps_text_in_error_object() -> None:
    """A negative ack is {"error": text}."""
    assert encode_ack_error("disk full") == b'{"error":"disk full"}'


def test_encode_ack_error_empty_text_gets_placeholder() -> None:
    """An empty ack error text is replaced so eKuiper still sees an error message."""
    assert encode_ack_error("") == b'{"error":"sink reported an error without a message"}'


def test_encode_ack_error_keeps_unicode() -> None:
    """Unicode in the ack error is sent as UTF-8, not escaped."""
    assert encode_ack_error("échec 🙁") == '{"error":"échec 🙁"}'.encode()


def test_encode_ack_error_with_lone_surrogate_still_encodes() -> None:
    """An ack error text holding a lone surrogate still yields a decodable ack frame."""
    assert json.loads(encode_ack_error("bad name \udcff")) == {"error": "bad name ?"}


# -- decode_sink_rows ---------------------------------------------------------------------


def test_decode_sink_rows_array_of_rows() -> None:
    """A JSON array of objects (sendSingle false) decodes to the list of rows."""
    assert decode_sink_rows(b'[{"a":1},{"a":2}]') == [{"a": 1}, {"a": 2}]


def test_decode_sink_rows_single_object() -> None:
    """A single JSON object (sendSingle true) decodes to a one-row list."""
    assert decode_sink_rows(b'{"a":"\xc3\xa9"}') == [{"a": "é"}]


def test_decode_sink_rows_empty_array() -> None:
    """An empty JSON array decodes to no rows."""
    assert decode_sink_rows(b"[]") == []


@pytest.mark.parametrize("raw", [b"[1,2]", b'[{"a":1},"x"]', b'"text"', b"42", b"null"])
def test_decode_sink_rows_non_row_json_raises_protocol_error(raw: bytes) -> None:
    """JSON that is not a row or list of rows raises ProtocolError pointing at collect()."""
    with pytest.raises(ProtocolError) as info:
        decode_sink_rows(raw)
    assert str(info.value) == (
        "sink data is JSON but not a row or a list of rows; with a custom dataTemplate "
        "or format, leave decode_rows off and decode the bytes in collect()"
    )


def test_decode_sink_rows_invalid_json_raises_protocol_error() -> None:
    """Bytes that are not JSON raise ProtocolError quoting them."""
    with pytest.raises(ProtocolError) as info:
        decode_sink_rows(b"hello,world")
    assert str(info.value) == (
        "sink data is not valid JSON (Expecting value: line 1 column 1 (char 0)): "
        "'hello,world'"
    )


# -- parse_func_request -------------------------------------------------------------------


def test_parse_func_request_exec_splits_args_and_func_meta() -> None:
    """Exec takes all but the last element as args and the last as FuncMeta JSON."""
    fmeta = json.dumps({"ruleId": "r1", "opId": "op2", "instanceId": 1, "funcId": 7})
    request = parse_func_request(func_frame("Exec", ["abc", 3, {"k": [1]}, fmeta]))
    assert request == FuncRequest("Exec", ["abc", 3, {"k": [1]}],
                                  ExecCaller(Meta("r1", "op2", 1), 7, fmeta))


BIG = 123456789012345678901234567890


@pytest.mark.parametrize("args", [[BIG], ["x", 1.5, BIG], [{"k": [BIG]}], [[BIG, 2]],
                                  [-2**63 - 1]],
                         ids=["int", "beside-a-float", "in-an-object", "in-a-list",
                              "below-i64-min"])
def test_parse_func_request_exec_keeps_every_digit_of_big_ints(encoder: str,
                                                               args: list[Any]) -> None:
    """An integer beyond 64 bits reaches exec whole, wherever it sits in the args."""
    request = parse_func_request(func_frame("Exec", [*args, '{"ruleId":"r","opId":"o"}']))
    assert repr(request.args) == repr(args)


def test_parse_func_request_reads_container_args_once_without_long_digits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Args holding floats or containers but no 20-digit run are not decoded a second time."""
    reads: list[bytes | str] = []
    exact = _protocol._loads

    def counted(raw: bytes | str, what: str) -> Any:
        reads.append(raw)
        return exact(raw, what)

    monkeypatch.setattr(_protocol, "_loads", counted)
    frame = func_frame("Exec", [1.5, [2, {"k": 3.25}], '{"ruleId":"r"}'])
    request = parse_func_request(frame)
    assert request.args == [1.5, [2, {"k": 3.25}]]
    assert frame not in reads  # (the context string is read on its own, once)


def test_parse_func_request_refuses_a_deep_validate_with_long_digits(encoder: str) -> None:
    """A Validate nested past the decoder's depth, with a long digit run, is a ProtocolError."""
    raw = b'{"func":"Validate","arg":' + b"[" * 5000 + b"1" * 25 + b"]" * 5000 + b"}"
    with pytest.raises(ProtocolError):
        parse_func_request(raw)


def test_parse_func_request_validate_keeps_every_digit_of_big_ints(encoder: str) -> None:
    """Validate's AST nodes keep an integer beyond 64 bits whole."""
    nodes = [{"Val": BIG}]
    assert repr(parse_func_request(func_frame("Validate", nodes)).args) == repr(nodes)


def test_parse_func_request_exec_with_only_func_meta_has_no_args() -> None:
    """Exec whose arg is just the FuncMeta string gives an empty argument list."""
    fmeta = '{"ruleId":"r","opId":"o"}'
    request = parse_func_request(func_frame("Exec", [fmeta]))
    assert request == FuncRequest("Exec", [], ExecCaller(Meta("r", "o", 0), 0, fmeta))


def test_parse_func_request_validate_keeps_ast_nodes() -> None:
    """Validate passes its arg list (AST nodes) through unchanged."""
    nodes = [{"Name": "name", "StreamName": "s1"}, {"Val": 3}]
    assert parse_func_request(func_frame("Validate", nodes)) == FuncRequest("Validate", nodes)


def test_parse_func_request_validate_null_arg_is_empty_list() -> None:
    """Validate with arg null gives an empty argument list."""
    assert parse_func_request(func_frame("Validate", None)) == FuncRequest("Validate", [])


def test_parse_func_request_is_aggregate_ignores_arg() -> None:
    """IsAggregate (arg null) parses with no args and no call meta."""
    assert parse_func_request(func_frame("IsAggregate", None)) == FuncRequest("IsAggregate", [])


def test_parse_exec_gives_args_and_caller() -> None:
    """parse_exec, the fast path, gives an Exec's args and its caller as a plain tuple."""
    fmeta = '{"ruleId":"r","opId":"o","instanceId":2,"funcId":3}'
    assert _protocol.parse_exec(func_frame("Exec", ["a", 1, fmeta])) == (
        ["a", 1], ExecCaller(Meta("r", "o", 2), 3, fmeta))


@pytest.mark.parametrize("raw", [func_frame("Validate", [{"Val": 1}]),
                                 func_frame("IsAggregate", None), func_frame("Exec", []),
                                 func_frame("Exec", [1]), b"[]"])
def test_parse_exec_leaves_other_requests_to_parse_func_request(raw: bytes) -> None:
    """Anything but a well-formed Exec gives None from parse_exec (no error, no guess)."""
    assert _protocol.parse_exec(raw) is None


def test_calls_of_one_expression_share_one_caller() -> None:
    """Every call with the same context string gets the same ExecCaller object."""
    fmeta = '{"ruleId":"shared","opId":"o"}'
    first = parse_func_request(func_frame("Exec", [1, fmeta])).caller
    assert parse_func_request(func_frame("Exec", [2, fmeta])).caller is first


def test_made_up_context_strings_cannot_grow_the_caller_cache(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_CALLERS distinct context strings the cache starts over, staying bounded."""
    monkeypatch.setattr(_protocol, "MAX_CALLERS", 4)
    monkeypatch.setattr(_protocol, "_callers", {})
    for n in range(10):
        parse_func_request(func_frame("Exec", [f'{{"ruleId":"r{n}"}}']))
        assert len(_protocol._callers) <= 4
    assert '{"ruleId":"r9"}' in _protocol._callers


def test_a_context_string_over_the_cap_is_read_each_call_and_not_kept() -> None:
    """A context string longer than MAX_KEPT_CONTEXT_CHARS is read right, and not cached."""
    rule = "r" * _protocol.MAX_KEPT_CONTEXT_CHARS
    fmeta = json.dumps({"ruleId": rule, "opId": "o", "instanceId": 1, "funcId": 2})
    for _ in range(2):
        assert _protocol.parse_exec(func_frame("Exec", ["a", fmeta])) == (
            ["a"], ExecCaller(Meta(rule, "o", 1), 2, fmeta))
    assert fmeta not in _protocol._callers


def test_a_bad_context_string_is_refused_each_time() -> None:
    """A context string that is no object is a ProtocolError, and is not remembered."""
    for _ in range(2):
        with pytest.raises(ProtocolError, match="Exec function context must be a JSON object"):
            parse_func_request(func_frame("Exec", ["[1]"]))
    assert "[1]" not in _protocol._callers


MALFORMED_FUNC_REQUESTS = [
    pytest.param(b"{", "function request is not valid JSON (Expecting property name enclosed "
                       "in double quotes: line 1 column 2 (char 1)): '{'", id="not-json"),
    pytest.param(b'["Exec"]', "function request must be a JSON object, got list", id="list"),
    pytest.param(b'{"arg": []}', "function request lacks the 'func' field: {'arg': []}",
                 id="no-func"),
    pytest.param(b'{"func": 1}', "function request field 'func' must be str, got int",
                 id="func-int"),
    pytest.param(func_frame("Call", []),
                 "unknown function call 'Call': expected Exec, Validate or IsAggregate",
                 id="unknown-func"),
    pytest.param(func_frame("Validate", {"a": 1}), "Validate arg must be a list, got dict",
                 id="validate-dict"),
    pytest.param(func_frame("Exec", []),
                 "Exec arg must be a list ending with the function context string",
                 id="exec-empty"),
    pytest.param(func_frame("Exec", None),
                 "Exec arg must be a list ending with the function context string",
                 id="exec-null"),
    pytest.param(func_frame("Exec", [1, 2]),
                 "Exec arg must end with the function context string, got int",
                 id="exec-no-meta-string"),
    pytest.param(func_frame("Exec", [1, "nope"]),
                 "Exec function context is not valid JSON (Expecting value: line 1 column 1 "
                 "(char 0)): 'nope'", id="exec-meta-not-json"),
    pytest.param(func_frame("Exec", [1, "[1]"]), "Exec function context must be a JSON object",
                 id="exec-meta-list"),
    pytest.param(func_frame("Exec", [1, '{"ruleId": 5}']),
                 "Exec function context ruleId and opId must be strings: {'ruleId': 5}",
                 id="exec-meta-rule-int"),
    pytest.param(func_frame("Exec", [1, '{"instanceId": 1.5}']),
                 "Exec function context instanceId must be an integer: {'instanceId': 1.5}",
                 id="exec-meta-instance-float"),
    pytest.param(func_frame("Exec", [1, '{"funcId": "7"}']),
                 "Exec function context funcId must be an integer", id="exec-funcid-str"),
    pytest.param(func_frame("Exec", [1, '{"funcId": false}']),
                 "Exec function context funcId must be an integer", id="exec-funcid-bool"),
]


@pytest.mark.parametrize(("raw", "message"), MALFORMED_FUNC_REQUESTS)
def test_parse_func_request_malformed_raises_protocol_error(raw: bytes, message: str) -> None:
    """Each malformed function request raises ProtocolError with a message naming the fault."""
    with pytest.raises(ProtocolError) as info:
        parse_func_request(raw)
    assert str(info.value) == message


# -- encode_func_reply --------------------------------------------------------------------


def test_encode_func_reply_success() -> None:
    """A result is sent as {"state": true, "result": ...}."""
    assert encode_func_reply(True, {"r": [1, "é"]}) == \
        '{"state":true,"result":{"r":[1,"é"]}}'.encode()


def test_encode_func_reply_error_text() -> None:
    """state false carries the error text as result."""
    assert encode_func_reply(False, "boom") == b'{"state":false,"result":"boom"}'


def test_encode_func_reply_non_json_result_becomes_state_false() -> None:
    """A result JSON cannot carry is turned into a state-false reply explaining why."""
    assert json.loads(encode_func_reply(True, object())) == {
        "state": False,
        "result": "function result cannot be sent to eKuiper: "
                  "Object of type object is not JSON serializable",
    }


def test_encode_func_reply_nan_result_becomes_state_false() -> None:
    """A NaN result is turned into a state-false reply with the NaN explanation."""
    assert json.loads(encode_func_reply(True, float("nan"))) == {
        "state": False,
        "result": "function result cannot be sent to eKuiper: NaN and Infinity cannot be "
                  "sent to eKuiper (JSON has no such numbers); replace them with None or a "
                  "finite value",
    }


def test_encode_func_reply_surrogate_result_becomes_state_false() -> None:
    """A result with a lone surrogate yields a valid state-false reply, not an exception."""
    reply = json.loads(encode_func_reply(True, "\udcff"))
    assert reply["state"] is False
    assert reply["result"].startswith("function result cannot be sent to eKuiper: 'utf-8' codec")


# -- parse_plugin_args --------------------------------------------------------------------


def test_parse_plugin_args_reads_send_timeout() -> None:
    """The JSON argument's sendTimeout becomes send_timeout_ms."""
    assert parse_plugin_args(['{"sendTimeout":5000}']) == PluginArgs(5000)


def test_parse_plugin_args_no_args_gives_default() -> None:
    """Without arguments the send timeout defaults to 1000 ms."""
    assert parse_plugin_args([]) == PluginArgs(1000)


def test_parse_plugin_args_skips_non_json_arguments() -> None:
    """Arguments that are not JSON (e.g. under conda run) are skipped."""
    assert parse_plugin_args(["-u", "main.py", '{"sendTimeout":250}']) == PluginArgs(250)


def test_parse_plugin_args_float_timeout_is_rounded_up() -> None:
    """A float sendTimeout is accepted and rounded up to whole milliseconds."""
    assert parse_plugin_args(['{"sendTimeout":2500.1}']) == PluginArgs(2501)


def test_parse_plugin_args_dict_without_timeout_gives_default() -> None:
    """A JSON object without sendTimeout gives the default."""
    assert parse_plugin_args(['{"other":1}']) == PluginArgs(1000)


@pytest.mark.parametrize("value", ["0", "-5", "true", '"1000"', "null", "Infinity", "NaN"])
def test_parse_plugin_args_unusable_timeout_gives_default(value: str) -> None:
    """A zero, negative, non-numeric or non-finite sendTimeout falls back to 1000 ms."""
    assert parse_plugin_args(['{"sendTimeout":' + value + "}"]) == PluginArgs(1000)


def test_parse_plugin_args_non_object_json_is_skipped() -> None:
    """A JSON value that is not an object is skipped for a later object."""
    assert parse_plugin_args(["[1]", "42", '{"sendTimeout":30}']) == PluginArgs(30)


def test_parse_plugin_args_later_valid_object_wins_over_unusable_one() -> None:
    """An object with an unusable timeout is skipped in favour of a later usable one."""
    assert parse_plugin_args(['{"sendTimeout":-1}', '{"sendTimeout":300}']) == PluginArgs(300)


def test_parse_plugin_args_positive_fraction_never_gives_zero_timeout() -> None:
    """A positive sendTimeout below 1 ms never yields a 0 ms timeout."""
    assert parse_plugin_args(['{"sendTimeout":0.5}']).send_timeout_ms >= 1


# -- URL helpers --------------------------------------------------------------------------


def test_control_url() -> None:
    """The control channel URL is ipc://<dir>/plugin_<name>.ipc."""
    assert control_url("/tmp", "pysam") == "ipc:///tmp/plugin_pysam.ipc"


def test_function_url() -> None:
    """The function channel URL is ipc://<dir>/func_<symbol>.ipc."""
    assert function_url("/tmp", "revert") == "ipc:///tmp/func_revert.ipc"


def test_symbol_data_url() -> None:
    """The data channel URL is ipc://<dir>/<rule>_<op>_<instance>.ipc."""
    assert symbol_data_url("/tmp", Meta("r1", "op", 0)) == "ipc:///tmp/r1_op_0.ipc"


def test_sink_ack_url() -> None:
    """The ack channel URL is the data channel name with an _ack suffix."""
    assert sink_ack_url("/tmp", Meta("r1", "op", 0)) == "ipc:///tmp/r1_op_0_ack.ipc"


def test_url_helpers_ignore_trailing_slash_of_ipc_dir() -> None:
    """A trailing slash on the IPC directory does not double the separator."""
    assert control_url("/tmp/", "pysam") == "ipc:///tmp/plugin_pysam.ipc"


def test_url_helpers_with_root_ipc_dir() -> None:
    """The filesystem root as IPC directory gives ipc:///<name>.ipc."""
    assert function_url("/", "revert") == "ipc:///func_revert.ipc"


def test_symbol_data_url_uses_instance_number() -> None:
    """The instance id appears in data URLs for concurrent operator instances."""
    assert symbol_data_url("/var/run", Meta("r2", "sink", 3)) == "ipc:///var/run/r2_sink_3.ipc"
