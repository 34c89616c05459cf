"""Property tests of the pure protocol layer: whatever arrives, a value or a ProtocolError."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ekuiper import _protocol
from ekuiper._protocol import Command, FuncRequest
from ekuiper.errors import ProtocolError
from tests.reliability import strategies as s
from tests.reliability._counts import CASES

# About 6000 cases in all: 1000 on the cheap byte-level properties, 500 on the structured
# ones, 200 on the rest, 25 with megabyte strings; the whole file runs in about 15 s.
# Health checks that only measure generation speed would flake on a loaded CI machine.
QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
         HealthCheck.large_base_example]
MAIN = settings(max_examples=1000, deadline=None, database=None, suppress_health_check=QUIET)
STRUCTURED = settings(max_examples=500, deadline=None, database=None,
                      suppress_health_check=QUIET)
SIDE = settings(max_examples=200, deadline=None, database=None, suppress_health_check=QUIET)
HUGE = settings(max_examples=25, deadline=None, database=None, suppress_health_check=QUIET)


def _command_or_protocol_error(raw: bytes) -> Command | ProtocolError:
    CASES["pure"] += 1
    try:
        command = _protocol.parse_command(raw)
    except ProtocolError as exc:
        assert str(exc), "a ProtocolError must say what is wrong"
        return exc
    assert isinstance(command, Command)
    assert command.cmd in ("start", "stop")
    assert command.control.kind in ("source", "sink", "func")
    assert isinstance(command.control.symbol_name, str) and command.control.symbol_name
    assert isinstance(command.control.meta.instance_id, int)
    assert isinstance(command.control.datasource, str)
    assert isinstance(command.control.config, dict)
    return command


def _request_or_protocol_error(raw: bytes) -> FuncRequest | ProtocolError:
    CASES["pure"] += 1
    try:
        request = _protocol.parse_func_request(raw)
    except ProtocolError as exc:
        assert str(exc), "a ProtocolError must say what is wrong"
        _exec_agrees(raw, None)
        return exc
    assert isinstance(request, FuncRequest)
    assert request.func in ("Exec", "Validate", "IsAggregate")
    assert isinstance(request.args, list)
    assert (request.caller is not None) == (request.func == "Exec")
    _exec_agrees(raw, request)
    return request


def _exec_agrees(raw: bytes, request: FuncRequest | None) -> None:
    """parse_exec, the runtime's fast path, reads what parse_func_request reads."""
    try:
        call = _protocol.parse_exec(raw)
    except ProtocolError:
        assert request is None, "parse_exec refused what parse_func_request read"
        return
    if request is not None and request.func == "Exec":
        assert call == (request.args, request.caller)
    else:
        assert call is None


def _strict_json(raw: bytes) -> Any:
    """Decode as Go would: strict UTF-8, no NaN/Infinity literals."""
    def refuse(literal: str) -> Any:
        raise AssertionError(f"reply carries the non-JSON literal {literal}")
    return json.loads(raw.decode("utf-8"), parse_constant=refuse)


# -- parse_command --------------------------------------------------------------------

@MAIN
@given(st.binary(max_size=300))
def test_parse_command_arbitrary_bytes(raw: bytes) -> None:
    """Arbitrary bytes give a Command or a ProtocolError, nothing else."""
    _command_or_protocol_error(raw)


@SIDE
@given(s.json_values)
def test_parse_command_arbitrary_json(value: Any) -> None:
    """Any JSON value but a command object is refused with a ProtocolError."""
    assert isinstance(_command_or_protocol_error(json.dumps(value).encode()), ProtocolError)


@STRUCTURED
@given(s.wrong_commands())
def test_parse_command_structured_but_wrong(raw: bytes) -> None:
    """A command with one missing or mistyped field is refused with a ProtocolError."""
    assert isinstance(_command_or_protocol_error(raw), ProtocolError)


