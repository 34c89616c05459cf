"""Per-record error policies: what the runtime does when plugin code raises for one record.

Pure (no sockets, no threads): the public :class:`ErrorPolicy`, the checks that turn a
symbol's ``on_error`` and a sink action's properties into the policy its runtime applies,
and the backoff schedule. Imported only by symbols that use a policy.

Policies, one table::

    ErrorPolicy.null()          function  an exception from exec (or a result JSON cannot
    ErrorPolicy.default(v)                carry) makes that row's result null / v
    ErrorPolicy.retry(n, ...)   sink      collect is called again up to n more times,
                                          waiting backoff, 2*backoff, ... (at most
                                          max_backoff) before each; then acked as failed

A sink action may set or override the retry policy with SINK_RETRIES, SINK_BACKOFF and
SINK_MAX_BACKOFF; eKuiper interprets none of these names and passes them to the plugin.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ekuiper import _protocol
from ekuiper._durations import go_duration_seconds
from ekuiper.errors import PolicyError

__all__ = [
    "MAX_DELAY_S",
    "MAX_RETRIES",
    "SINK_BACKOFF",
    "SINK_KEYS",
    "SINK_MAX_BACKOFF",
    "SINK_RETRIES",
    "ErrorPolicy",
    "function_policy",
    "parse_count",
    "parse_duration",
    "replacement_reply",
    "sink_policy",
]

SINK_RETRIES: Final = "collectRetries"
SINK_BACKOFF: Final = "collectBackoff"
SINK_MAX_BACKOFF: Final = "collectMaxBackoff"
SINK_KEYS: Final = (SINK_RETRIES, SINK_BACKOFF, SINK_MAX_BACKOFF)

MAX_RETRIES: Final = 1000
MAX_DELAY_S: Final = 3600.0
DEFAULT_BACKOFF_S: Final = 0.1
DEFAULT_MAX_BACKOFF_S: Final = 5.0

_REPLACE: Final = "replace"
_RETRY: Final = "retry"
_DIGITS = re.compile(r"\d+", re.ASCII)
_DECIMAL = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ErrorPolicy:
    """What happens when a symbol's code raises for one record; set it as ``on_error``.

    On a Function class: ``on_error = ErrorPolicy.null()`` (or ``.default(value)``) turns
    an exception from ``exec``, or a result JSON cannot carry, into that value for the
    row; the failure is logged and counted instead of becoming an error of the rule.

    On a Sink class: ``on_error = ErrorPolicy.retry(3)`` calls ``collect`` again, after
    ``backoff`` seconds doubling up to ``max_backoff``, before the message counts as
    failed. The next message waits; with ``requireAck`` one ack goes out after the last
    attempt; a rule stop ends the waiting at once. The action properties
    ``collectRetries``, ``collectBackoff`` and ``collectMaxBackoff`` override it.

    Build it with the class methods; fields are checked when it is made.
    """

    kind: str
    value: Any = None
    retries: int = 0
    backoff: float = DEFAULT_BACKOFF_S
    max_backoff: float = DEFAULT_MAX_BACKOFF_S

    @classmethod
    def null(cls) -> ErrorPolicy:
        """A function's failing row gets null."""
        return cls(_REPLACE)

    @classmethod
    def default(cls, value: Any) -> ErrorPolicy:
        """A function's failing row gets ``value`` (anything JSON can carry)."""
        return cls(_REPLACE, value=value)

    @classmethod
    def retry(cls, retries: int, backoff: float = DEFAULT_BACKOFF_S,
              max_backoff: float = DEFAULT_MAX_BACKOFF_S) -> ErrorPolicy:
        """A sink's failing ``collect`` is retried ``retries`` times (seconds for waits)."""
        return cls(_RETRY, retries=retries, backoff=backoff, max_backoff=max_backoff)

    def __post_init__(self) -> None:
        if self.kind not in (_REPLACE, _RETRY):
            raise PolicyError(f"ErrorPolicy kind is {self.kind!r}; expected ErrorPolicy.null(), "
                              ".default(value) or .retry(retries)")
        if self.kind == _RETRY:
            _check_retry(self.retries, self.backoff, self.max_backoff,
                         ("retries", "backoff", "max_backoff"), "ErrorPolicy.retry()")

    @property
    def replaces(self) -> bool:
        return self.kind == _REPLACE

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        # 2**64 times any allowed backoff is past MAX_DELAY_S; a larger power would overflow.
        return min(self.backoff * 2.0 ** min(retry, 64), self.max_backoff)

    def describe(self) -> str:
        if self.replaces:
            return "null" if self.value is None else f"the default {self.value!r:.80}"
        return (f"up to {self.retries} retries, backoff {self.backoff:g} s doubling to at "
                f"most {self.max_backoff:g} s")


