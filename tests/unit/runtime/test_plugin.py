"""PluginRuntime: a start that overlaps shutdown never leaves a symbol running."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from ekuiper import Context, Function, PluginConfig, Sink, Source
from ekuiper._runtime import plugin as plugin_runtime
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper.testing import MemoryTransport

REFUSED = b"cannot start %s: the plugin is shutting down"


class Gate:
    """Holds a symbol's configure() until the test lets it go, counting close() calls."""

    def __init__(self) -> None:
        self.configuring = threading.Event()
        self.proceed = threading.Event()
        self.proceed.set()
        self.configured = 0
        self.closes = 0

    def configure(self) -> None:
        self.configured += 1
        self.configuring.set()
        assert self.proceed.wait(10), "the test never let configure() return"

    def close(self) -> None:
        self.closes += 1


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _runtime(gate: Gate) -> PluginRuntime:
    class GatedSource(Source):
        def configure(self, datasource: str, conf: dict[str, Any]) -> None:
            gate.configure()

        def open(self, ctx: Context) -> None:
            pass

        def close(self, ctx: Context) -> None:
            gate.close()

    class GatedSink(Sink):
        def configure(self, conf: dict[str, Any]) -> None:
            gate.configure()

        def collect(self, ctx: Context, data: Any) -> None:
            pass

        def close(self, ctx: Context) -> None:
            gate.close()

    return PluginRuntime(PluginConfig("p", {"gated": GatedSource}, {"gated": GatedSink}, {}),
                         MemoryTransport())


def _start_command(kind: str) -> bytes:
    ctrl = {"symbolName": "gated", "pluginType": kind,
            "meta": {"ruleId": "r1", "opId": "op", "instanceId": 0}}
    return json.dumps({"cmd": "start", "arg": json.dumps(ctrl)}).encode()


def _label(kind: str) -> bytes:
    return f"{kind} 'gated' (rule 'r1', op 'op', instance 0)".encode()


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    return thread, result


def _shutdown_before_check(runtime: PluginRuntime, gate: Gate, kind: str) -> list[Any]:
    runtime.shutdown()
    return [runtime.handle(_start_command(kind))]


def _shutdown_after_register(runtime: PluginRuntime, gate: Gate, kind: str) -> list[Any]:
    reply = runtime.handle(_start_command(kind))
    runtime.shutdown()
    return [reply]


def _shutdown_during_start(runtime: PluginRuntime, gate: Gate, kind: str) -> list[Any]:
    # configure() runs after the start's closing check and before its registration.
    gate.proceed.clear()
    starter, reply = _in_thread(lambda: runtime.handle(_start_command(kind)))
    assert gate.configuring.wait(10)
    stopper, _ = _in_thread(runtime.shutdown)
    _wait_for(lambda: runtime._closing, "shutdown to begin")
    gate.proceed.set()
    starter.join(10)
    stopper.join(10)
    assert not starter.is_alive() and not stopper.is_alive()
    return reply


def _shutdown_gives_up_waiting(runtime: PluginRuntime, gate: Gate, kind: str) -> list[Any]:
    # Shutdown stops waiting for the start (COMMAND_WAIT_S is patched short) and finishes
    # before the start registers its symbol.
    gate.proceed.clear()
    starter, reply = _in_thread(lambda: runtime.handle(_start_command(kind)))
    assert gate.configuring.wait(10)
    runtime.shutdown()
    assert gate.closes == 0
    gate.proceed.set()
    starter.join(10)
    assert not starter.is_alive()
    return reply


INTERLEAVINGS = {
    "before_check": _shutdown_before_check,
    "during_start": _shutdown_during_start,
    "after_wait": _shutdown_gives_up_waiting,
    "after_register": _shutdown_after_register,
}


