"""The Context implementation shared by every symbol runtime."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable

from ekuiper import _encoding, _protocol
from ekuiper._protocol import Meta
from ekuiper._transport import Channel, ChannelTimeout
from ekuiper.context import Context
from ekuiper.errors import ChannelClosedError

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from ekuiper._state import Scope, Store

__all__ = ["SymbolContext"]


class SymbolContext(Context):
    """Context of one running symbol instance.

    A source context owns an emitter (the source channel), a sink context an acker;
    calling the other kind's methods raises a TypeError naming the mistake.
    """

    def __init__(
        self,
        kind: str,
        symbol: str,
        meta: Meta,
        logger: logging.Logger,
    ) -> None:
        self._kind = kind
        self._symbol = symbol
        self._meta = meta
        self._logger = logger
        self._emitter: Channel | None = None
        self._emit_lock = threading.Lock()
        # A plain flag, read on every send: cheaper than an Event and enough for a bool.
        self._stopped = False
        self._ack: Callable[[bytes], None] | None = None
        # None: the plugin process's SQLite store, opened on the first state call.
        self.state_store: Store | None = None
        self._state_scope: Scope | None = None
        # Where emit_async sends from: an async source's own sender thread (None: the
        # running loop's default executor).
        self._sender: Executor | None = None

    def __repr__(self) -> str:
        return (f"<Context {self._kind} {self._symbol!r} rule={self._meta.rule_id!r} "
                f"op={self._meta.op_id!r} instance={self._meta.instance_id}>")

    # -- wiring, used by the runtimes -------------------------------------------------

    def attach_emitter(self, channel: Channel) -> None:
        self._emitter = channel

    def attach_sender(self, sender: Executor) -> None:
        self._sender = sender

    def attach_acker(self, ack: Callable[[bytes], None]) -> None:
        self._ack = ack

    def mark_stopped(self) -> None:
        """After this, emit raises ChannelClosedError instead of waiting for eKuiper."""
        self._stopped = True

    # -- Context ----------------------------------------------------------------------

    def get_rule_id(self) -> str:
        return self._meta.rule_id

    def get_op_id(self) -> str:
        return self._meta.op_id

    def get_instance_id(self) -> int:
        return self._meta.instance_id

    def get_logger(self) -> logging.Logger:
        return self._logger

    def emit(self, message: Any, meta: Any = None) -> None:
        if self._emitter is None:
            raise TypeError(f"emit() is for sources; {self._kind} {self._symbol!r} cannot emit")
        frames: Sequence[bytes]
        if type(message) is dict or isinstance(message, Mapping) \
                or _encoding.as_record(message) is not None:
            # A NamedTuple or dataclass instance is one row, not a list of them.
            frames = (_protocol.encode_source_frame(message, meta),)
        elif isinstance(message, (list, tuple)):
            # eKuiper rejects a JSON array frame: each row travels on its own.
            frames = [_protocol.encode_source_frame(row, meta) for row in message]
        else:
            raise TypeError(
                f"emit() takes a dict (one row) or a list of dicts, got {type(message).__name__}"
            )
        with self._emit_lock:
            for frame in frames:
                self._send_blocking(frame)

    async def emit_async(self, message: Any, meta: Any = None) -> None:
        if self._stopped and self._emitter is not None:
            # Before the hand-over: a stopped source's sender takes no more work.
            raise ChannelClosedError(
                f"source {self._symbol!r} of rule {self._meta.rule_id!r} is stopped")
        # emit() on the sender thread: its backpressure waits there, not on the loop.
        import asyncio

        await asyncio.get_running_loop().run_in_executor(
            self._sender, lambda: self.emit(message, meta))

    def _send_blocking(self, frame: bytes) -> None:
        assert self._emitter is not None
        waited = 0
        while True:
            if self._stopped:
                raise ChannelClosedError(
                    f"source {self._symbol!r} of rule {self._meta.rule_id!r} is stopped"
                )
            try:
                self._emitter.send(frame)
                return
            except ChannelTimeout:
                # Backpressure: eKuiper is not reading. Wait rather than drop the row.
                waited += 1
                if waited == 5:
                    self._logger.warning("eKuiper is not taking rows; emit() keeps waiting")
            except ChannelClosedError:
                raise ChannelClosedError(
                    f"source {self._symbol!r} of rule {self._meta.rule_id!r} is stopped"
                ) from None

    def emit_error(self, error: str) -> None:
        if self._emitter is None:
            raise TypeError(
                f"emit_error() is for sources; {self._kind} {self._symbol!r} cannot emit"
            )
        text = str(error)
        self._logger.error("source error: %s", text)
        self.send_error_frame(text)

    def send_error_frame(self, text: str) -> int:
        """Make ``text`` a source exception in eKuiper (see encode_source_error_frame);
        returns the frame's length.

        Sent by the class's own loop even where metrics replace ``_send_blocking`` with
        one that counts rows: an error frame is no row (metrics count it by wrapping this).
        """
        frame = _protocol.encode_source_error_frame(text)
        with self._emit_lock:
            SymbolContext._send_blocking(self, frame)
        return len(frame)

    def ack_ok(self) -> None:
        if self._ack is None:
            raise TypeError(f"ack_ok() is for sinks; {self._kind} {self._symbol!r} cannot ack")
        self._ack(_protocol.ACK_OK)

    def ack_error(self, error: str) -> None:
        if self._ack is None:
            raise TypeError(f"ack_error() is for sinks; {self._kind} {self._symbol!r} cannot ack")
        self._ack(_protocol.encode_ack_error(str(error)))

    # -- state: ekuiper._state is imported on the first call, never on the row path ----

    def _state(self) -> tuple[Store, Scope]:
        from ekuiper import _state

        if self.state_store is None:
            self.state_store = _state.default_store()
        if self._state_scope is None:
            self._state_scope = _state.scope_for(self._kind, self._symbol, self._meta.rule_id,
                                                 self._meta.op_id, self._meta.instance_id)
        return self.state_store, self._state_scope

    def get_state(self, key: str, default: Any = None) -> Any:
        store, scope = self._state()
        return store.get(scope, key, default)

    def put_state(self, key: str, value: Any) -> None:
        store, scope = self._state()
        store.put(scope, key, value)

    def delete_state(self, key: str) -> bool:
        store, scope = self._state()
        return store.delete(scope, key)