def _check_retry(retries: Any, backoff: Any, max_backoff: Any, names: tuple[str, str, str],
                 where: str, show: Any = repr) -> None:
    if not isinstance(retries, int) or isinstance(retries, bool) \
            or not 0 <= retries <= MAX_RETRIES:
        raise PolicyError(f"{where} {names[0]} is {retries!r:.80}; expected a whole number "
                          f"of retries from 0 to {MAX_RETRIES}")
    for name, value in ((names[1], backoff), (names[2], max_backoff)):
        if not _is_number(value) or not math.isfinite(value) or not 0 <= value <= MAX_DELAY_S:
            raise PolicyError(f"{where} {name} is {value!r:.80}; expected seconds from 0 to "
                              f"{MAX_DELAY_S:g}")
    if max_backoff < backoff:
        raise PolicyError(f"{where} {names[2]} ({show(max_backoff)}) is less than {names[1]} "
                          f"({show(backoff)}); expected {names[2]} >= {names[1]}")


def _seconds(value: float) -> str:
    return f"{value:g}s"


def parse_count(field: str, value: Any, where: str) -> int:
    """A whole number from a JSON property: an integer, an integral float or digits."""
    number: Any = value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if not isinstance(number, int) or isinstance(number, bool) \
            or not 0 <= number <= MAX_RETRIES:
        raise PolicyError(f"{where} {field} is {value!r:.80}; expected a whole number of "
                          f"retries from 0 to {MAX_RETRIES}")
    return number


def parse_duration(field: str, value: Any, where: str) -> float:
    """Seconds from a duration property as eKuiper writes them: a number of
    milliseconds (``500``) or a text with units (``"500ms"``, ``"2s"``, ``"1m30s"``)."""
    seconds: float | None = None
    if _is_number(value):
        seconds = float(value) / 1000.0
    elif isinstance(value, str):
        text = value.strip()
        if _DECIMAL.fullmatch(text):
            seconds = float(text) / 1000.0
        else:
            seconds = go_duration_seconds(text)
    if seconds is None or not math.isfinite(seconds) or not 0 <= seconds <= MAX_DELAY_S:
        raise PolicyError(f"{where} {field} is {value!r:.80}; expected a duration from 0 to "
                          f"{MAX_DELAY_S:g}s: milliseconds (500) or a text with a unit "
                          "(500ms, 2s, 1m)")
    return seconds


_told: set[tuple[str, str]] = set()


def _class_policy(noun: str, symbol: str, value: Any, kind: str, hint: str) -> ErrorPolicy | None:
    where = f"{noun} {symbol!r}: on_error"
    if value is None:
        return None
    if not isinstance(value, ErrorPolicy):
        # A plugin written before policies may have its own on_error (a method, a flag, a
        # string it reads itself): not a policy, and never a reason to refuse the start.
        if not callable(value) and (noun, symbol) not in _told:
            _told.add((noun, symbol))
            import logging

            logging.getLogger("ekuiper").warning(
                "%s is %.80r (%s), not an ErrorPolicy, so it is no error policy; use %s "
                "for one", where, value, type(value).__name__, hint)
        return None
    if value.kind != kind:
        raise PolicyError(f"{where} is {value.describe()}, which is not for a {noun}; "
                          f"expected {hint} or None")
    return value


def function_policy(symbol: str, value: Any) -> ErrorPolicy | None:
    """The replacing policy a function's ``on_error`` declares, or None (fail the row)."""
    return _class_policy("function", symbol, value, _REPLACE,
                         "ErrorPolicy.null() or ErrorPolicy.default(value)")


def replacement_reply(symbol: str, policy: ErrorPolicy) -> bytes:
    """The Exec reply a replaced row gets, encoded once; a value JSON cannot carry fails."""
    try:
        return _protocol.encode_func_result(policy.value)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"function {symbol!r}: on_error default {policy.value!r:.80} cannot "
                          f"be sent to eKuiper ({exc}); expected a value JSON can carry") from exc


def sink_policy(symbol: str, value: Any, config: Mapping[str, Any]) -> ErrorPolicy | None:
    """The retry policy of one sink action: the class's ``on_error``, with the action's
    collect* properties taking precedence; None when nothing is retried."""
    declared = _class_policy("sink", symbol, value, _RETRY, "ErrorPolicy.retry(retries)")
    if not any(key in config for key in SINK_KEYS):
        return declared
    where = f"sink {symbol!r}: action property"
    if SINK_RETRIES in config:
        retries = parse_count(SINK_RETRIES, config[SINK_RETRIES], where)
    elif declared is not None:
        retries = declared.retries
    else:
        given = [key for key in SINK_KEYS if key in config]
        raise PolicyError(f"{where} {given[0]} is set but {SINK_RETRIES} is not; expected "
                          f"{SINK_RETRIES} (the number of retries) with it")
    backoff = (parse_duration(SINK_BACKOFF, config[SINK_BACKOFF], where)
               if SINK_BACKOFF in config else
               declared.backoff if declared is not None else DEFAULT_BACKOFF_S)
    max_backoff = (parse_duration(SINK_MAX_BACKOFF, config[SINK_MAX_BACKOFF], where)
                   if SINK_MAX_BACKOFF in config else
                   max(declared.max_backoff if declared is not None else DEFAULT_MAX_BACKOFF_S,
                       backoff))
    _check_retry(retries, backoff, max_backoff, SINK_KEYS, where, _seconds)
    return ErrorPolicy.retry(retries, backoff, max_backoff) if retries else None
