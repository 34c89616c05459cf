"""Runtime of one sink instance."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ekuiper import _protocol
from ekuiper._kinds import SINK
from ekuiper._protocol import Control
from ekuiper._runtime.asyncness import SINK_METHODS, async_methods
from ekuiper._runtime.base import (
    CLOSE_TIMEOUT_S,
    FailureLog,
    SymbolRuntime,
    call_bounded,
    exception_text,
)
from ekuiper._runtime.context import SymbolContext
from ekuiper._transport import Channel, ChannelTimeout, Transport
from ekuiper.errors import ChannelClosedError, ProtocolError
from ekuiper.sink import Sink

if TYPE_CHECKING:
    from ekuiper._policy import ErrorPolicy
    from ekuiper._runtime.aio import AsyncSink

__all__ = ["SinkRuntime"]


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


class SinkRuntime(SymbolRuntime):
    """Receives eKuiper's sink frames on its own thread and hands them to ``collect``.

    start (control thread): ``configure`` -> listen on the data channel (eKuiper dials it
    as soon as the start is answered) -> dial the ack channel -> spawn the loop.
    Loop (sink thread): ``open`` once, then ``collect`` per frame, acking each frame when
    the action has ``requireAck``. stop (any thread): data channel closed -> wait
    (bounded) for the current ``collect`` -> ``close`` (bounded) -> ack channel closed.

    A sink with an async method is wrapped at start in ``aio.AsyncSink``, a sync Sink
    running the async methods on the plugin's event loop (an async collect may have
    ``max_in_flight`` messages in flight without requireAck); its close first waits for
    the collects in flight.
    """

    def __init__(self, control: Control, sink: Sink, transport: Transport,
                 send_timeout_ms: int, logger: logging.Logger) -> None:
        super().__init__(control, logger)
        self.sink = sink
        self.transport = transport
        self.send_timeout_ms = send_timeout_ms
        self.require_ack = _truthy(control.config.get("requireAck", False))
        self.decode_rows = bool(getattr(sink, "decode_rows", False))
        self.ctx = SymbolContext(SINK.noun, control.symbol_name, control.meta, logger)
        self.ctx.attach_acker(self._ack)
        self.data: Channel | None = None
        self.acks: Channel | None = None
        self._acked = False
        self._ack_lock = threading.Lock()
        self._ignored_ack_logged = False
        self._failures = FailureLog(logger)
        # Messages handled so far, and the first exception of open()/collect() (kept for
        # ekuiper.testing, which re-raises it; one, so a failing sink holds no growing list).
        self.delivered = 0
        self.first_error: BaseException | None = None
        # The collect retry policy (set by start) and its counters: retries made, and
        # messages acked as failed after their last retry.
        self.retry: ErrorPolicy | None = None
        self.retries = 0
        self.retry_exhausted = 0
        self.wakeup = threading.Event()  # set by stop: a retry's backoff ends at once
        self._collect_retrying: Callable[[SinkRuntime, Any, ErrorPolicy], None]
        self._holding = False
        self._held: bytes | None = None
        self._async: AsyncSink | None = None  # wrapping an async sink

    @classmethod
    def for_plugin(cls, control: Control, symbol: Any, plugin_name: str,
                   transport: Transport, send_timeout_ms: int,
                   logger: logging.Logger) -> SinkRuntime:
        return cls(control, symbol, transport, send_timeout_ms, logger)

    def start(self) -> None:
        config = self.control.config
        if getattr(self.sink, "on_error", None) is not None \
                or any(key.startswith("collect") for key in config):
            from ekuiper import _policy  # only sinks that use a retry policy load it

            self.retry = _policy.sink_policy(self.control.symbol_name,
                                             getattr(self.sink, "on_error", None), config)
            if self.retry is not None:
                from ekuiper._runtime.retry import collect_with_retry

                self._collect_retrying = collect_with_retry
        conf = self._converted_conf(self.sink)
        if async_methods(self.sink, SINK_METHODS):
            from ekuiper._runtime.aio import AsyncSink

            self.sink = self._async = AsyncSink(
                self.sink, self.control.label, self.logger, self.require_ack,
                lambda exc: self._failed(exc, exception_text(exc)),
                retrying=self.retry is not None)
        self.sink.configure(conf)
        self.data = self.transport.sink(self.control.meta, self.require_ack)
        try:
            self.acks = self.transport.sink_ack(self.control.meta, self.send_timeout_ms)
        except Exception:
            self.data.close()
            raise
        self._instrument()
        self._spawn(self._run)

    def _run(self) -> None:
        open_error: str | None = None
        try:
            self.sink.open(self.ctx)
        except Exception as exc:
            self.first_error = self.first_error or exc
            open_error = (f"open() of sink {self.control.symbol_name!r} raised "
                          f"{exception_text(exc)}")
            self._failed_open(open_error)
            self.logger.exception("open() raised; every message fails until the rule restarts")
        self._receive(open_error)

    def _receive(self, open_error: str | None) -> None:
        """The message loop, on the sink's thread until the data channel closes.

        Metrics replace it (instrument), with a copy that counts: what this does, it must.
        ``delivered`` counts each message once handled, whatever collect() did.
        """
        assert self.data is not None
        recv, deliver = self.data.recv, self._deliver
        while True:
            try:
                raw = recv()
            except ChannelClosedError:
                return
            try:
                deliver(raw, open_error)
            finally:
                self.delivered += 1

    def _deliver(self, raw: bytes, open_error: str | None) -> None:
        if self.require_ack:
            with self._ack_lock:
                self._acked = False
        if open_error is not None:
            self.logger.error("dropping a message: %s", open_error)
            self._auto_ack(_protocol.encode_ack_error(open_error))
            return
        data: Any = raw
        if self.decode_rows:
            try:
                data = _protocol.decode_sink_rows(raw)
            except ProtocolError as exc:
                # The SDK's own text already says what is wrong with the frame.
                self._failed(exc, str(exc))
                return
        if self.retry is not None:
            self._collect_retrying(self, data, self.retry)
            return
        try:
            self.sink.collect(self.ctx, data)
        except ChannelClosedError:
            if not self.stopping:
                self.logger.error("ack channel closed while the rule still runs")
        except Exception as exc:
            self._failed(exc, exception_text(exc))
        else:
            self._auto_ack(_protocol.ACK_OK)

    def _failed(self, exc: Exception, text: str) -> None:
        if self.stats is not None:
            self.stats.fail(text, time.time())
        self.first_error = self.first_error or exc
        self._failures.report("collect()", exc)
        self._auto_ack(_protocol.encode_ack_error(text))

    def _auto_ack(self, frame: bytes) -> None:
        if not self.require_ack:
            return
        with self._ack_lock:
            if self._acked:
                return
            self._acked = True
        self._send_ack(frame)

    def _ack(self, frame: bytes) -> None:
        """ctx.ack_ok / ctx.ack_error: the first ack of a message wins."""
        if not self.require_ack:
            if not self._ignored_ack_logged:
                self._ignored_ack_logged = True
                self.logger.debug("ack ignored: the rule action does not set requireAck")
            return
        with self._ack_lock:
            if self._acked:
                self.logger.warning("message already acknowledged; extra ack ignored")
                return
            self._acked = True
            if self._holding:
                self._held = frame  # a retried collect: sent after its last attempt
                return
        self._send_ack(frame)

    def hold_acks(self) -> None:
        """Before an attempt of a retried collect: its acks are kept, not sent."""
        with self._ack_lock:
            self._acked = False
            self._held = None
            self._holding = True

    def release_acks(self) -> None:
        """After the last attempt: send the ack it made, if any (else the auto ack will)."""
        with self._ack_lock:
            self._holding = False
            frame, self._held = self._held, None
        if frame is not None:
            self._send_ack(frame)

    def _send_ack(self, frame: bytes) -> None:
        assert self.acks is not None
        while not self.stopping:
            try:
                self.acks.send(frame)
                return
            except ChannelTimeout:
                continue  # eKuiper waits for this ack; keep offering it until stopped
            except ChannelClosedError:
                return

    def _shutdown(self) -> None:
        if self._async is not None:
            # Before the channel closes: a message waiting for a free slot must not keep
            # the sink's thread (and the stop) waiting for collects that may never end.
            self._async.begin_stop()
        self.wakeup.set()
        if self.data is not None:
            self.data.close()
        if self._async is not None:
            # A running collect gets CLOSE_TIMEOUT_S once: the thread's wait here, or
            # close()'s wait for the collects in flight, which then cancels what is left.
            if self.thread is not None and self.thread is not threading.current_thread():
                self.thread.join(CLOSE_TIMEOUT_S)
            self._async.close(self.ctx)  # bounded itself, step by step
            self._join(f"collect() of {self.control.label}")
        else:
            self._join(f"collect() of {self.control.label}")
            call_bounded(lambda: self.sink.close(self.ctx),
                         f"close() of {self.control.label}", self.logger)
        if self.acks is not None:
            self.acks.close()
