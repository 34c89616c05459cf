"""The base class of sink symbols."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ekuiper.context import Context

if TYPE_CHECKING:
    from ekuiper._policy import ErrorPolicy

__all__ = ["Sink"]


class Sink(ABC):
    """A symbol that receives a rule's results.

    Lifecycle, driven by eKuiper's start/stop commands for one rule action:

    1. The factory in ``PluginConfig.sinks`` builds the object and ``configure(conf)``
       runs on the control thread with the action's properties; an exception fails the
       rule's start with its message.
    2. On the sink's own thread: ``open(ctx)`` once, then ``collect(ctx, data)`` for
       every message, one at a time, in order.
    3. ``close(ctx)`` runs exactly once when the rule stops, after the last ``collect``
       has returned (or, if ``collect`` hangs, after a bounded wait).

    ``data`` is the bytes eKuiper sent (as with the official SDK): a JSON array of rows,
    or one JSON object per message with ``sendSingle: true``. Set ``decode_rows = True``
    on the class to receive a ``list[dict]`` of rows whatever ``sendSingle`` is.

    With ``requireAck: true`` in the action, every message is acknowledged: a ``collect``
    that returns without calling ``ctx.ack_ok``/``ctx.ack_error`` is acked ok, one that
    raises is acked with the exception's text. Without ``requireAck`` the ack calls do
    nothing. A failing message never stops the sink.

    ``on_error = ErrorPolicy.retry(n, backoff, max_backoff)`` on the class calls a
    ``collect`` that raised again, up to ``n`` times, waiting ``backoff`` seconds doubling
    up to ``max_backoff``; the next message waits, and the ack (with ``requireAck``) is
    sent once, after the last attempt. The action properties ``collectRetries``,
    ``collectBackoff`` and ``collectMaxBackoff`` (durations: ``500``, ``"500ms"``,
    ``"2s"``) set or override it; a bad value fails the rule's start.

    Typed config (opt-in), as for sources: ``config_type`` (a dataclass or TypedDict)
    makes ``configure`` get an instance converted from the action's properties; eKuiper's
    own (``sendSingle``, ``requireAck``, ``format``, ...) are dropped unless declared, and
    ``config_unknown`` says what other undeclared ones do (``"warn"``, ``"error"``,
    ``"ignore"``); the same rule as for sources says when ``config_type`` declares it.
    An ``on_error`` that is not an ErrorPolicy is the plugin's own: no policy, a warning.

    Any of these methods may be ``async def`` (they then run on the plugin's event loop).
    An async ``collect`` handles one message at a time unless the class sets
    ``max_in_flight = N``: then, without requireAck, up to N run at once, started in
    arrival order and possibly finishing out of order; ``close`` runs after all of them.
    """

    decode_rows: ClassVar[bool] = False
    on_error: ClassVar[ErrorPolicy | None] = None
    config_type: ClassVar[type[Any] | None] = None
    config_unknown: ClassVar[Literal["warn", "error", "ignore"]] = "warn"
    # How many messages an ``async def collect`` may have in flight at once (requireAck
    # off); see the README's async section for the order this keeps.
    max_in_flight: ClassVar[int] = 1

    def configure(self, conf: Any) -> None:  # noqa: B027
        """Take the rule action's properties; raise if they are unusable.

        ``conf`` is a ``dict[str, Any]``, or an instance of ``config_type`` when declared.
        """

    def open(self, ctx: Context) -> None:  # noqa: B027
        """Connect to whatever the sink writes to; raising makes every message fail."""

    @abstractmethod
    def collect(self, ctx: Context, data: Any) -> None:
        """Handle one message from the rule."""

    def close(self, ctx: Context) -> None:  # noqa: B027
        """Release resources; called once."""
