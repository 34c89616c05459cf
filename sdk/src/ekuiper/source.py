"""The base class of source symbols."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

from ekuiper.context import Context

__all__ = ["Source"]


class Source(ABC):
    """A symbol that produces rows for a stream.

    Lifecycle, all driven by eKuiper's start/stop commands for one rule operator:

    1. The factory registered in ``PluginConfig.sources`` builds the object, and
       ``configure(datasource, conf)`` runs, both on the control thread: an exception
       here fails the rule's start with its message.
    2. ``open(ctx)`` runs on a thread of its own and may block for as long as the rule
       runs, calling ``ctx.emit`` for each row. It may also return at once and emit
       from threads it started; the source stays attached until the rule stops it.
    3. ``close(ctx)`` runs exactly once when the rule stops (or the plugin shuts down),
       on the control thread; it should make ``open`` return. After it, ``ctx.emit``
       raises ChannelClosedError, which ends an ``open`` that ignores ``close``.

    Typed config (opt-in): set ``config_type`` to a dataclass or TypedDict and
    ``configure`` gets an instance of it, converted from the merged conf (yaml ``default``
    + CONF_KEY section + stream options), instead of the dict. A value that does not fit
    fails the rule's start with a ConfigError naming the property, the value and the type.
    Keys eKuiper adds itself (``format``, ``datasource``, ...) are dropped unless declared;
    ``config_unknown`` says what other undeclared keys do: ``"warn"`` (log them once per
    start, naming the nearest declared one), ``"error"`` or ``"ignore"``. A ``configure``
    annotating ``conf`` as ``dict``/``Mapping`` gets the dict unconverted, and a
    ``config_type`` that is not a dataclass/TypedDict class is the plugin's own attribute
    (the dict, a warning): official-SDK plugins using that name keep working.

    Any of these methods may be ``async def``; they then run on the plugin's one event
    loop. An async ``open`` emits with ``await ctx.emit_async(row)``, or is an async
    generator whose every yielded row (or list of rows) is emitted. On stop the open
    coroutine, and every task the source started, is cancelled before ``close`` runs.
    """

    config_type: ClassVar[type[Any] | None] = None
    config_unknown: ClassVar[Literal["warn", "error", "ignore"]] = "warn"

    def configure(self, datasource: str, conf: Any) -> None:  # noqa: B027
        """Take the stream's DATASOURCE and the merged configuration; raise if unusable.

        ``conf`` is a ``dict[str, Any]``, or an instance of ``config_type`` when declared.
        """

    @abstractmethod
    def open(self, ctx: Context) -> None:
        """Produce rows with ``ctx.emit`` until ``close`` is called."""

    def close(self, ctx: Context) -> None:  # noqa: B027
        """Stop producing and release resources; called once."""
