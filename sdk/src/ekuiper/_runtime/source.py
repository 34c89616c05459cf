"""Runtime of one source instance."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ekuiper._kinds import SOURCE
from ekuiper._protocol import Control
from ekuiper._runtime.asyncness import SOURCE_METHODS, async_methods
from ekuiper._runtime.base import (
    SymbolRuntime,
    call_bounded,
    describe_exception,
    exception_text,
)
from ekuiper._runtime.context import SymbolContext
from ekuiper._transport import Channel, Transport
from ekuiper.errors import ChannelClosedError
from ekuiper.source import Source

if TYPE_CHECKING:
    from ekuiper._runtime.aio import AsyncSource

__all__ = ["SourceRuntime"]


class SourceRuntime(SymbolRuntime):
    """Runs ``Source.open`` on its own thread and feeds eKuiper's source channel.

    start (control thread): ``configure`` -> dial the source channel -> spawn ``open``.
    stop (any thread): emit starts raising ChannelClosedError -> ``close`` (bounded) ->
    channel closed -> wait (bounded) for ``open`` to return.

    A source with an async method is wrapped at start in ``aio.AsyncSource``, a sync
    Source running the async methods on the plugin's event loop; its close also cancels
    what the source started.
    """

    def __init__(self, control: Control, source: Source, transport: Transport,
                 send_timeout_ms: int, logger: logging.Logger) -> None:
        super().__init__(control, logger)
        self.source = source
        self.transport = transport
        self.send_timeout_ms = send_timeout_ms
        self.ctx = SymbolContext(SOURCE.noun, control.symbol_name, control.meta, logger)
        self.channel: Channel | None = None
        # What open() raised, if it did (ekuiper.testing re-raises it).
        self.failure: BaseException | None = None
        self._async: AsyncSource | None = None  # wrapping an async source

    @classmethod
    def for_plugin(cls, control: Control, symbol: Any, plugin_name: str,
                   transport: Transport, send_timeout_ms: int,
                   logger: logging.Logger) -> SourceRuntime:
        return cls(control, symbol, transport, send_timeout_ms, logger)

    def start(self) -> None:
        conf = self._converted_conf(self.source)
        if async_methods(self.source, SOURCE_METHODS):
            from ekuiper._runtime.aio import AsyncSource

            self.source = self._async = AsyncSource(self.source, self.ctx, self.control.label,
                                                    self.logger)
        self.source.configure(self.control.datasource, conf)
        self.channel = channel = self.transport.source(self.control.meta, self.send_timeout_ms)
        self.ctx.attach_emitter(channel)
        self._instrument()
        self._spawn(self._run)

    def _run(self) -> None:
        try:
            self.source.open(self.ctx)
        except ChannelClosedError:
            if not self.stopping:
                self.logger.error("source channel closed while the rule still runs")
            return
        except Exception as exc:
            if self.stopping:
                self.logger.debug("open() raised after stop: %s", describe_exception(exc))
                return
            self.failure = exc
            self.logger.exception("open() raised; the source produces nothing until the "
                                  "rule restarts")
            self._report(f"open() raised {exception_text(exc)}")
            return
        if not self.stopping:
            self.logger.debug("open() returned; the source stays attached until the rule stops")

    def _report(self, text: str) -> None:
        try:
            self.ctx.send_error_frame(text)
        except ChannelClosedError:
            pass

    def _shutdown(self) -> None:
        self.ctx.mark_stopped()
        if self._async is not None:
            self._async.close(self.ctx)  # bounded itself, step by step
        else:
            call_bounded(lambda: self.source.close(self.ctx),
                         f"close() of {self.control.label}", self.logger)
        if self.channel is not None:
            self.channel.close()
        self._join(f"open() of {self.control.label}")
        if self._async is not None:
            self._async.finish()

