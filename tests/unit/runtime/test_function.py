"""FunctionRuntime and its per-rule contexts, driven through the in-memory transport."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import pytest

from ekuiper import Context, ErrorPolicy, Function, PluginConfig, _protocol
from ekuiper._protocol import Control, Meta
from ekuiper._runtime import function as function_runtime
from ekuiper._runtime.function import FunctionRuntime
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper.testing import MemoryTransport


class Echo(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        return [ctx.get_rule_id(), *args]


def _start(cmd: str, ctrl: dict[str, Any]) -> bytes:
    return json.dumps({"cmd": cmd, "arg": json.dumps(ctrl)}).encode()


def _exec(runtime: PluginRuntime, rule: str, *args: Any) -> Any:
    meta = json.dumps({"ruleId": rule, "opId": "op", "instanceId": 0, "funcId": 0})
    raw = json.dumps({"func": "Exec", "arg": [*args, meta]}).encode()
    return json.loads(runtime.functions["echo"].handle(raw))


@pytest.fixture
def runtime() -> PluginRuntime:
    rt = PluginRuntime(PluginConfig("p", {}, {}, {"echo": Echo}), MemoryTransport())
    ctrl = {"symbolName": "echo", "pluginType": "func",
            "meta": {"ruleId": "", "opId": "", "instanceId": 0}}
    assert rt.handle(_start("start", ctrl)) == b"ok"
    yield rt
    rt.shutdown()


def test_exec_passes_context_of_calling_rule(runtime: PluginRuntime) -> None:
    """The context handed to exec names the rule the call came from."""
    assert _exec(runtime, "r1", "x") == {"state": True, "result": ["r1", "x"]}


def test_contexts_of_stopped_rule_are_dropped(runtime: PluginRuntime) -> None:
    """A stop command for a rule drops that rule's function contexts, not others'."""
    _exec(runtime, "gone", 1)
    _exec(runtime, "stays", 1)
    stop = {"symbolName": "whatever", "pluginType": "source",
            "meta": {"ruleId": "gone", "opId": "op", "instanceId": 0}}
    assert runtime.handle(_start("stop", stop)) == b"ok"
    assert {ctx.get_rule_id() for ctx in runtime.functions["echo"].contexts.values()} == {"stays"}


def test_context_count_is_capped(runtime: PluginRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Contexts of rules that never send a stop are bounded, oldest dropped first."""
    monkeypatch.setattr(function_runtime, "MAX_CONTEXTS", 3)
    for n in range(5):
        _exec(runtime, f"r{n}", n)
    assert [ctx.get_rule_id() for ctx in runtime.functions["echo"].contexts.values()] == [
        "r2", "r3", "r4"]


def test_a_context_string_over_the_cap_gets_a_context_that_is_not_kept(
        runtime: PluginRuntime) -> None:
    """A call whose context string is over the cap is answered, its context not kept."""
    rule = "r" * _protocol.MAX_KEPT_CONTEXT_CHARS
    assert _exec(runtime, rule, "x") == {"state": True, "result": [rule, "x"]}
    assert runtime.functions["echo"].contexts == {}


def test_function_answers_handshake_first(runtime: PluginRuntime) -> None:
    """The function loop's first send on its channel is the handshake."""
    channel = runtime.transport.channels["function:echo"]  # type: ignore[attr-defined]
    deadline = time.monotonic() + 2
    while not channel.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert channel.sent[0] == b"handshake"


