"""The base class of function symbols."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from ekuiper.context import Context

if TYPE_CHECKING:
    from ekuiper._policy import ErrorPolicy

__all__ = ["Function"]


_BOUND = "_ekuiper_bound_call"


def _call_exec(self: Function, args: list[Any], ctx: Context) -> Any:
    """``exec`` of a function that declares a typed ``call`` instead (see Function).

    The binder is built on the first direct call and kept on the instance (the runtime
    binds its own once at start); an instance without a ``__dict__`` rebuilds it.
    """
    bound = getattr(self, "__dict__", {}).get(_BOUND)
    if bound is None:
        from ekuiper import _typed

        bound = _typed.bind_call(self, _typed.call_spec(type(self)))
        try:
            self.__dict__[_BOUND] = bound
        except AttributeError:
            pass
    return bound(list(args), ctx)  # a copy: the binder may convert in place


class Function(ABC):  # noqa: B024 (exec is abstract at run time, see below)
    """A symbol usable in SQL as ``name(args...)``.

    One object serves every rule that calls the function; calls arrive one at a time on
    the function's own thread. ``ctx`` identifies the calling expression (rule, operator,
    instance, function id) and is the same object for every call from it.

    Define either ``exec(self, args, ctx)`` (the official SDK's form: ``args`` is the list
    of argument values) or, instead, a typed ``call`` whose parameters are the SQL
    arguments, e.g. ``def call(self, text: str, times: int = 1) -> str``. With ``call``:
    the default ``validate`` refuses a rule that passes too few or too many arguments, or
    a literal of the wrong type, with the signature in its text; each call converts the
    values losslessly (an int for a ``float``) and refuses others with an ArgumentError
    naming the argument; a keyword-only ``ctx`` parameter gets the Context; ``*args``
    takes any number more. ``ekuiper-plugin metadata`` writes ``functions/<name>.json``
    from the signature and the docstring. When a class defines both, ``exec`` is used.

    An exception from ``exec``/``call`` becomes an error of the rule's operator with the
    exception's text; so does a result that JSON cannot carry. Set ``on_error =
    ErrorPolicy.null()`` (or ``ErrorPolicy.default(value)``) on the class to give such a
    row that value instead: the failure is logged (one traceback per raise site) and
    counted, and the rule sees no error.

    ``exec`` may be ``async def``: each call is then awaited on the plugin's event loop
    (calls still come one at a time), so it can share async clients with the plugin's
    async sources and sinks. ``validate`` and ``is_aggregate`` stay plain methods.
    """

    on_error: ClassVar[ErrorPolicy | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A class with a typed call and no exec of its own gets the exec that binds one.
        if getattr(cls, "exec", None) is Function.exec and callable(getattr(cls, "call", None)):
            cls.exec = _call_exec  # type: ignore[method-assign]

    def validate(self, args: list[Any]) -> str | None:
        """Check the argument AST nodes when a rule is created.

        Return "" or None to accept, an error text to reject (or raise). The default
        accepts, or, for a typed ``call``, checks the argument count and literal types.
        """
        if type(self).exec is _call_exec:
            from ekuiper import _typed

            return _typed.check_call_nodes(_typed.call_spec(type(self)), args)
        return ""

    if TYPE_CHECKING:
        # Not abstract for the type checker, so a class with only a typed `call` type-checks;
        # at run time it is, so a class with neither still fails when instantiated.
        def exec(self, args: list[Any], ctx: Context) -> Any:
            """Compute the result for one row's argument values."""
    else:
        @abstractmethod
        def exec(self, args: list[Any], ctx: Context) -> Any:
            """Compute the result for one row's argument values."""

    def is_aggregate(self) -> bool:
        """Whether the function aggregates over a group (asked once per function)."""
        return False
