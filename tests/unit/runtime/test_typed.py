"""The runtimes with typed symbols: config_type on sources/sinks, a typed call on functions."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from ekuiper import Context, Function, PluginConfig, Sink, Source
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper.errors import ArgumentError, ConfigError, SymbolError
from ekuiper.testing import MemoryTransport, call_function, run_sink, run_source, validate
from tests.conftest import loaded_after


@dataclass
class TicksConfig:
    interval: float = 1.0
    label: str = "t"


class Ticks(Source):
    config_type = TicksConfig

    def configure(self, datasource: str, conf: TicksConfig) -> None:
        self.conf = conf

    def open(self, ctx: Context) -> None:
        ctx.emit({"interval": self.conf.interval, "type": type(self.conf).__name__})


class Strict(Ticks):
    config_unknown = "error"


class Untyped(Source):
    def configure(self, datasource: str, conf: dict[str, Any]) -> None:
        self.conf = conf

    def open(self, ctx: Context) -> None:
        ctx.emit({"conf": self.conf})


@dataclass
class OutConfig:
    limit: int


class Out(Sink):
    config_type = OutConfig
    seen: ClassVar[list[Any]] = []

    def configure(self, conf: OutConfig) -> None:
        Out.seen.append(conf)

    def collect(self, ctx: Context, data: Any) -> None:
        pass


class Shout(Function):
    def call(self, text: str, times: int = 1) -> str:
        return text.upper() * times


class Both(Function):
    """Defines exec and call: exec wins, as for any official-SDK function."""

    def exec(self, args: list[Any], ctx: Context) -> Any:
        return "exec"

    def call(self, x: int) -> str:
        return "call"


class OwnValidate(Shout):
    def validate(self, args: list[Any]) -> str:
        return "mine"


def test_source_gets_the_converted_instance() -> None:
    """configure receives a TicksConfig built from the conf, a quoted number as a float."""
    rows = run_source(Ticks(), "d", {"interval": "0.5", "format": "json"}).rows
    assert rows == [{"interval": 0.5, "type": "TicksConfig"}]


def test_source_bad_value_fails_start_with_the_field() -> None:
    """A bad value fails the start with a ConfigError naming symbol, field, value, type."""
    with pytest.raises(ConfigError, match=r"^source 'ticks' config: interval: expected a "
                                          r"number \(float\), got 'fast' \(str\)$"):
        run_source(Ticks(), "d", {"interval": "fast"})


def test_unknown_key_is_warned_once_per_start(caplog: pytest.LogCaptureFixture) -> None:
    """An undeclared key (not eKuiper's) is logged once, naming the nearest field."""
    with caplog.at_level(logging.WARNING):
        run_source(Ticks(), "d", {"intervall": 1, "sendSingle": True})
    warnings = [r.getMessage() for r in caplog.records if "undeclared" in r.getMessage()]
    assert warnings == ["ignoring undeclared property 'intervall' (did you mean 'interval'?) "
                        "(TicksConfig declares interval, label)"]


def test_config_unknown_error_refuses_undeclared_keys() -> None:
    """config_unknown = "error" makes an undeclared key fail the start."""
    with pytest.raises(ConfigError, match="unknown property 'intervall'"):
        run_source(Strict(), "d", {"intervall": 1})


def test_untyped_source_gets_the_dict_as_before() -> None:
    """Without config_type, configure gets the conf dict exactly as eKuiper sent it."""
    conf = {"interval": "0.5", "format": "json", "x": [1]}
    assert run_source(Untyped(), "d", conf).rows == [{"conf": conf}]


class OwnParser(Source):
    """Written for the official SDK: keeps its own class in config_type and parses the dict."""

    config_type = TicksConfig

    def configure(self, datasource: str, conf: dict) -> None:  # type: ignore[type-arg]
        self.conf = self.config_type(**{k: v for k, v in conf.items() if k != "format"})

    def open(self, ctx: Context) -> None:
        ctx.emit({"interval": self.conf.interval, "type": type(self.conf).__name__})


class FormatName(Untyped):
    config_type = "json"  # type: ignore[assignment]


class PlainClass(Untyped):
    config_type = dict  # type: ignore[assignment]


def test_conf_annotated_as_dict_gets_the_dict() -> None:
    """A configure annotating conf as dict gets the dict even with a dataclass config_type."""
    rows = run_source(OwnParser(), "d", {"interval": 2, "format": "json"}).rows
    assert rows == [{"interval": 2, "type": "TicksConfig"}]


def test_non_class_config_type_gets_the_dict(caplog: pytest.LogCaptureFixture) -> None:
    """A config_type that is not a class (a string) is the plugin's own: the dict, a warning."""
    with caplog.at_level(logging.WARNING):
        rows = run_source(FormatName(), "d", {"a": 1}).rows
    assert rows == [{"conf": {"a": 1}}]
    assert any("not a dataclass or TypedDict" in r.getMessage() for r in caplog.records)


def test_non_record_class_config_type_gets_the_dict() -> None:
    """A config_type class that is neither a dataclass nor a TypedDict: the dict as before."""
    assert run_source(PlainClass(), "d", {"a": 1}).rows == [{"conf": {"a": 1}}]


def test_sink_gets_converted_instance_and_bad_value_fails() -> None:
    """A sink's action properties convert (eKuiper's own dropped); a bad one fails start."""
    Out.seen.clear()
    run_sink(Out(), [{"a": 1}], {"limit": 3.0, "format": "json"})
    assert Out.seen == [OutConfig(3)]
    with pytest.raises(ConfigError, match=r"^sink 'out' config: missing required property: "
                                          r"limit \(int\)$"):
        run_sink(Out(), [{"a": 1}])


def test_typed_function_exec_and_validate() -> None:
    """call_function binds call's arguments; validate checks count and literal types."""
    assert call_function(Shout(), "ab", 2) == "ABAB"
    with pytest.raises(ArgumentError, match=r"shout\(\) takes 1 to 2 arguments, got 0"):
        call_function(Shout())
    assert validate(Shout(), [{"Val": "x"}]) is None
    assert validate(Shout(), [{"Val": 1}]) == (
        "argument 1 (text) of shout(): expected a string (str), got 1 (int): "
        "shout(text: str, times: int = 1)")


def test_direct_exec_binds_the_call_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calling a typed function's exec directly builds its binder once per instance."""
    from ekuiper import _typed

    built = []
    real = _typed.bind_call

    def counting(obj: Any, spec: Any) -> Any:
        built.append(obj)
        return real(obj, spec)

    monkeypatch.setattr(_typed, "bind_call", counting)
    shout = Shout()
    assert [shout.exec(["ab", 2], None) for _ in range(3)] == ["ABAB"] * 3
    assert len(built) == 1


def test_exec_wins_over_call() -> None:
    """A class with both exec and call is an untyped function: exec runs, validate accepts."""
    assert call_function(Both(), 1, 2, 3) == "exec"
    assert validate(Both(), []) is None


def test_own_validate_is_kept() -> None:
    """A typed function that overrides validate keeps its own answer."""
    assert validate(OwnValidate(), []) == "mine"


def test_function_with_neither_exec_nor_call_cannot_be_made() -> None:
    """Without exec or call the class stays abstract, as before."""
    class Empty(Function):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Empty()  # type: ignore[abstract]


def test_unusable_signature_fails_the_function_start() -> None:
    """A call eKuiper cannot pass arguments to is refused when the function starts."""
    class Bad(Function):
        def call(self, x: int, *, scale: int) -> int:
            return x * scale

    rt = PluginRuntime(PluginConfig("p", {}, {}, {"bad": Bad}), MemoryTransport())
    ctrl = {"symbolName": "bad", "pluginType": "func",
            "meta": {"ruleId": "", "opId": "", "instanceId": 0}}
    reply = rt.handle(json.dumps({"cmd": "start", "arg": json.dumps(ctrl)}).encode())
    rt.shutdown()
    assert b"parameter 'scale' cannot be passed from SQL" in reply
    assert issubclass(ConfigError, SymbolError)


def test_async_typed_call_fails_the_function_start() -> None:
    """An async def call is refused at start with what to write instead."""
    class Later(Function):
        async def call(self, x: int) -> int:
            return x

    rt = PluginRuntime(PluginConfig("p", {}, {}, {"later": Later}), MemoryTransport())
    ctrl = {"symbolName": "later", "pluginType": "func",
            "meta": {"ruleId": "", "opId": "", "instanceId": 0}}
    reply = rt.handle(json.dumps({"cmd": "start", "arg": json.dumps(ctrl)}).encode())
    rt.shutdown()
    assert b"is async def, which a typed call cannot be" in reply


def test_untyped_plugin_loads_no_typed_machinery() -> None:
    """An untyped plugin's runtime path never imports ekuiper._typed, dataclasses or inspect."""
    code = """
from typing import Any, ClassVar
from ekuiper import Context, Function, Source
from ekuiper._runtime import function, lifecycle, sink, source
class F(Function):
    def exec(self, args: list, ctx: Any) -> Any:
        return args
class S(Source):
    def open(self, ctx: Any) -> None:
        pass
F().validate([])
"""
    watched = ("ekuiper._typed", "ekuiper._runtime.typed", "ekuiper._runtime.configdecl",
               "dataclasses", "inspect")
    assert loaded_after(code, watched) == []