@SIDE
@given(s.truncated(s.valid_commands()))
def test_parse_command_truncated(raw: bytes) -> None:
    """A truncated valid command is refused as not valid JSON."""
    result = _command_or_protocol_error(raw)
    assert isinstance(result, ProtocolError)
    assert str(result).startswith("control command is not valid JSON (")


@SIDE
@given(s.valid_commands())
def test_parse_command_valid(raw: bytes) -> None:
    """Every command eKuiper could send parses to a Command with its fields."""
    command = _command_or_protocol_error(raw)
    assert isinstance(command, Command)
    outer = json.loads(raw)
    inner = json.loads(outer["arg"]) if isinstance(outer["arg"], str) else outer["arg"]
    assert command.cmd == outer["cmd"]
    assert command.control.symbol_name == inner["symbolName"]
    assert command.control.kind == inner["pluginType"]
    assert command.control.config == (inner.get("config") or {})
    assert command.control.datasource == (
        inner.get("dataSource") or (inner.get("config") or {}).get("datasource") or "")


@HUGE
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@given(field=st.sampled_from(["config", "dataSource", "meta", "arg"]),
       text=s.huge_text(100_000, 1_000_000))
def test_parse_command_huge_strings(field: str, text: str) -> None:
    """Strings of 0.1-1 MB parse intact where valid and give a short error where not."""
    control: dict[str, Any] = {"symbolName": "x", "pluginType": "sink"}
    if field == "config":
        control["config"] = {"blob": text}
    elif field == "dataSource":
        control["dataSource"] = text
    elif field == "meta":
        control["meta"] = {"ruleId": text, "opId": 5}
    arg = text if field == "arg" else json.dumps(control)
    result = _command_or_protocol_error(json.dumps({"cmd": "start", "arg": arg}).encode())
    if field == "config":
        assert isinstance(result, Command) and result.control.config == {"blob": text}
    elif field == "dataSource":
        assert isinstance(result, Command) and result.control.datasource == text
    else:
        assert isinstance(result, ProtocolError)
        assert len(str(result)) < 4000


HUGE_NAME = "x" * 10_000_000


UNBOUNDED_FIELDS = [
    pytest.param(lambda: _protocol.parse_command(s.encode_command(HUGE_NAME, {})),
                 id="cmd"),
    pytest.param(lambda: _protocol.parse_command(s.encode_command(
        "start", {"symbolName": "x", "pluginType": HUGE_NAME})),
                 id="pluginType"),
    pytest.param(lambda: _protocol.parse_func_request(json.dumps({"func": HUGE_NAME}).encode()),
                 id="func"),
]


@pytest.mark.parametrize("parse", UNBOUNDED_FIELDS)
def test_error_for_a_10mb_unknown_name_is_short(parse: Any) -> None:
    """A 10 MB unknown cmd, pluginType or func name gets a short error, as other fields do."""
    CASES["pure"] += 1
    with pytest.raises(ProtocolError) as info:
        parse()
    assert len(str(info.value)) < 4000


# -- parse_func_request ---------------------------------------------------------------

@MAIN
@given(st.binary(max_size=300))
def test_parse_func_request_arbitrary_bytes(raw: bytes) -> None:
    """Arbitrary bytes give a FuncRequest or a ProtocolError, nothing else."""
    _request_or_protocol_error(raw)


@SIDE
@given(s.json_values)
def test_parse_func_request_arbitrary_json(value: Any) -> None:
    """Any JSON value gives a FuncRequest or a ProtocolError, nothing else."""
    _request_or_protocol_error(json.dumps(value).encode())


@STRUCTURED
@given(s.wrong_func_requests())
def test_parse_func_request_structured_but_wrong(raw: bytes) -> None:
    """FuncData with a missing or mistyped field is refused with a ProtocolError."""
    assert isinstance(_request_or_protocol_error(raw), ProtocolError)


@SIDE
@given(s.truncated(s.valid_func_requests()))
def test_parse_func_request_truncated(raw: bytes) -> None:
    """A truncated valid request is refused as not valid JSON."""
    result = _request_or_protocol_error(raw)
    assert isinstance(result, ProtocolError)
    assert str(result).startswith("function request is not valid JSON (")


