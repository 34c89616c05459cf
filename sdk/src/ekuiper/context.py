"""The context handed to every symbol method that runs inside a rule."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Context"]


class Context(ABC):
    """What a symbol knows about the rule it runs in, and how it talks back to eKuiper.

    The runtime creates one context per running symbol instance (per rule, operator and
    instance for sources and sinks; per calling expression for functions). Methods are
    safe to call from any thread.
    """

    @abstractmethod
    def get_rule_id(self) -> str:
        """The id of the rule this symbol instance runs in ("" for a function's start)."""

    @abstractmethod
    def get_op_id(self) -> str:
        """The id of the operator inside the rule."""

    @abstractmethod
    def get_instance_id(self) -> int:
        """The instance number, when the operator runs with concurrency > 1."""

    @abstractmethod
    def get_logger(self) -> logging.Logger:
        """A ``logging.Logger`` whose lines name the plugin, symbol, rule and operator.

        Lines go to the plugin's stderr at once, which eKuiper copies into its log.
        The level follows ``EKUIPER_PLUGIN_LOG_LEVEL``, the descriptor's ``logLevel``
        and the symbol's ``logLevel`` config property, most specific first.
        """

    @abstractmethod
    def emit(self, message: Any, meta: Any = None) -> None:
        """Source only: send one row (a dict) or several (a list of dicts) to the rule.

        Blocks while eKuiper is not reading (backpressure) and retries until the row is
        taken or the source is stopped; raises ChannelClosedError once it is stopped.
        """

    async def emit_async(self, message: Any, meta: Any = None) -> None:
        """Source only, from async code: ``emit`` without blocking the event loop.

        Takes what ``emit`` takes and applies the same backpressure: it returns once
        eKuiper has taken the rows, waiting (without holding up other coroutines) while
        eKuiper is not reading; raises ChannelClosedError once the source is stopped.
        Rows of one source go out in the order emit_async was called.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement emit_async")

    @abstractmethod
    def emit_error(self, error: str) -> None:
        """Source only: report an error; it is logged and counted as a source exception."""

    @abstractmethod
    def ack_ok(self) -> None:
        """Sink only: acknowledge the current message (needs ``requireAck: true``)."""

    @abstractmethod
    def ack_error(self, error: str) -> None:
        """Sink only: report that the current message failed with ``error``."""

    # State: not abstract, so a Context written for the official SDK still instantiates.

    def get_state(self, key: str, default: Any = None) -> Any:
        """The value kept under ``key`` for this symbol instance, else ``default``.

        State is kept per rule, operator and instance for sources and sinks, per rule
        for functions, in a SQLite file that survives a plugin crash, an eKuiper restart
        and a reinstall of the plugin (README: "State that survives a restart"). It is
        not part of eKuiper's checkpoints: a rule replayed from a checkpoint does not
        roll it back. Safe from any thread; each call reads the file.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no state")

    def put_state(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key``; committed to the file before this returns.

        ``key``: a non-empty str of at most 1024 characters, without NUL. ``value``: what
        the SDK can send to eKuiper as JSON, read back as JSON (a tuple as a list, a
        datetime as its ISO text). A value JSON cannot carry raises TypeError (ValueError
        for NaN) naming the key; a file that cannot be written, ``StateError``.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no state")

    def delete_state(self, key: str) -> bool:
        """Forget ``key``; True if a value was kept under it."""
        raise NotImplementedError(f"{type(self).__name__} keeps no state")
