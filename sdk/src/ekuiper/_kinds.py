"""The three kinds of symbol, every fact about a kind stated once.

eKuiper names a kind on the wire (``pluginType`` in start and stop commands), people by
a noun, and a plugin's descriptor, its ``PluginConfig`` and its metadata folders by the
plural. Everything that needs one of these reads this table, so the kinds cannot drift
apart between the protocol, the runtime, the CLI and the image's drop-in installer.

Pure: no I/O. The runtime classes are named, not imported: they import the protocol,
which reads this table.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Literal, NamedTuple

from ekuiper.function import Function
from ekuiper.sink import Sink
from ekuiper.source import Source

if TYPE_CHECKING:
    from ekuiper._runtime.base import SymbolRuntime

__all__ = ["BY_WIRE", "FUNCTION", "KINDS", "SINK", "SOURCE", "Kind", "Wire", "noun"]

# The type checker needs the wire names spelled out; a unit test holds them to KINDS.
Wire = Literal["source", "sink", "func"]


# A NamedTuple rather than a frozen dataclass: `import dataclasses` (and the inspect module
# it pulls in) is a measurable part of a plugin's start-up time.
class Kind(NamedTuple):
    """One kind of symbol.

    ``wire``: eKuiper's pluginType. ``noun``: the kind as messages say it. ``plural``:
    the PluginConfig field, the descriptor key and the metadata folder (in a plugin and
    in eKuiper's ``etc/``). ``method``: what every symbol object of the kind must have
    (its base class's abstract method). ``base``: the public base class. ``runtime``:
    the runtime class as ``module.Class``, imported by ``runtime_class``.
    """

    wire: Wire
    noun: str
    plural: str
    method: str
    base: type[object]
    runtime: str

    def runtime_class(self) -> type[SymbolRuntime]:
        """The class that runs one symbol of this kind (imported on first use)."""
        module, _, name = self.runtime.rpartition(".")
        cls: type[SymbolRuntime] = getattr(importlib.import_module(module), name)
        return cls


SOURCE: Final = Kind("source", "source", "sources", "open", Source,
                     "ekuiper._runtime.source.SourceRuntime")
SINK: Final = Kind("sink", "sink", "sinks", "collect", Sink,
                   "ekuiper._runtime.sink.SinkRuntime")
FUNCTION: Final = Kind("func", "function", "functions", "exec", Function,
                       "ekuiper._runtime.function.FunctionRuntime")

# In the order eKuiper's descriptors and PluginConfig list them.
KINDS: Final = (SOURCE, SINK, FUNCTION)
BY_WIRE: Final[Mapping[str, Kind]] = MappingProxyType({kind.wire: kind for kind in KINDS})


def noun(wire: str) -> str:
    """A pluginType as users say it ("func" is a function); an unknown one as it is."""
    kind = BY_WIRE.get(wire)
    return wire if kind is None else kind.noun
