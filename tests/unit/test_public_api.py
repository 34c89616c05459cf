"""Unit tests for the public import surface of the ekuiper package."""

from __future__ import annotations

import inspect
import re
from abc import ABC
from typing import Any

import pytest

import ekuiper
import ekuiper.runtime.context
import ekuiper.runtime.plugin
from ekuiper import Context, Function, PluginConfig, Sink, Source, plugin

ABSTRACT = r"abstract method '?{}'?"


def test_official_sdk_imports_work() -> None:
    """The official SDK's top-level imports resolve to this SDK's objects."""
    assert plugin is ekuiper.runtime.plugin
    assert (Source.__module__, Sink.__module__, Function.__module__, Context.__module__) == (
        "ekuiper.source", "ekuiper.sink", "ekuiper.function", "ekuiper.context"
    )
    assert PluginConfig.__name__ == "PluginConfig"


def test_all_is_sorted() -> None:
    """ekuiper.__all__ is in sorted order."""
    assert ekuiper.__all__ == sorted(ekuiper.__all__)


def test_all_names_exist() -> None:
    """Every name in ekuiper.__all__ is an attribute of the package."""
    assert [name for name in ekuiper.__all__ if not hasattr(ekuiper, name)] == []


def test_all_exports_the_official_names() -> None:
    """__all__ includes the names plugins import from the official SDK."""
    assert {"plugin", "PluginConfig", "Source", "Sink", "Function", "Context"} <= \
        set(ekuiper.__all__)


def test_public_surface_is_these_names() -> None:
    """ekuiper exports the official SDK's names, the exception roots, to_bytes and
    ErrorPolicy."""
    assert ekuiper.__all__ == ["ChannelClosedError", "Context", "EkuiperError", "ErrorPolicy",
                               "Function", "PluginConfig", "Sink", "Source", "__version__",
                               "plugin", "to_bytes"]


def test_to_bytes_is_public() -> None:
    """ekuiper.to_bytes, the helper for binary payloads, is exported and takes one value."""
    assert "to_bytes" in ekuiper.__all__
    assert list(inspect.signature(ekuiper.to_bytes).parameters) == ["value"]
    assert ekuiper.to_bytes("AAE=") == b"\x00\x01"


def test_plugin_start_exists() -> None:
    """plugin.start is a function taking one PluginConfig argument."""
    assert inspect.isfunction(plugin.start)
    assert list(inspect.signature(plugin.start).parameters) == ["c"]


def test_runtime_plugin_config_is_the_same_class() -> None:
    """ekuiper.runtime.plugin.PluginConfig is ekuiper.PluginConfig."""
    assert ekuiper.runtime.plugin.PluginConfig is ekuiper.PluginConfig


def test_runtime_context_is_the_same_class() -> None:
    """ekuiper.runtime.context.Context is ekuiper.Context."""
    assert ekuiper.runtime.context.Context is ekuiper.Context


@pytest.mark.parametrize("cls", [Source, Sink, Function, Context])
def test_base_classes_are_abcs(cls: type) -> None:
    """Source, Sink, Function and Context are abstract base classes."""
    assert issubclass(cls, ABC)
    assert inspect.isabstract(cls)


def test_context_cannot_be_instantiated() -> None:
    """Context itself cannot be instantiated."""
    with pytest.raises(TypeError, match=ABSTRACT.format("ack_error|ack_ok|emit")):
        Context()  # type: ignore[abstract]


# -- Source -------------------------------------------------------------------------------


def test_source_without_open_fails_at_instantiation() -> None:
    """A Source subclass that does not define open() raises TypeError when instantiated."""
    class NoOpen(Source):
        def close(self, ctx: Context) -> None:
            return None

    with pytest.raises(TypeError, match=ABSTRACT.format("open")):
        NoOpen()  # type: ignore[abstract]


class OnlyOpen(Source):
    def open(self, ctx: Context) -> None:
        return None


def test_source_with_only_open_instantiates() -> None:
    """A Source subclass defining only open() can be instantiated."""
    assert isinstance(OnlyOpen(), Source)


def test_source_default_configure_and_close_return_none() -> None:
    """Source's default configure() and close() accept their arguments and return None."""
    source = OnlyOpen()
    assert source.configure("topic", {"a": 1}) is None
    assert source.close(None) is None  # type: ignore[arg-type]


# -- Sink ---------------------------------------------------------------------------------


def test_sink_without_collect_fails_at_instantiation() -> None:
    """A Sink subclass that does not define collect() raises TypeError when instantiated."""
    class NoCollect(Sink):
        def open(self, ctx: Context) -> None:
            return None

    with pytest.raises(TypeError, match=ABSTRACT.format("collect")):
        NoCollect()  # type: ignore[abstract]


class OnlyCollect(Sink):
    def collect(self, ctx: Context, data: Any) -> None:
        return None


def test_sink_with_only_collect_instantiates() -> None:
    """A Sink subclass defining only collect() can be instantiated."""
    assert isinstance(OnlyCollect(), Sink)


def test_sink_default_configure_open_close_return_none() -> None:
    """Sink's default configure(), open() and close() return None."""
    sink = OnlyCollect()
    assert sink.configure({"requireAck": True}) is None
    assert sink.open(None) is None  # type: ignore[arg-type]
    assert sink.close(None) is None  # type: ignore[arg-type]


def test_sink_decode_rows_defaults_to_false() -> None:
    """Sinks receive raw bytes unless they set decode_rows."""
    assert OnlyCollect.decode_rows is False


def test_sink_max_in_flight_defaults_to_one() -> None:
    """A sink handles one message at a time unless its class sets max_in_flight."""
    assert OnlyCollect.max_in_flight == 1


def test_context_emit_async_is_a_coroutine_method_not_abstract() -> None:
    """Context.emit_async is an async method with emit's parameters, and not abstract,
    so Context subclasses written for the official SDK still instantiate."""
    assert inspect.iscoroutinefunction(Context.emit_async)
    assert list(inspect.signature(Context.emit_async).parameters) == ["self", "message", "meta"]
    assert "emit_async" not in Context.__abstractmethods__


# -- Function -----------------------------------------------------------------------------


def test_function_without_exec_fails_at_instantiation() -> None:
    """A Function subclass that does not define exec() raises TypeError when instantiated."""
    class NoExec(Function):
        def validate(self, args: list[Any]) -> str:
            return ""

    with pytest.raises(TypeError, match=ABSTRACT.format("exec")):
        NoExec()  # type: ignore[abstract]


class OnlyExec(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        return len(args)


def test_function_with_only_exec_instantiates() -> None:
    """A Function subclass defining only exec() can be instantiated and called."""
    assert OnlyExec().exec([1, 2], None) == 2  # type: ignore[arg-type]


def test_function_default_validate_accepts() -> None:
    """Function's default validate() returns "" (accept)."""
    result = OnlyExec().validate([{"Val": 1}])
    assert result == ""
    assert not result


def test_function_default_is_aggregate_is_false() -> None:
    """Function's default is_aggregate() returns False."""
    assert OnlyExec().is_aggregate() is False


def test_version_is_a_dotted_string() -> None:
    """__version__ is a dotted version string."""
    assert re.fullmatch(r"\d+\.\d+\.\d+", ekuiper.__version__)
