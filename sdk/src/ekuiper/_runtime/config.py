"""PluginConfig: which factories a plugin registers under which names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ekuiper._kinds import BY_WIRE, FUNCTION, KINDS, SINK, SOURCE
from ekuiper.errors import PluginConfigError
from ekuiper.function import Function
from ekuiper.sink import Sink
from ekuiper.source import Source

__all__ = ["PluginConfig"]


def _check_factories(plugin: str, field: str, value: Any) -> dict[str, Callable[[], Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PluginConfigError(
            f"PluginConfig({plugin!r}) {field} must be a dict of name -> factory, "
            f"got {type(value).__name__}"
        )
    for name, factory in value.items():
        if not isinstance(name, str) or not name:
            raise PluginConfigError(
                f"PluginConfig({plugin!r}) {field} has a key {name!r}; "
                "symbol names must be non-empty strings"
            )
        if not callable(factory):
            raise PluginConfigError(
                f"PluginConfig({plugin!r}) {field}[{name!r}] is not callable; register a "
                f"factory such as `lambda: MySymbol()` or the class itself"
            )
    return dict(value)


class PluginConfig:
    """The symbols a plugin offers, each as a zero-argument factory.

    ``PluginConfig(name, sources, sinks, functions)`` as in the official SDK; ``name``
    must be the plugin's name in eKuiper (its folder, zip and descriptor name). Each
    factory is called once per started symbol instance: return a new object for sources
    and sinks; a function factory may return a shared object.
    """

    def __init__(
        self,
        name: str,
        sources: Mapping[str, Callable[[], Source]] | None = None,
        sinks: Mapping[str, Callable[[], Sink]] | None = None,
        functions: Mapping[str, Callable[[], Function]] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise PluginConfigError(
                "PluginConfig needs the plugin's name as first argument, "
                "the same as its descriptor <name>.json"
            )
        self.name = name
        self.sources: dict[str, Callable[[], Source]] = _check_factories(
            name, SOURCE.plural, sources
        )
        self.sinks: dict[str, Callable[[], Sink]] = _check_factories(name, SINK.plural, sinks)
        self.functions: dict[str, Callable[[], Function]] = _check_factories(
            name, FUNCTION.plural, functions
        )

    def __repr__(self) -> str:
        return (f"PluginConfig({self.name!r}, sources={sorted(self.sources)}, "
                f"sinks={sorted(self.sinks)}, functions={sorted(self.functions)})")

    def factories(self, kind: str) -> dict[str, Callable[[], Any]]:
        """The factories registered for a pluginType ("source", "sink" or "func")."""
        for known in KINDS:
            if known.wire == kind:
                factories: dict[str, Callable[[], Any]] = getattr(self, known.plural)
                return factories
        raise KeyError(kind)

    def get(self, plugin_type: str, symbol_name: str) -> Callable[[], Any] | None:
        """The factory for a symbol, or None (the official SDK's lookup)."""
        try:
            return self.factories(plugin_type).get(symbol_name)
        except KeyError:
            return None

    def describe_missing(self, kind: str, symbol_name: str) -> str:
        """An error text for a start command naming a symbol this plugin lacks."""
        known = sorted(self.factories(kind))
        offered = ", ".join(known) if known else "none"
        missing = BY_WIRE[kind]
        return (
            f"plugin {self.name!r} has no {missing.noun} named "
            f"{symbol_name!r:.200} (it offers: {offered}); add it to "
            f"PluginConfig.{missing.plural} and the descriptor, or fix the name used in eKuiper"
        )
