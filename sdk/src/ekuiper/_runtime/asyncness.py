"""Which methods of a symbol are async, read from their code flags.

Pure: no I/O, and no asyncio or inspect import, so a plugin whose symbols are all sync
pays one attribute read per method at start and nothing per row. The runtimes ask once,
when a symbol starts; only a symbol with an async method imports ``_runtime.aio``.
"""

from __future__ import annotations

import functools
from typing import Any, Final, Literal

__all__ = [
    "ASYNC_GENERATOR",
    "COROUTINE",
    "FUNCTION_METHODS",
    "SINK_METHODS",
    "SOURCE_METHODS",
    "AsyncKind",
    "async_kind",
    "async_methods",
]

# The methods of each kind that may be ``async def``. Of a function's, only exec may be:
# one found async among the others fails the start (aio.AsyncFunction says why).
SOURCE_METHODS: Final = ("configure", "open", "close")
SINK_METHODS: Final = ("configure", "open", "collect", "close")
FUNCTION_METHODS: Final = ("exec", "validate", "is_aggregate")

# The code flags CPython sets on ``async def`` functions (the values inspect exposes as
# CO_COROUTINE and CO_ASYNC_GENERATOR; stable since 3.6).
_CO_COROUTINE: Final = 0x0080
_CO_ASYNC_GENERATOR: Final = 0x0200

AsyncKind = Literal["coroutine", "async generator"]
COROUTINE: Final = "coroutine"
ASYNC_GENERATOR: Final = "async generator"


def async_kind(fn: Any) -> AsyncKind | None:
    """``"coroutine"`` for an ``async def``, ``"async generator"`` for an ``async def``
    that yields, None for anything else (a plain function, a builtin, a callable object).

    Looks through bound methods and ``functools.partial``; a function marked with
    ``inspect.markcoroutinefunction`` counts as a coroutine function.
    """
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func
            continue
        inner = getattr(fn, "__func__", None)
        if inner is None or inner is fn:
            break
        fn = inner
    if getattr(fn, "_is_coroutine_marker", None) is not None:
        return COROUTINE
    code = getattr(fn, "__code__", None)
    flags = getattr(code, "co_flags", 0)
    if not isinstance(flags, int):
        return None
    if flags & _CO_ASYNC_GENERATOR:
        return ASYNC_GENERATOR
    if flags & _CO_COROUTINE:
        return COROUTINE
    return None


def async_methods(symbol: object, names: tuple[str, ...]) -> dict[str, AsyncKind]:
    """The methods among ``names`` that ``symbol`` defines as async, with their kind."""
    found: dict[str, AsyncKind] = {}
    for name in names:
        kind = async_kind(getattr(symbol, name, None))
        if kind is not None:
            found[name] = kind
    return found
