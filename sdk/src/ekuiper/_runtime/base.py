"""What every symbol runtime shares: bounded calls into user code, stop-once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ekuiper._protocol import Control

if TYPE_CHECKING:
    from ekuiper._metrics import SymbolStats
    from ekuiper._transport import Transport

__all__ = [
    "CLOSE_TIMEOUT_S",
    "FailureLog",
    "SymbolRuntime",
    "call_bounded",
    "describe_exception",
    "exception_text",
]

# How long stop waits for user code (close, a running open/collect) before moving on.
CLOSE_TIMEOUT_S = 5.0


def describe_exception(exc: BaseException) -> str:
    """The text eKuiper shows for an exception: its message, or its type if it has none."""
    text = str(exc).strip()
    return text if text else type(exc).__name__


def exception_text(exc: BaseException) -> str:
    """The text eKuiper shows for an exception from plugin code, read like a traceback's
    last line: ``TypeError: get_average() missing 1 required positional argument``.

    The type alone when there is no message. Starting with a type name, the text may
    start with ``h``: on the control channel it goes through
    ``_protocol.control_error_reply``, which never lets such a text out as it is.
    """
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


class FailureLog:
    """Logs user-code failures without flooding: one traceback per raise site.

    A sink or function failing on every row would otherwise write a traceback per row;
    after the first, each failure from the same place is one line.
    """

    _MAX_SITES = 100

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._seen: set[tuple[str, str, int]] = set()

    def report(self, what: str, exc: BaseException, level: int = logging.ERROR,
               outcome: str = "") -> None:
        """Log that ``what`` raised ``exc``; ``outcome`` ("; the row gets null") follows."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        site = (type(exc).__name__, tb.tb_frame.f_code.co_filename if tb else "",
                tb.tb_lineno if tb else 0)
        if site in self._seen:
            self.logger.log(level, "%s raised %s: %s%s", what, type(exc).__name__,
                            describe_exception(exc), outcome)
            return
        if len(self._seen) < self._MAX_SITES:
            self._seen.add(site)
        self.logger.log(level, "%s raised%s (traceback shown once per place it is raised)",
                        what, outcome, exc_info=exc)


def call_bounded(fn: Callable[[], Any], what: str, logger: logging.Logger,
                 timeout: float = CLOSE_TIMEOUT_S) -> None:
    """Run user code on a helper thread and wait at most ``timeout`` seconds for it.

    An exception is logged with its traceback; a call still running after the timeout is
    logged and left behind (Python cannot stop a thread).
    """
    def run() -> None:
        try:
            fn()
        except Exception:
            logger.exception("%s raised", what)

    helper = threading.Thread(target=run, name=what, daemon=True)
    helper.start()
    helper.join(timeout)
    if helper.is_alive():
        logger.error("%s did not return within %g s; moving on without it", what, timeout)


class SymbolRuntime:
    """One running symbol instance: started by a start command, ended by stop().

    ``start`` runs on the control thread and raises when the symbol cannot run, so the
    error reaches eKuiper as the start command's reply. ``stop`` may be called from any
    thread, any number of times; the symbol's ``close`` runs exactly once.

    ``stats`` is None unless metrics are on (PluginRuntime sets it before ``start``);
    the counting points go in at ``start`` (``_instrument``), so with metrics off a row
    runs no extra code. Error paths may count with ``if self.stats is not None: ...``.
    """

    stats: SymbolStats | None = None

    def __init__(self, control: Control, logger: logging.Logger) -> None:
        self.control = control
        self.logger = logger
        self._stop_lock = threading.Lock()
        self._stopped = False
        self.thread: threading.Thread | None = None

    @classmethod
    def for_plugin(cls, control: Control, symbol: Any, plugin_name: str,
                   transport: Transport, send_timeout_ms: int,
                   logger: logging.Logger) -> SymbolRuntime:
        """The runtime a plugin builds for a start command (on its control thread).

        One signature for every kind, so the plugin picks the class from the table of
        kinds alone; each kind takes what it needs of the plugin's settings.
        """
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._shutdown()

    @property
    def stopping(self) -> bool:
        return self._stopped

    def _shutdown(self) -> None:
        raise NotImplementedError

    def _converted_conf(self, symbol: Any) -> Any:
        """The start command's config as ``symbol.configure`` takes it: converted to the
        class's ``config_type`` when it declares one, else a plain copy.

        Raises what the conversion refuses (the start's error names the field). Nothing
        of the typed machinery is imported for a class without ``config_type``.
        """
        conf: Any = dict(self.control.config)
        if getattr(type(symbol), "config_type", None) is None:
            return conf
        from ekuiper._runtime.configdecl import declared

        config_type = declared(type(symbol), self.logger)
        if config_type is None:
            return conf
        from ekuiper._runtime.typed import typed_conf

        return typed_conf(symbol, config_type, conf,
                          f"{self.control.noun} {self.control.symbol_name!r}", self.logger)

    def _instrument(self) -> None:
        """Install the metrics counting points (start, before the thread is spawned)."""
        if self.stats is not None:
            from ekuiper._runtime.instrument import instrument
            instrument(self)

    def _failed_open(self, text: str) -> None:
        """open() raised: the symbol's health says so from now on."""
        if self.stats is not None:
            self.stats.open_failed = True
            self.stats.fail(text, time.time())

    def _spawn(self, target: Callable[[], None]) -> None:
        self.thread = threading.Thread(target=target, name=self.control.label, daemon=True)
        self.thread.start()

    def _join(self, what: str) -> None:
        if self.thread is None or self.thread is threading.current_thread():
            return
        self.thread.join(CLOSE_TIMEOUT_S)
        if self.thread.is_alive():
            self.logger.error("%s did not return within %.0f s after stop; its thread is left "
                              "running", what, CLOSE_TIMEOUT_S)
