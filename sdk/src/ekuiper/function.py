"""The base class of function symbols."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ekuiper.context import Context

__all__ = ["Function"]


class Function(ABC):
    """A symbol usable in SQL as ``name(args...)``.

    One object serves every rule that calls the function; calls arrive one at a time on
    the function's own thread. ``ctx`` identifies the calling expression (rule, operator,
    instance, function id) and is the same object for every call from it.

    An exception from ``exec`` becomes an error of the rule's operator with the
    exception's text; so does a result that JSON cannot carry.

    ``exec`` may be ``async def``: each call is then awaited on the plugin's event loop
    (calls still come one at a time), so it can share async clients with the plugin's
    async sources and sinks. ``validate`` and ``is_aggregate`` stay plain methods.
    """

    def validate(self, args: list[Any]) -> str | None:
        """Check the argument AST nodes when a rule is created.

        Return "" or None to accept, an error text to reject (or raise).
        """
        return ""

    @abstractmethod
    def exec(self, args: list[Any], ctx: Context) -> Any:
        """Compute the result for one row's argument values."""

    def is_aggregate(self) -> bool:
        """Whether the function aggregates over a group (asked once per function)."""
        return False
