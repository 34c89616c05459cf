"""Unit tests for ekuiper._kinds: the one table of symbol kinds."""

from __future__ import annotations

import typing

import pytest

import ekuiper
from ekuiper._kinds import BY_WIRE, FUNCTION, KINDS, SINK, SOURCE, Kind, Wire, noun
from ekuiper._runtime.base import SymbolRuntime


def test_wire_names_are_ekuipers_plugin_types() -> None:
    """The wire names are the pluginType values eKuiper sends, in its order."""
    assert [kind.wire for kind in KINDS] == ["source", "sink", "func"]


def test_nouns_are_what_users_call_the_kinds() -> None:
    """The nouns are source, sink and function ("func" is only the wire's name)."""
    assert [kind.noun for kind in KINDS] == ["source", "sink", "function"]


def test_plurals_are_the_descriptor_keys() -> None:
    """The plurals are the descriptor keys, PluginConfig fields and metadata folders."""
    assert [kind.plural for kind in KINDS] == ["sources", "sinks", "functions"]


def test_each_plural_is_a_plugin_config_field() -> None:
    """PluginConfig has a field of each kind's plural, holding that kind's factories."""
    config = ekuiper.PluginConfig("p", {"s": object}, {"k": object}, {"f": object})
    assert [sorted(getattr(config, kind.plural)) for kind in KINDS] == [["s"], ["k"], ["f"]]


def test_wire_type_lists_the_same_names() -> None:
    """The Wire literal type spells the table's wire names, no more and no fewer."""
    assert typing.get_args(Wire) == tuple(kind.wire for kind in KINDS)


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.noun)
def test_method_is_the_base_class_abstract_method(kind: Kind) -> None:
    """A kind's required method is the one method its base class leaves abstract."""
    assert kind.base.__abstractmethods__ == {kind.method}  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.noun)
def test_base_class_is_exported_by_ekuiper(kind: Kind) -> None:
    """A kind's base class is the one plugin authors import from ekuiper."""
    assert getattr(ekuiper, kind.base.__name__) is kind.base


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.noun)
def test_runtime_class_is_a_symbol_runtime_of_the_kind(kind: Kind) -> None:
    """runtime_class imports the named class: a SymbolRuntime named after the base."""
    cls = kind.runtime_class()
    assert issubclass(cls, SymbolRuntime)
    assert cls.__name__ == f"{kind.base.__name__}Runtime"


def test_by_wire_finds_each_kind() -> None:
    """BY_WIRE maps each pluginType to its kind."""
    assert dict(BY_WIRE) == {"source": SOURCE, "sink": SINK, "func": FUNCTION}


def test_noun_names_a_plugin_type() -> None:
    """noun() turns a pluginType into what users call it."""
    assert [noun(wire) for wire in ("source", "sink", "func")] == ["source", "sink", "function"]


def test_noun_of_an_unknown_plugin_type_is_itself() -> None:
    """noun() leaves a pluginType it does not know as it is."""
    assert noun("wasm") == "wasm"