@pytest.mark.parametrize("kind", ["source", "sink"])
@pytest.mark.parametrize("when", list(INTERLEAVINGS))
def test_start_overlapping_shutdown_leaves_nothing_running(
        kind: str, when: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wherever shutdown falls in a start, the symbol's close runs once after it was
    configured, and a start that did not finish before shutdown is refused clearly."""
    monkeypatch.setattr(plugin_runtime, "COMMAND_WAIT_S", 0.05 if when == "after_wait" else 10)
    gate = Gate()
    runtime = _runtime(gate)
    reply = INTERLEAVINGS[when](runtime, gate, kind)
    runtime.shutdown()
    assert reply == [b"ok" if when == "after_register" else REFUSED % _label(kind)]
    assert gate.closes == gate.configured == (0 if when == "before_check" else 1)
    assert not runtime.symbols


class Idle(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        return None


class GatedTransport(MemoryTransport):
    """Holds the function channel's dial until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.dialing = threading.Event()
        self.proceed = threading.Event()

    def function(self, symbol_name: str, keepalive_ms: int) -> Any:
        self.dialing.set()
        assert self.proceed.wait(10), "the test never let the dial return"
        return super().function(symbol_name, keepalive_ms)


def test_shutdown_during_function_start_closes_its_channel() -> None:
    """Shutdown beginning while a function starts still closes the function's channel."""
    transport = GatedTransport()
    runtime = PluginRuntime(PluginConfig("p", {}, {}, {"idle": Idle}), transport)
    ctrl = {"symbolName": "idle", "pluginType": "func",
            "meta": {"ruleId": "", "opId": "", "instanceId": 0}}
    command = json.dumps({"cmd": "start", "arg": json.dumps(ctrl)}).encode()
    starter, reply = _in_thread(lambda: runtime.handle(command))
    assert transport.dialing.wait(10)
    stopper, _ = _in_thread(runtime.shutdown)
    _wait_for(lambda: runtime._closing, "shutdown to begin")
    transport.proceed.set()
    starter.join(10)
    stopper.join(10)
    assert reply == [b"cannot start function 'idle': the plugin is shutting down"]
    channel = transport.channels["function:idle"]
    assert channel.closed
    assert not runtime.functions


class OpenChannels(MemoryTransport):
    """A transport whose function_listening answers from a set of open channels."""

    def __init__(self, open_functions: set[str]) -> None:
        super().__init__()
        self.open_functions = open_functions

    def function_listening(self, symbol_name: str) -> bool:
        return symbol_name in self.open_functions


def _function_start(name: str) -> bytes:
    ctrl = {"symbolName": name, "pluginType": "func",
            "meta": {"ruleId": "", "opId": "", "instanceId": 0}}
    return json.dumps({"cmd": "start", "arg": json.dumps(ctrl)}).encode()


def test_a_function_start_also_serves_functions_whose_channel_is_open() -> None:
    """eKuiper replays one function start after a restart: the others with open channels
    are served too, and those without one are left for their own start."""
    transport = OpenChannels({"fa", "fc"})
    config = PluginConfig("p", {}, {}, {"fa": Idle, "fb": Idle, "fc": Idle})
    runtime = PluginRuntime(config, transport)
    try:
        assert runtime.handle(_function_start("fc")) == b"ok"
        assert sorted(runtime.functions) == ["fa", "fc"]
        assert runtime.handle(_function_start("fb")) == b"ok"
        assert sorted(runtime.functions) == ["fa", "fb", "fc"]
    finally:
        runtime.shutdown()


def test_a_function_that_fails_to_start_along_does_not_fail_the_start() -> None:
    """A sibling whose factory raises is logged; the function eKuiper asked for runs."""
    def broken() -> Function:
        raise RuntimeError("no model file")

    transport = OpenChannels({"fa", "bad"})
    runtime = PluginRuntime(PluginConfig("p", {}, {}, {"fa": Idle, "bad": broken}),
                            transport)
    try:
        assert runtime.handle(_function_start("fa")) == b"ok"
        assert sorted(runtime.functions) == ["fa"]
    finally:
        runtime.shutdown()