def test_idle_timeout_resends_handshake(runtime: PluginRuntime) -> None:
    """When the receive times out, the handshake is sent again (keepalive)."""
    channel = runtime.transport.channels["function:echo"]  # type: ignore[attr-defined]
    channel.inbox.put(None)  # one receive timeout
    deadline = time.monotonic() + 2
    while len(channel.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert channel.sent[:2] == [b"handshake", b"handshake"]


def get_average(a: float, b: float) -> float:
    return (a + b) / 2


class Average(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        return get_average(*args)


class hangup(Exception):  # a type name starting with h, on purpose
    pass


class HangsUp(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        raise hangup("line dropped")


def _failing_reply(function: type[Function], *args: Any) -> bytes:
    rt = PluginRuntime(PluginConfig("p", {}, {}, {"f": function}), MemoryTransport())
    ctrl = {"symbolName": "f", "pluginType": "func",
            "meta": {"ruleId": "", "opId": "", "instanceId": 0}}
    assert rt.handle(_start("start", ctrl)) == b"ok"
    try:
        meta = json.dumps({"ruleId": "r1", "opId": "op", "instanceId": 0, "funcId": 0})
        return rt.functions["f"].handle(json.dumps({"func": "Exec", "arg": [*args, meta]}).encode())
    finally:
        rt.shutdown()


def test_exec_error_names_the_exception_type() -> None:
    """A failing exec reaches eKuiper as '<Type>: <message>', as a traceback ends."""
    assert json.loads(_failing_reply(Average, 1)) == {
        "state": False,
        "result": "TypeError: get_average() missing 1 required positional argument: 'b'",
    }


def test_exec_error_starting_with_h_is_a_json_reply() -> None:
    """An error text starting with 'h' travels inside the JSON reply, never as bare text."""
    assert _failing_reply(HangsUp) == b'{"state":false,"result":"hangup: line dropped"}'


# -- on_error: per-row error policy ---------------------------------------------------


class Divides(Function):
    on_error = ErrorPolicy.null()

    def exec(self, args: list[Any], ctx: Context) -> Any:
        if args[0] == "object":
            return object()
        return 10 / args[0]

    def validate(self, args: list[Any]) -> str:
        raise RuntimeError("validate broke")


def _policy_runtime(function: Function) -> FunctionRuntime:
    control = Control("divides", "func", Meta("", "", 0))
    return FunctionRuntime(control, function, "p", MemoryTransport(),
                           logging.getLogger("test.policy"))


def _call(runtime: FunctionRuntime, func: str, arg: Any) -> Any:
    return json.loads(runtime.handle(json.dumps({"func": func, "arg": arg}).encode()))


EXEC_META = json.dumps({"ruleId": "r", "opId": "op", "instanceId": 0, "funcId": 0})


def test_null_policy_turns_an_exec_exception_into_null() -> None:
    """With on_error = null(), a raising row answers state true, result null, and counts."""
    runtime = _policy_runtime(Divides())
    assert _call(runtime, "Exec", [0, EXEC_META]) == {"state": True, "result": None}
    assert _call(runtime, "Exec", [5, EXEC_META]) == {"state": True, "result": 2.0}
    assert runtime.errors_replaced == 1


def test_default_policy_replaces_a_result_json_cannot_carry() -> None:
    """A result JSON cannot carry is replaced by the declared default too."""

    class WithDefault(Divides):
        on_error = ErrorPolicy.default(-1)

    runtime = _policy_runtime(WithDefault())
    assert _call(runtime, "Exec", ["object", EXEC_META]) == {"state": True, "result": -1}
    assert runtime.errors_replaced == 1


def test_policy_leaves_validate_failures_alone() -> None:
    """on_error is per row: a failing validate still rejects the rule."""
    runtime = _policy_runtime(Divides())
    assert _call(runtime, "Validate", []) == {"state": False,
                                             "result": "RuntimeError: validate broke"}
    assert runtime.errors_replaced == 0


def test_replaced_rows_log_one_traceback_per_site(caplog: pytest.LogCaptureFixture) -> None:
    """The first replaced failure from a place logs its traceback, later ones one line."""
    runtime = _policy_runtime(Divides())
    with caplog.at_level(logging.WARNING, "test.policy"):
        for _ in range(3):
            _call(runtime, "Exec", [0, EXEC_META])
    records = [r for r in caplog.records if r.name == "test.policy"]
    assert [r.levelno for r in records] == [logging.WARNING] * 3
    assert [r.exc_info is not None for r in records] == [True, False, False]
    assert records[1].getMessage() == ("exec() raised ZeroDivisionError: division by zero; "
                                       "the row's result is null (on_error)")


@pytest.mark.parametrize(("on_error", "expected"), [
    (ErrorPolicy.retry(1), "not for a function"),
    (ErrorPolicy.default(object()), "on_error default <object object at .* cannot be sent"),
])
def test_bad_policy_fails_the_function_start(on_error: Any, expected: str) -> None:
    """A function's unusable on_error is the start reply eKuiper shows for the rule."""
    bad = type("Bad", (Divides,), {"on_error": on_error})
    rt = PluginRuntime(PluginConfig("p", {}, {}, {"divides": bad}), MemoryTransport())
    ctrl = {"symbolName": "divides", "pluginType": "func",
            "meta": {"ruleId": "", "opId": "", "instanceId": 0}}
    reply = rt.handle(_start("start", ctrl)).decode()
    rt.shutdown()
    assert re.search(expected, reply), reply
