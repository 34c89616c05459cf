"""Where the runtimes meet ``ekuiper._typed``; imported only for symbols that opt in.

Called on the control thread when a symbol starts (sources, sinks) or is built
(functions): everything per class is resolved here once, so the per-row paths only run
the precomputed binder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ekuiper import _typed
from ekuiper.errors import ConfigError, SymbolError
from ekuiper.function import Function

__all__ = ["typed_conf", "typed_function"]


def typed_conf(symbol: Any, config_type: type, conf: Mapping[str, Any], what: str,
               logger: logging.Logger) -> Any:
    """The conf converted to the symbol's ``config_type``; ConfigError if it does not fit.

    ``what`` names the symbol in the error (``source 'ticks'``). Undeclared keys are
    logged once here (``config_unknown = "warn"``), raised (``"error"``) or dropped.
    """
    cls = type(symbol)
    try:
        value, unknown = _typed.convert_config(config_type, conf,
                                               getattr(cls, "config_unknown", "warn"))
    except ConfigError as exc:
        raise ConfigError(f"{what} config: {exc}") from None
    except TypeError as exc:  # the declaration itself is unusable: a plugin bug
        raise SymbolError(f"{what}: {exc}") from None
    if unknown:
        logger.warning("%s", _typed.unknown_text(config_type, unknown))
    return value


def typed_function(function: Any, name: str) -> tuple[Callable[[list[Any], Any], Any],
                                                       Callable[[list[Any]], Any]]:
    """(exec, validate) for a function with a typed ``call``, bound once.

    The user's own ``validate`` is kept if the class overrides it.
    """
    cls = type(function)
    try:
        spec = _typed.call_spec(cls, name)
    except TypeError as exc:
        raise SymbolError(f"function {name!r}: {exc}") from None
    validate: Callable[[list[Any]], Any] = function.validate
    if cls.validate is Function.validate:
        def validate(args: list[Any]) -> str:
            return _typed.check_call_nodes(spec, args)
    return _typed.bind_call(function, spec), validate
