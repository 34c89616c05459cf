"""The base class of function symbols."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from ekuiper.context import Context

if TYPE_CHECKING:
    from ekuiper._policy import ErrorPolicy

__all__ = ["Function"]


class Function(ABC):
    """A symbol usable in SQL as ``name(args...)``.

    One object serves every rule that calls the function; calls arrive one at a time on
    the function's own thread. ``ctx`` identifies the calling expression (rule, operator,
    instance, function id) and is the same object for every call from it.

    An exception from ``exec`` becomes an error of the rule's operator with the
    exception's text; so does a result that JSON cannot carry. Set ``on_error =
    ErrorPolicy.null()`` (or ``ErrorPolicy.default(value)``) on the class to give such a
    row that value instead: the failure is logged (one traceback per raise site) and
    counted, and the rule sees no error.
    """

    on_error: ClassVar[ErrorPolicy | None] = None

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
