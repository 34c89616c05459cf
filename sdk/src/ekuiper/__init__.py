"""Python SDK for eKuiper portable plugins, drop-in compatible with the official one.

A plugin's main program::

    from ekuiper import plugin, PluginConfig
    plugin.start(PluginConfig("pysam", {"pyjson": PyJson}, {"print": PrintSink},
                              {"revert": RevertFunc}))

``to_bytes(value)`` gets the bytes of a binary payload (a stream with ``FORMAT="binary"``)
back from what eKuiper hands a function or sink: base64 text, or raw bytes.
``ErrorPolicy`` is a symbol's per-record error policy (``on_error`` on the class).
"""

from typing import TYPE_CHECKING, Any

from ekuiper._encoding import to_bytes
from ekuiper.context import Context
from ekuiper.errors import ChannelClosedError, EkuiperError
from ekuiper.function import Function
from ekuiper.runtime import plugin
from ekuiper.runtime.plugin import PluginConfig
from ekuiper.sink import Sink
from ekuiper.source import Source

if TYPE_CHECKING:
    from ekuiper._policy import ErrorPolicy

__all__ = [
    "ChannelClosedError",
    "Context",
    "EkuiperError",
    "ErrorPolicy",
    "Function",
    "PluginConfig",
    "Sink",
    "Source",
    "__version__",
    "plugin",
    "to_bytes",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ErrorPolicy loads on first use: a plugin without error policies imports nothing more.
    if name == "ErrorPolicy":
        from ekuiper._policy import ErrorPolicy

        return ErrorPolicy
    raise AttributeError(f"module 'ekuiper' has no attribute {name!r}")
