"""Pure rules of plugin state: what a key may be, how a value is stored, whose it is.

No files, no threads: the store (``ekuiper._state.store``) calls these on every state
call, and the hypothesis tests feed them hostile input.

* A key is a ``str`` of 1 to :data:`MAX_KEY_CHARS` characters, without NUL and
  encodable as UTF-8 (no lone surrogates). Anything else raises TypeError (not a str)
  or ValueError, naming the key.
* A value is whatever the SDK's encoder carries to eKuiper (``ekuiper._encoding``); it is
  stored as that JSON text and read back as JSON decodes it, so a tuple comes back a
  list and a datetime its ISO text. A value the encoder refuses fails ``put_state`` with
  the encoder's error type (TypeError, or ValueError for NaN), naming the key.
* A scope is whose state it is: ``(kind, symbol, rule, op, instance)``. Sources and
  sinks keep one per rule, operator and instance; a function one per rule (op ``""``,
  instance 0), shared by every call of that function in the rule.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from ekuiper import _encoding

__all__ = ["MAX_KEY_CHARS", "Scope", "check_key", "decode_value", "encode_value", "scope_for"]

# Long enough for any name a plugin makes up; short enough that a key built from a row by
# mistake (a whole payload) is caught at once rather than filling the file.
MAX_KEY_CHARS: Final = 1024


class Scope(NamedTuple):
    """Whose state a key belongs to (one row prefix in the store's table)."""

    kind: str
    symbol: str
    rule: str
    op: str
    instance: int


def scope_for(kind: str, symbol: str, rule: str, op: str, instance: int) -> Scope:
    """The scope of a symbol instance; a function's is per rule, whatever its op."""
    if kind == "function":
        return Scope(kind, symbol, rule, "", 0)
    return Scope(kind, symbol, rule, op, instance)


def _shown(key: str) -> str:
    text = repr(key)
    return text if len(text) <= 60 else text[:50] + "...' (" + f"{len(key)} characters)"


def _repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not hide the real error
        return f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def check_key(key: Any) -> str:
    """``key`` if it is a usable state key, else TypeError/ValueError saying why."""
    if not isinstance(key, str):
        raise TypeError(f"state keys are str, got {type(key).__name__} {_repr(key)}")
    # A str subclass is kept as the plain text it holds.
    text: str = str.__str__(key) if type(key) is not str else key
    if not text:
        raise ValueError("state key is empty; name the value you keep")
    if len(text) > MAX_KEY_CHARS:
        raise ValueError(f"state key {_shown(text)} is longer than {MAX_KEY_CHARS} characters")
    if "\x00" in text:
        raise ValueError(f"state key {_shown(text)} holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"state key {_shown(text)} is not valid text (a lone surrogate); "
                         "use text that UTF-8 can hold") from None
    return text


def encode_value(key: str, value: Any) -> str:
    """The JSON text stored for ``value``; the encoder's error, naming ``key``, if none."""
    try:
        return _encoding.encode(value).decode("utf-8")
    except TypeError as exc:
        raise TypeError(f"put_state({_shown(key)}): the value cannot be kept as JSON: "
                        f"{exc}") from None
    except ValueError as exc:
        raise ValueError(f"put_state({_shown(key)}): the value cannot be kept as JSON: "
                         f"{exc}") from None


def decode_value(text: str) -> Any:
    """The value ``encode_value`` stored as ``text``."""
    return _encoding.decode(text)
