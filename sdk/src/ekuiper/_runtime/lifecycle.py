"""The plugin process: signals, parent death, orderly shutdown.

Threads: the main thread only waits (in short, interruptible waits, so Python can run
signal handlers there); the control loop runs on a daemon thread, and with metrics on
(METRICS_DIR_ENV) the exporter on another (see _runtime/exporter.py). Shutdown happens on
the main thread when SIGTERM/SIGINT arrives, when the parent process (eKuiper) is gone,
or when the control loop ends.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from types import FrameType

from ekuiper import _logging, _protocol
from ekuiper._kinds import KINDS
from ekuiper._runtime.config import PluginConfig
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper._transport import Transport, transport_from_env
from ekuiper.errors import PluginConfigError

__all__ = ["run"]

# How often the main thread looks for its parent: well inside the 2 s promise.
PARENT_POLL_S = 0.5
# Set by `ekuiper-plugin validate`: print the PluginConfig instead of serving it.
DESCRIBE_ENV = "EKUIPER_PLUGIN_DESCRIBE"
DESCRIBE_MARK = "EKUIPER_PLUGIN_CONFIG "
# Set to PORT or HOST:PORT: wait for a debugger first (ekuiper._runtime.debug).
DEBUG_ENV = "EKUIPER_PLUGIN_DEBUG"
# _metrics.DIR_ENV, spelled out so a plugin without metrics imports nothing of them.
METRICS_DIR_ENV = "EKUIPER_PLUGIN_METRICS_DIR"



def _typed_classes(config: PluginConfig) -> tuple[list[tuple[str, str, type]],
                                                  list[list[str]], list[str]]:
    """(kind plural, symbol, class) of each symbol declaring a config_type or typed call;
    [message, fix] warnings about declarations that are not used; the symbols whose
    factory is no class (``metadata`` names them: an official-SDK plugin registers
    lambdas, and ``validate`` must not warn of its style).

    Only factories that are classes: calling a factory could do anything.
    """
    from ekuiper._runtime.configdecl import config_declaration, is_record
    from ekuiper.function import _call_exec

    found = []
    warnings = []
    unseen: list[str] = []
    for kind in KINDS:
        for name, factory in sorted(config.factories(kind.wire).items()):
            if not isinstance(factory, type):
                unseen.append(f"{kind.noun} {name!r} is registered with a factory that is "
                              "not a class, so no metadata is generated from its code; "
                              "register the class itself to have it generated")
                continue
            config_type, why = config_declaration(factory)
            if why and not is_record(getattr(factory, "config_type", None)):
                warnings.append([f"{kind.noun} {name!r}: {why}",
                                 "make config_type a dataclass or TypedDict class and "
                                 "annotate conf with it, or rename the attribute if it is "
                                 "the plugin's own"])
            if config_type is not None or getattr(factory, "exec", None) is _call_exec:
                found.append((kind.plural, name, factory))
    return found, warnings, unseen


def run(config: PluginConfig, transport: Transport | None = None,
        argv: list[str] | None = None) -> int:
    """Serve ``config`` until told to stop; return the process exit code.

    Must be called from the main thread (signal handlers can only be set there).
    """
    if not isinstance(config, PluginConfig):
        raise PluginConfigError(
            f"plugin.start() takes a PluginConfig, got {type(config).__name__}"
        )
    if os.environ.get(DESCRIBE_ENV):
        described: dict[str, object] = {
            "name": config.name,
            **{kind.plural: sorted(config.factories(kind.wire)) for kind in KINDS}}
        typed, warnings, unseen = _typed_classes(config)
        if warnings:
            described["warnings"] = warnings
        if unseen:
            described["unseen"] = unseen
        if typed:
            from ekuiper._metadata import describe_metadata

            described["metadata"] = describe_metadata(typed)
        print(DESCRIBE_MARK + json.dumps(described), flush=True)
        return 0
    logger = _logging.configure_plugin_logging(config.name)
    _line_buffer_stdout()
    if os.environ.get(DEBUG_ENV):
        # Before any socket to eKuiper exists; the module loads only when asked for.
        from ekuiper._runtime.debug import wait_for_debugger

        wait_for_debugger(os.environ, logger)
    args = _protocol.parse_plugin_args(sys.argv[1:] if argv is None else argv)
    runtime = PluginRuntime(config, transport or transport_from_env(), args.send_timeout_ms,
                            logger)
    exporter = None
    if os.environ.get(METRICS_DIR_ENV, "").strip():
        from ekuiper._runtime.exporter import start_exporter
        exporter = start_exporter(runtime, logger)

    done = threading.Event()
    outcome = {"code": 0}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        done.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def serve() -> None:
        try:
            runtime.serve()
        except Exception:
            logger.exception("control channel failed; the plugin exits")
            outcome["code"] = 1
        done.set()

    parent = os.getppid()
    control = threading.Thread(target=serve, name="ekuiper-control", daemon=True)
    control.start()
    try:
        while not done.wait(PARENT_POLL_S):
            if os.getppid() != parent:
                logger.info("eKuiper (pid %d) is gone; stopping", parent)
                break
    finally:
        runtime.shutdown()
        # Only a plugin that used state has the module loaded: close its file.
        state = sys.modules.get("ekuiper._state")
        if state is not None:
            state.close_default()
        if exporter is not None:
            exporter.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("plugin %r stopped", config.name)
    return outcome["code"]


def _line_buffer_stdout() -> None:
    # eKuiper 1.x starts plugins without -u: make print() reach its log line by line.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(line_buffering=True)
        except (ValueError, OSError):
            pass


def exit_process(code: int) -> None:
    """End the process with ``code`` once every symbol is closed and output is flushed.

    It leaves through os._exit, not interpreter finalisation: nng's I/O threads can still
    be winding down when the interpreter tears pynng down, which now and then aborted the
    process (SIGABRT instead of exit 0), and non-daemon threads left by plugin code would
    keep it alive. So atexit handlers do not run; close() is the place for cleanup.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (ValueError, OSError):
            pass
    os._exit(code)
