"""The control loop and the registry of running symbols."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

from ekuiper import _logging, _protocol
from ekuiper._kinds import BY_WIRE, FUNCTION
from ekuiper._protocol import Control
from ekuiper._runtime.base import CLOSE_TIMEOUT_S, SymbolRuntime, exception_text
from ekuiper._runtime.config import PluginConfig
from ekuiper._runtime.function import FunctionRuntime
from ekuiper._transport import Channel, Transport
from ekuiper.errors import ChannelClosedError, EkuiperError, SymbolError, SymbolNotFoundError

__all__ = ["PluginRuntime"]

# How long shutdown lets a start or stop command that is already running finish first.
COMMAND_WAIT_S = CLOSE_TIMEOUT_S


class PluginRuntime:
    """Serves one plugin's control channel and owns every symbol it started.

    Threads: ``serve`` runs the control loop (one command at a time, each answered before
    the next is read); ``shutdown`` may be called from any other thread and stops every
    symbol exactly once. ``handle`` is the loop's body, usable without sockets.

    A start that overlaps shutdown never leaves a symbol running: shutdown first lets the
    command in progress finish and answer (at most COMMAND_WAIT_S), and a start that finds
    shutdown begun when it would register its symbol stops that symbol itself and is
    refused.
    """

    def __init__(self, config: PluginConfig, transport: Transport,
                 send_timeout_ms: int = 1000, logger: logging.Logger | None = None) -> None:
        self.config = config
        self.transport = transport
        self.send_timeout_ms = send_timeout_ms
        self.logger = logger or logging.getLogger(_logging.PLUGIN_LOGGER_NAME)
        self.symbols: dict[tuple[str, str, int, str], SymbolRuntime] = {}
        self.functions: dict[str, FunctionRuntime] = {}
        # _lock guards the registries, _closing and _control; _busy is held for the whole
        # of one command and its reply, so shutdown can wait for the one in progress.
        self._lock = threading.Lock()
        self._busy = threading.RLock()
        self._closing = False
        self._control: Channel | None = None
        # Metrics: on when lifecycle sets it (each runtime built then gets a SymbolStats);
        # connected is what /health reports as the control channel's state.
        self.metrics_on = False
        self.connected = False

    # -- control loop -----------------------------------------------------------------

    def serve(self) -> None:
        """Handshake, then answer commands until the control channel is closed.

        The control channel never times out: eKuiper 1.x fails a command whose reply is
        a second handshake, and eKuiper itself waits up to an hour between commands.
        """
        control = self.transport.control(self.config.name)
        with self._lock:
            if self._closing:
                control.close()
                return
            self._control = control
        try:
            control.send(_protocol.HANDSHAKE)
            self.connected = True
            self.logger.info("plugin %r connected to eKuiper", self.config.name)
            while True:
                raw = control.recv()
                # The reply goes out before shutdown closes the channel: a start refused
                # because shutdown began still tells eKuiper why.
                with self._busy:
                    control.send(self.handle(raw))
        except ChannelClosedError:
            if not self._closing:
                raise
        finally:
            self.connected = False

    def handle(self, raw: bytes) -> bytes:
        """Answer one control frame with ``ok`` or an error text; never raises."""
        try:
            command = _protocol.parse_command(raw)
        except Exception as exc:  # whatever eKuiper sent, the loop must go on
            self.logger.error("bad control command: %s", exc)
            return _protocol.control_error_reply(str(exc))
        try:
            with self._busy:
                if command.cmd == "start":
                    self._start(command.control)
                else:
                    self._stop(command.control)
        except EkuiperError as exc:
            self.logger.error("%s", exc)
            return _protocol.control_error_reply(str(exc))
        except Exception as exc:  # a bug of ours must not end the control loop
            self.logger.exception("failed to %s %s", command.cmd, command.control.label)
            return _protocol.control_error_reply(
                f"cannot {command.cmd} {command.control.label}: {exception_text(exc)}"
            )
        return _protocol.CONTROL_OK

    # -- start/stop -------------------------------------------------------------------

    def _start(self, control: Control) -> None:
        with self._lock:
            closing = self._closing
        if closing:
            raise _shutting_down(control)
        if control.kind == FUNCTION.wire:
            if control.symbol_name in self.functions:
                self.logger.debug("%s already serving", control.label)
                return
        elif control.key in self.symbols:
            # eKuiper's view wins: it only restarts what it believes is not running.
            self.logger.warning("%s was still running; restarting it", control.label)
            self._stop(control)
        runtime = self._build(control)
        start_symbol(runtime)
        self._register(runtime)
        self.logger.info("started %s", control.label)
        if control.kind == FUNCTION.wire:
            self._serve_open_functions(control)

    def _serve_open_functions(self, started: Control) -> None:
        """Also serve this plugin's other functions whose channel eKuiper has open.

        Why: eKuiper 2.x remembers every function's start command under one empty key,
        so when it starts the plugin process again (a replace by PUT, or after a crash)
        it replays the start of one function only; the others' channels stay open on its
        side and their calls time out for good. A channel eKuiper listens on is one it
        made for a start it sent before, so serving it is what eKuiper expects. Costs a
        stat per other function (and a connect probe where its socket file exists), once
        per function start; transports without the probe (tests') skip it.
        """
        listening = getattr(self.transport, "function_listening", None)
        if listening is None:
            return
        for name in sorted(self.config.factories(FUNCTION.wire)):
            if name in self.functions or not listening(name):
                continue
            sibling = started._replace(symbol_name=name)
            try:
                runtime = self._build(sibling)
                start_symbol(runtime)
                self._register(runtime)
            except EkuiperError as exc:
                self.logger.warning("%s not served along: %s", sibling.label, exc)
                continue
            self.logger.info("started %s too: eKuiper has its channel open (it replays "
                             "one function start only)", sibling.label)

    def _register(self, runtime: SymbolRuntime) -> None:
        """Add a started runtime to the registry, unless shutdown has begun meanwhile."""
        control = runtime.control
        with self._lock:
            closing = self._closing
            if not closing:
                if isinstance(runtime, FunctionRuntime):
                    self.functions[control.symbol_name] = runtime
                else:
                    self.symbols[control.key] = runtime
        if closing:
            # shutdown may already have taken the registry without this runtime in it.
            runtime.stop()
            raise _shutting_down(control)

    def _build(self, control: Control) -> SymbolRuntime:
        factory = self.config.get(control.kind, control.symbol_name)
        if factory is None:
            raise SymbolNotFoundError(
                self.config.describe_missing(control.kind, control.symbol_name)
            )
        try:
            symbol: Any = factory()
        except Exception as exc:
            self.logger.exception("factory of %s raised", control.label)
            raise SymbolError(
                f"cannot create {control.noun} {control.symbol_name!r}: its factory raised "
                f"{exception_text(exc)}"
            ) from exc
        kind = BY_WIRE[control.kind]
        if not callable(getattr(symbol, kind.method, None)):
            raise SymbolError(
                f"the factory of {control.noun} {control.symbol_name!r} returned "
                f"{type(symbol).__name__}, which has no {kind.method}() method; return an "
                f"instance of ekuiper.{kind.base.__name__}"
            )
        context = (f"{self.config.name}/{control.symbol_name}" if control.meta.is_empty else
                   f"{self.config.name}/{control.symbol_name} rule={control.meta.rule_id} "
                   f"op={control.meta.op_id}/{control.meta.instance_id}")
        logger = _logging.symbol_logger(context, control.config.get("logLevel"))
        runtime = kind.runtime_class().for_plugin(control, symbol, self.config.name,
                                                  self.transport, self.send_timeout_ms, logger)
        if self.metrics_on:
            from ekuiper._metrics import SymbolStats
            from ekuiper._runtime.instrument import labels_for
            runtime.stats = SymbolStats(labels_for(self.config.name, runtime), time.time())
        return runtime

    def running(self) -> list[SymbolRuntime]:
        """The symbols running now (any thread; a snapshot)."""
        with self._lock:
            return [*self.symbols.values(), *self.functions.values()]

    def _stop(self, control: Control) -> None:
        with self._lock:
            runtime = self.symbols.pop(control.key, None)
            if runtime is None and control.kind == FUNCTION.wire:
                runtime = self.functions.pop(control.symbol_name, None)
            functions = list(self.functions.values())
        if control.meta.rule_id:
            # A stop means the rule is going away: its function contexts go with it.
            for function in functions:
                function.forget_rule(control.meta.rule_id)
        if runtime is None:
            # Stopping what is not running is what eKuiper wants anyway: answer ok.
            self.logger.warning("stop for %s, which is not running", control.label)
            return
        runtime.stop()
        self.logger.info("stopped %s", control.label)

    # -- shutdown ---------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop every symbol (each ``close`` once) and close the control channel.

        Call it from any thread but the control loop's: it blocks while the command in
        progress finishes and its reply is sent (at most COMMAND_WAIT_S together), then
        while each symbol stops.
        """
        with self._lock:
            self._closing = True
        settled = self._busy.acquire(timeout=COMMAND_WAIT_S)
        if not settled:
            self.logger.error("a start or stop command was still running after %g s; "
                              "shutting down without waiting for it", COMMAND_WAIT_S)
        try:
            with self._lock:
                runtimes = [*self.symbols.values(), *self.functions.values()]
                self.symbols.clear()
                self.functions.clear()
                control, self._control = self._control, None
            for runtime in runtimes:
                runtime.stop()
            # The event loop exists only if an async symbol ever started.
            aio = sys.modules.get("ekuiper._runtime.aio")
            if aio is not None:
                aio.stop(self.logger)
            if control is not None:
                control.close()
        finally:
            if settled:
                self._busy.release()


def _shutting_down(control: Control) -> SymbolError:
    return SymbolError(f"cannot start {control.label}: the plugin is shutting down")


def start_symbol(runtime: SymbolRuntime) -> None:
    """Run a runtime's start, turning a user exception into a SymbolError with its text."""
    control = runtime.control
    try:
        runtime.start()
    except EkuiperError:
        raise
    except Exception as exc:
        runtime.logger.exception("starting %s failed", control.label)
        raise SymbolError(
            f"{control.noun} {control.symbol_name!r} failed to start: "
            f"{exception_text(exc)}"
        ) from exc

