"""Function symbols: Exec/Validate/IsAggregate, errors, contexts, keepalive."""

from __future__ import annotations

import time
from pathlib import Path

from ekuiper.testing import ProtocolHost
from tests.protocol.events import events, wait_for


def test_exec_returns_result(testplug: ProtocolHost) -> None:
    """Exec gets the argument values (without the context string) and returns the result."""
    reply, fn = testplug.start_function("upper")
    assert reply == b"ok"
    assert fn.exec("abc") == {"state": True, "result": "ABC"}


def test_several_functions_in_one_plugin(testplug: ProtocolHost) -> None:
    """Two functions of one plugin serve on their own channels at the same time."""
    _, upper = testplug.start_function("upper")
    _, fails = testplug.start_function("fails")
    assert upper.exec("x")["result"] == "X"
    assert fails.request("IsAggregate", None) == {"state": True, "result": True}


def test_default_validate_accepts(testplug: ProtocolHost) -> None:
    """A function that does not override validate accepts any arguments."""
    _, fn = testplug.start_function("upper")
    assert fn.request("Validate", [{"a": 1}, {"b": 2}]) == {"state": True, "result": ""}


def test_validate_error_text_is_returned(testplug: ProtocolHost) -> None:
    """A validate that returns a text rejects with that text."""
    _, fn = testplug.start_function("fails")
    assert fn.request("Validate", []) == {"state": False, "result": "fails takes one argument"}


def test_default_is_aggregate_is_false(testplug: ProtocolHost) -> None:
    """A function that does not override is_aggregate is not an aggregate."""
    _, fn = testplug.start_function("upper")
    assert fn.request("IsAggregate", None) == {"state": True, "result": False}


def test_exec_exception_becomes_state_false(testplug: ProtocolHost) -> None:
    """An exception from exec becomes {"state": false, "result": "<Type>: <message>"}."""
    _, fn = testplug.start_function("fails")
    assert fn.exec(1) == {"state": False, "result": "ZeroDivisionError: cannot divide by zero"}


def test_non_json_result_becomes_clear_error(testplug: ProtocolHost) -> None:
    """A result JSON cannot carry becomes state false naming the problem."""
    _, fn = testplug.start_function("notjson")
    reply = fn.exec(1)
    assert reply["state"] is False
    assert reply["result"].startswith("function result cannot be sent to eKuiper: ")
    assert "object is not JSON serializable" in reply["result"]


def test_unknown_function_call_is_refused(testplug: ProtocolHost) -> None:
    """A func name other than Exec/Validate/IsAggregate is refused by name."""
    _, fn = testplug.start_function("upper")
    assert fn.request("Explode", []) == {
        "state": False,
        "result": "unknown function call 'Explode': expected Exec, Validate or IsAggregate",
    }


def test_function_serves_after_error(testplug: ProtocolHost) -> None:
    """After a malformed request the function keeps answering."""
    _, fn = testplug.start_function("upper")
    assert fn.request("Exec", [])["state"] is False
    assert fn.exec("ok") == {"state": True, "result": "OK"}


def test_context_is_stable_per_calling_expression(testplug: ProtocolHost, out_dir: Path) -> None:
    """Calls from one expression share a context; another rule gets its own."""
    _, fn = testplug.start_function("upper")
    fn.exec("a", rule="ra")
    fn.exec("b", rule="ra")
    fn.exec("c", rule="rb")
    calls = wait_for(lambda: len(events(out_dir, "exec")) >= 3 and events(out_dir, "exec"))
    assert calls[0]["ctx"] == calls[1]["ctx"] != calls[2]["ctx"]
    assert [c["rule"] for c in calls] == ["ra", "ra", "rb"]


def test_function_stays_reachable_after_idle_keepalive(testplug: ProtocolHost) -> None:
    """After more than one keepalive period idle, Exec is still answered."""
    _, fn = testplug.start_function("upper")
    assert fn.exec("a")["result"] == "A"
    time.sleep(6)
    assert fn.exec("b")["result"] == "B"


def test_repeated_function_start_keeps_one_loop(testplug: ProtocolHost) -> None:
    """A second start of a running function is ok and the function still answers."""
    _, fn = testplug.start_function("upper")
    assert testplug.command("start", {"symbolName": "upper", "pluginType": "func",
                                      "meta": {"ruleId": "", "opId": "", "instanceId": 0}}) == b"ok"
    assert fn.exec("z")["result"] == "Z"


def test_null_policy_answers_null_for_a_raising_row(testplug: ProtocolHost) -> None:
    """A function declaring on_error = ErrorPolicy.null() answers a raising row with null."""
    _, fn = testplug.start_function("nullfails")
    assert fn.exec(3) == {"state": True, "result": None}
    assert fn.exec(4) == {"state": True, "result": 40}
    log = wait_for(lambda: "the row's result is null (on_error)" in testplug.log()
                   and testplug.log(), what="the replaced failure in the plugin log")
    assert "ZeroDivisionError: odd 3" in log
