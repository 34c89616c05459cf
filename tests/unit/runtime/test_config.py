"""Unit tests for ekuiper._runtime.config: PluginConfig validation and lookups."""

from __future__ import annotations

from typing import Any

import pytest

from ekuiper import Context, Function, Sink, Source
from ekuiper._runtime.config import PluginConfig
from ekuiper.errors import EkuiperError, PluginConfigError


class PyJson(Source):
    def open(self, ctx: Context) -> None:
        return None


class Print(Sink):
    def collect(self, ctx: Context, data: Any) -> None:
        return None


class Revert(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        return args[0][::-1]


def make_config() -> PluginConfig:
    return PluginConfig("pysam", {"pyjson": PyJson, "pyfile": PyJson}, {"print": Print},
                        {"revert": Revert})


# -- validation ---------------------------------------------------------------------------


NAME_MESSAGE = ("PluginConfig needs the plugin's name as first argument, "
                "the same as its descriptor <name>.json")


@pytest.mark.parametrize("name", ["", "   ", None, 42])
def test_bad_plugin_name_raises(name: object) -> None:
    """An empty, blank or non-string plugin name raises PluginConfigError."""
    with pytest.raises(PluginConfigError) as info:
        PluginConfig(name)  # type: ignore[arg-type]
    assert str(info.value) == NAME_MESSAGE


def test_plugin_config_error_is_an_ekuiper_error() -> None:
    """PluginConfigError can be caught as EkuiperError."""
    with pytest.raises(EkuiperError):
        PluginConfig("")


@pytest.mark.parametrize(("field", "kwargs"), [
    ("sources", {"sources": [PyJson]}),
    ("sinks", {"sinks": [Print]}),
    ("functions", {"functions": [Revert]}),
])
def test_factories_not_a_mapping_raises(field: str, kwargs: dict[str, Any]) -> None:
    """A sources/sinks/functions argument that is not a dict raises, naming field and type."""
    with pytest.raises(PluginConfigError) as info:
        PluginConfig("pysam", **kwargs)
    assert str(info.value) == \
        f"PluginConfig('pysam') {field} must be a dict of name -> factory, got list"


@pytest.mark.parametrize("key", ["", 3])
def test_bad_symbol_name_raises(key: object) -> None:
    """A symbol name that is empty or not a string raises PluginConfigError."""
    with pytest.raises(PluginConfigError) as info:
        PluginConfig("pysam", sinks={key: Print})  # type: ignore[dict-item]
    assert str(info.value) == (
        f"PluginConfig('pysam') sinks has a key {key!r}; symbol names must be non-empty strings"
    )


def test_non_callable_factory_raises() -> None:
    """A factory that is not callable (e.g. an instance) raises with a fix suggestion."""
    with pytest.raises(PluginConfigError) as info:
        PluginConfig("pysam", functions={"revert": "Revert"})  # type: ignore[dict-item]
    assert str(info.value) == (
        "PluginConfig('pysam') functions['revert'] is not callable; register a factory such "
        "as `lambda: MySymbol()` or the class itself"
    )


def test_omitted_factories_are_empty_dicts() -> None:
    """Omitted or None sources/sinks/functions become empty dicts."""
    config = PluginConfig("pysam", None)
    assert (config.sources, config.sinks, config.functions) == ({}, {}, {})


def test_factories_are_copied() -> None:
    """Changing the dict passed in does not change the PluginConfig."""
    sources = {"pyjson": PyJson}
    config = PluginConfig("pysam", sources)
    sources["other"] = PyJson
    assert config.sources == {"pyjson": PyJson}


def test_lambda_factory_is_accepted() -> None:
    """A zero-argument lambda is a valid factory."""
    def factory() -> Source:
        return PyJson()
    config = PluginConfig("pysam", {"pyjson": factory})
    assert config.sources["pyjson"] is factory


def test_repr_lists_sorted_symbol_names() -> None:
    """repr shows the name and each kind's symbol names, sorted."""
    assert repr(make_config()) == (
        "PluginConfig('pysam', sources=['pyfile', 'pyjson'], sinks=['print'], "
        "functions=['revert'])"
    )


# -- lookups ------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name", "factory"), [
    ("source", "pyjson", PyJson), ("sink", "print", Print), ("func", "revert", Revert),
])
def test_get_returns_registered_factory(kind: str, name: str, factory: type) -> None:
    """get(pluginType, name) returns the factory registered for that kind."""
    assert make_config().get(kind, name) is factory


def test_get_unknown_symbol_is_none() -> None:
    """get returns None for a name not registered under that kind."""
    assert make_config().get("sink", "pyjson") is None


def test_get_unknown_plugin_type_is_none() -> None:
    """get returns None for an unknown pluginType instead of raising."""
    assert make_config().get("filter", "pyjson") is None


def test_factories_by_kind() -> None:
    """factories(kind) returns the dict registered for that pluginType."""
    assert make_config().factories("func") == {"revert": Revert}


def test_factories_unknown_kind_raises_key_error() -> None:
    """factories raises KeyError for an unknown pluginType."""
    with pytest.raises(KeyError):
        make_config().factories("functions")


# -- describe_missing ---------------------------------------------------------------------


def test_describe_missing_source_lists_offered_sources() -> None:
    """The text for a missing source names it and lists the sources offered, sorted."""
    assert make_config().describe_missing("source", "pyxml") == (
        "plugin 'pysam' has no source named 'pyxml' (it offers: pyfile, pyjson); add it to "
        "PluginConfig.sources and the descriptor, or fix the name used in eKuiper"
    )


def test_describe_missing_function_says_function() -> None:
    """For pluginType func the text says 'function' and points at PluginConfig.functions."""
    assert make_config().describe_missing("func", "upper") == (
        "plugin 'pysam' has no function named 'upper' (it offers: revert); add it to "
        "PluginConfig.functions and the descriptor, or fix the name used in eKuiper"
    )


def test_describe_missing_with_nothing_registered_says_none() -> None:
    """When the plugin offers no symbol of that kind the text says 'none'."""
    assert PluginConfig("pysam").describe_missing("sink", "print") == (
        "plugin 'pysam' has no sink named 'print' (it offers: none); add it to "
        "PluginConfig.sinks and the descriptor, or fix the name used in eKuiper"
    )
