"""Whether a symbol's ``config_type`` is a typed-config declaration (pure, no I/O).

A plugin written for the official SDK may keep an attribute of that name for its own
use (its own class it builds from the dict, a format string): that must keep getting
the dict. So ``config_type`` declares typed config only when it is a dataclass or a
TypedDict class, and ``configure`` does not annotate ``conf`` as a dict or Mapping (a
``conf: dict`` means the plugin parses the dict itself). Read only for classes that
have a ``config_type``, so untyped plugins load nothing of it.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["config_declaration", "declared", "is_record"]

_DICT_NAMES = re.compile(r"^(typing\.|collections\.abc\.|t\.)?"
                         r"(dict|Dict|Mapping|MutableMapping)\b")
_DICT_TYPES = (dict, Mapping, MutableMapping)


def _any(cls: type) -> Any:
    return cls


def is_record(tp: Any) -> bool:
    if not isinstance(tp, type):
        return False
    typed_dict = (isinstance(getattr(tp, "__required_keys__", None), frozenset)
                  and issubclass(tp, dict))
    return dataclasses.is_dataclass(tp) or typed_dict


def _wants_dict(cls: type) -> bool:
    """Whether ``cls.configure`` annotates its ``conf`` as a dict or Mapping."""
    try:
        params = list(inspect.signature(_any(cls).configure).parameters.values())
    except (TypeError, ValueError, AttributeError):
        return False
    param = next((p for p in params if p.name == "conf"), params[-1] if params else None)
    if param is None or param.annotation is inspect.Parameter.empty:
        return False
    ann = param.annotation
    if isinstance(ann, str):
        return bool(_DICT_NAMES.match(ann.strip()))
    return ann in _DICT_TYPES or typing.get_origin(ann) in _DICT_TYPES


def config_declaration(cls: type) -> tuple[Any, str]:
    """(the config type to convert to, or None; why not, when it is set but not used).

    The reason is empty when there is no ``config_type`` or it is used.
    """
    config_type = getattr(cls, "config_type", None)
    if config_type is None:
        return None, ""
    if not is_record(config_type):
        return None, (f"{cls.__qualname__}.config_type is {config_type!r}, not a dataclass "
                      "or TypedDict class, so it does not declare typed config: configure "
                      "gets the conf dict")
    if _wants_dict(cls):
        return None, (f"{cls.__qualname__}.configure annotates conf as a dict, so it gets "
                      f"the conf dict, not a {config_type.__name__}")
    return config_type, ""


_told: set[type] = set()


def declared(cls: type, logger: Any) -> Any:
    """The config type to convert to, or None; says once per class why one is not used.

    A non-record ``config_type`` is logged as a warning (it may be a mistake), a
    ``conf: dict`` annotation at debug (the plugin asked for the dict).
    """
    config_type, why = config_declaration(cls)
    if why and cls not in _told:
        _told.add(cls)
        if config_type is None and getattr(cls, "config_type", None) is not None \
                and not is_record(_any(cls).config_type):
            logger.warning("%s", why)
        else:
            logger.debug("%s", why)
    return config_type
