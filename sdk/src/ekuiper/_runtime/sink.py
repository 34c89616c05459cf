"""Runtime of one sink instance."""

from __future__ import annotations

import logging
import threading
from typing import Any

from ekuiper import _protocol
from ekuiper._kinds import SINK
from ekuiper._protocol import Control
from ekuiper._runtime.base import FailureLog, SymbolRuntime, call_bounded, exception_text
from ekuiper._runtime.context import SymbolContext
from ekuiper._transport import Channel, ChannelTimeout, Transport
from ekuiper.errors import ChannelClosedError, ProtocolError
from ekuiper.sink import Sink

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

    @classmethod
    def for_plugin(cls, control: Control, symbol: Any, plugin_name: str,
                   transport: Transport, send_timeout_ms: int,
                   logger: logging.Logger) -> SinkRuntime:
        return cls(control, symbol, transport, send_timeout_ms, logger)

    def start(self) -> None:
        self.sink.configure(dict(self.control.config))
        self.data = self.transport.sink(self.control.meta)
        try:
            self.acks = self.transport.sink_ack(self.control.meta, self.send_timeout_ms)
        except Exception:
            self.data.close()
            raise
        self._instrument()
        self._spawn(self._run)

    def _run(self) -> None:
        assert self.data is not None
        open_error: str | None = None
        try:
            self.sink.open(self.ctx)
        except Exception as exc:
            self.first_error = self.first_error or exc
            open_error = (f"open() of sink {self.control.symbol_name!r} raised "
                          f"{exception_text(exc)}")
            self._failed_open(open_error)
            self.logger.exception("open() raised; every message fails until the rule restarts")
        while True:
            try:
                raw = self.data.recv()
            except ChannelClosedError:
                return
            self._deliver(raw, open_error)

    def _deliver(self, raw: bytes, open_error: str | None) -> None:
        try:
            self._deliver_one(raw, open_error)
        finally:
            self.delivered += 1

    def _deliver_one(self, raw: bytes, open_error: str | None) -> None:
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
        if self.data is not None:
            self.data.close()
        self._join(f"collect() of {self.control.label}")
        call_bounded(lambda: self.sink.close(self.ctx), f"close() of {self.control.label}",
                     self.logger)
        if self.acks is not None:
            self.acks.close()