@SIDE
@given(s.valid_func_requests())
def test_parse_func_request_valid(raw: bytes) -> None:
    """Every request eKuiper could send parses; Exec args lose the context string."""
    request = _request_or_protocol_error(raw)
    assert isinstance(request, FuncRequest)
    sent = json.loads(raw)
    assert request.func == sent["func"]
    if request.func == "Exec":
        assert request.args == sent["arg"][:-1]
        context = json.loads(sent["arg"][-1])
        assert request.caller is not None
        assert request.caller.func_id == context.get("funcId", 0)
        assert request.caller.key == sent["arg"][-1]


@HUGE
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@given(text=s.huge_text(100_000, 1_000_000))
def test_parse_func_request_huge_argument(text: str) -> None:
    """An Exec argument of 0.1-1 MB is parsed intact."""
    raw = json.dumps({"func": "Exec", "arg": [text, '{"ruleId":"r"}']}).encode()
    request = _request_or_protocol_error(raw)
    assert isinstance(request, FuncRequest) and request.args == [text]


# -- replies --------------------------------------------------------------------------

@STRUCTURED
@given(st.text() | s.huge_text(1, 5000).map(lambda t: " \n" + t))
def test_control_error_reply_never_starts_with_h_nor_is_empty(text: str) -> None:
    """An error reply is never empty and never starts with h/H (a handshake to eKuiper)."""
    CASES["pure"] += 1
    reply = _protocol.control_error_reply(text)
    assert reply
    assert reply[:1] not in (b"h", b"H")
    stripped = text.strip()
    if stripped and stripped[0] not in "hH":
        assert reply == stripped.encode("utf-8", "replace")


class _Odd:
    """An object JSON cannot carry."""


odd_values = st.one_of(
    st.floats(),  # NaN and +-Infinity included
    st.binary(max_size=20),
    st.builds(bytearray, st.binary(max_size=20)),
    st.builds(memoryview, st.binary(max_size=20)),
    st.sets(st.integers(), max_size=3),
    st.tuples(st.integers(), st.text(max_size=3)),
    st.builds(_Odd),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1,
            max_size=3),
    st.integers(min_value=10**4300, max_value=10**4400),
    st.dictionaries(st.tuples(st.integers()), st.integers(), min_size=1, max_size=2),
)
func_results = st.recursive(
    s.json_scalars | odd_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                   max_size=3),
    max_leaves=8,
)


@STRUCTURED
@given(state=st.booleans(), result=func_results)
def test_encode_func_reply_is_always_json_with_bool_state(state: bool, result: Any) -> None:
    """Whatever a function returns, the reply is strict JSON with a bool state."""
    CASES["pure"] += 1
    reply = _strict_json(_protocol.encode_func_reply(state, result))
    assert set(reply) == {"state", "result"}
    assert isinstance(reply["state"], bool)
    if reply["state"] is not state:
        assert state is True
        assert reply["result"].startswith("function result cannot be sent to eKuiper: ")


@SIDE
@given(st.sampled_from([math.nan, math.inf, -math.inf]))
def test_encode_func_reply_refuses_nan_by_name(value: float) -> None:
    """A NaN/Infinity result becomes state false naming NaN and Infinity."""
    CASES["pure"] += 1
    assert _strict_json(_protocol.encode_func_reply(True, {"v": [value]})) == {
        "state": False,
        "result": "function result cannot be sent to eKuiper: NaN and Infinity cannot be "
                  "sent to eKuiper (JSON has no such numbers); replace them with None or a "
                  "finite value",
    }


def test_encode_func_reply_of_5000_levels_is_an_error_reply() -> None:
    """A result nested 5000 levels deep becomes a state-false reply, not an exception."""
    CASES["pure"] += 1
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    reply = _strict_json(_protocol.encode_func_reply(True, deep))
    assert reply["state"] is False
    assert reply["result"].startswith("function result cannot be sent to eKuiper: ")
