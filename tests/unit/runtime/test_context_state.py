"""SymbolContext's get/put/delete_state: scopes per kind, the process's store, no cost
for plugins that never use state."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from ekuiper import Context, Function, PluginConfig
from ekuiper._protocol import Meta
from ekuiper._runtime.context import SymbolContext
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper._state import STATE_DIR_ENV, DictStore, Scope, close_default
from ekuiper.testing import MemoryTransport
from tests.conftest import loaded_after


def _ctx(kind: str = "source", rule: str = "r1", op: str = "op", instance: int = 0,
         symbol: str = "tally") -> SymbolContext:
    return SymbolContext(kind, symbol, Meta(rule, op, instance), logging.getLogger("t"))


class Recording(DictStore):
    """A DictStore that remembers the scope of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.scopes: list[Scope] = []

    def _put_text(self, scope: Scope, key: str, text: str) -> None:
        self.scopes.append(scope)
        super()._put_text(scope, key, text)


def test_a_source_context_keeps_state_per_rule_op_and_instance() -> None:
    """A source's scope is its kind, symbol, rule, operator and instance."""
    ctx, store = _ctx(instance=2), Recording()
    ctx.state_store = store
    ctx.put_state("n", 1)
    assert store.scopes == [Scope("source", "tally", "r1", "op", 2)]
    assert ctx.get_state("n") == 1
    assert ctx.delete_state("n") is True
    assert ctx.get_state("n", "gone") == "gone"


def test_a_function_context_keeps_state_per_rule() -> None:
    """Two calling expressions of a function in one rule share one scope."""
    store = Recording()
    for op in ("op1", "op2"):
        ctx = _ctx("function", op=op, symbol="calls")
        ctx.state_store = store
        ctx.put_state("n", op)
    assert store.scopes == [Scope("function", "calls", "r1", "", 0)] * 2
    assert store.values == {"n": "op2"}


def test_without_a_store_the_process_store_is_used(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A context with no store given writes to the plugin's SQLite file."""
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    close_default()
    try:
        _ctx().put_state("n", 7)
        assert _ctx().get_state("n") == 7
        assert _ctx(rule="r2").get_state("n") is None
        assert list(tmp_path.glob("*/state.sqlite3"))
    finally:
        close_default()


def test_a_bad_key_fails_the_call_clearly() -> None:
    """ctx.put_state(None, ...) is a TypeError saying keys are str."""
    ctx = _ctx()
    ctx.state_store = DictStore()
    with pytest.raises(TypeError, match="state keys are str"):
        ctx.put_state(None, 1)  # type: ignore[arg-type]


class Counting(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        n = ctx.get_state("n", 0) + 1
        ctx.put_state("n", n)
        return n


def test_function_runtime_contexts_share_the_runtimes_store() -> None:
    """Contexts the function runtime makes per call keep state in its store, per rule."""
    rt = PluginRuntime(PluginConfig("p", {}, {}, {"counting": Counting}), MemoryTransport())
    start = {"symbolName": "counting", "pluginType": "func",
             "meta": {"ruleId": "", "opId": "", "instanceId": 0}}
    assert rt.handle(json.dumps({"cmd": "start", "arg": json.dumps(start)}).encode()) == b"ok"
    store = Recording()
    rt.functions["counting"].state_store = store

    def call(rule: str, func_id: int) -> Any:
        meta = json.dumps({"ruleId": rule, "opId": "op", "instanceId": 0, "funcId": func_id})
        raw = json.dumps({"func": "Exec", "arg": [meta]}).encode()
        return json.loads(rt.functions["counting"].handle(raw))["result"]

    try:
        assert [call("r1", 0), call("r1", 1), call("r1", 0)] == [1, 2, 3]
        assert {s.rule for s in store.scopes} == {"r1"}
    finally:
        rt.shutdown()


def test_the_context_abc_state_methods_are_optional() -> None:
    """A Context written without state still instantiates; its state calls say so."""
    class Bare(Context):
        def get_rule_id(self) -> str: return "r"
        def get_op_id(self) -> str: return "o"
        def get_instance_id(self) -> int: return 0
        def get_logger(self) -> logging.Logger: return logging.getLogger()
        def emit(self, message: Any, meta: Any = None) -> None: pass
        def emit_error(self, error: str) -> None: pass
        def ack_ok(self) -> None: pass
        def ack_error(self, error: str) -> None: pass

    with pytest.raises(NotImplementedError, match="Bare keeps no state"):
        Bare().get_state("n")


def test_a_plugin_that_never_uses_state_loads_neither_store_nor_sqlite3() -> None:
    """Importing the SDK and running a source's emit path leaves ekuiper._state and
    sqlite3 unloaded."""
    check = """
import logging
from ekuiper import plugin, PluginConfig
from ekuiper._protocol import Meta
from ekuiper._runtime.context import SymbolContext
from ekuiper._runtime import function, sink, source, lifecycle

class Channel:
    sent = []
    def send(self, data): self.sent.append(data)

ctx = SymbolContext("source", "s", Meta("r", "o", 0), logging.getLogger())
ctx.attach_emitter(Channel())
ctx.emit({"a": 1})
assert Channel.sent
"""
    assert loaded_after(check, ("sqlite3", "_sqlite3", "ekuiper._state")) == []
