"""Let a debugger attach to the plugin process: ``EKUIPER_PLUGIN_DEBUG``.

    EKUIPER_PLUGIN_DEBUG=5678              listen on 127.0.0.1:5678
    EKUIPER_PLUGIN_DEBUG=0.0.0.0:5678      listen on every interface (inside a container)
    EKUIPER_PLUGIN_DEBUG_WAIT=15           seconds to wait for a client before serving
                                           (default 15; 0: do not wait)

The plugin process (``lifecycle.run``) then listens with debugpy (``pip install
'ekuiper-plugin-sdk[debug]'`` into the Python eKuiper starts plugins with) and waits for
a client before it connects to eKuiper, so breakpoints in ``configure`` and ``open`` are
hit. eKuiper waits for that connection only ``portable.initTimeout`` (v2 ships 60s, v1.14
5000 ms) and kills the process after: keep the wait below it, or raise initTimeout
(``KUIPER__PORTABLE__INITTIMEOUT``). After the wait, with or without a client, the plugin
serves; a debugger can still attach later.

A bad value, a missing debugpy or a port in use is logged as an error and the plugin
serves without a debugger: a debug setting never stops a plugin from running.

:func:`parse_debug` is pure; :func:`wait_for_debugger` runs on the main thread before
any socket to eKuiper exists, and blocks at most the wait.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ekuiper._runtime.lifecycle import DEBUG_ENV

__all__ = ["DEBUG_ENV", "DEBUG_WAIT_ENV", "DEFAULT_WAIT_S", "DebugSettings", "parse_debug",
           "wait_for_debugger"]

DEBUG_WAIT_ENV = "EKUIPER_PLUGIN_DEBUG_WAIT"
# Below eKuiper 2.x's shipped initTimeout (60s) and ekuiper.testing's handshake wait (20 s).
DEFAULT_WAIT_S = 15.0
_INSTALL_HINT = ("install it into the Python eKuiper runs plugins with (portable.pythonBin): "
                 "pip install 'ekuiper-plugin-sdk[debug]'")


class DebugSettingError(ValueError):
    """EKUIPER_PLUGIN_DEBUG or EKUIPER_PLUGIN_DEBUG_WAIT cannot be read; says which, why."""


@dataclass(frozen=True)
class DebugSettings:
    host: str
    port: int
    wait: float
    """Seconds to wait for a client; 0: none."""


def parse_debug(env: Mapping[str, str]) -> DebugSettings | None:
    """The settings ``env`` asks for; None when EKUIPER_PLUGIN_DEBUG is unset or empty.

    Raises DebugSettingError naming the variable, the value and the accepted forms.
    """
    raw = env.get(DEBUG_ENV, "").strip()
    if not raw:
        return None
    host, sep, port_text = raw.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    host = host.strip("[]")  # [::1]:5678
    if sep and not host:
        raise DebugSettingError(f"{DEBUG_ENV}={raw!r}: the host before ':' is empty; give "
                                "PORT or HOST:PORT, e.g. 5678 or 0.0.0.0:5678")
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise DebugSettingError(f"{DEBUG_ENV}={raw!r}: the port must be a number from 1 to "
                                "65535; give PORT or HOST:PORT, e.g. 5678 or 0.0.0.0:5678")
    wait_text = env.get(DEBUG_WAIT_ENV, "").strip()
    wait = DEFAULT_WAIT_S
    if wait_text:
        try:
            wait = float(wait_text)
        except ValueError:
            wait = math.nan
        if not (math.isfinite(wait) and wait >= 0):
            raise DebugSettingError(f"{DEBUG_WAIT_ENV}={wait_text!r}: give the seconds to "
                                    "wait for a debugger as a number, 0 or more (0: do not "
                                    "wait)")
    return DebugSettings(host, int(port_text), wait)


def _debugpy() -> Any:
    # Only imported when asked for: a plugin that is not being debugged never loads it.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # its frozen-modules note
    import debugpy  # type: ignore[import-not-found,unused-ignore]

    return debugpy


def _check_free(host: str, port: int) -> None:
    """OSError when (host, port) cannot be listened on now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def wait_for_debugger(env: Mapping[str, str], logger: logging.Logger) -> bool:
    """Listen and wait as ``env`` asks; True when a client attached. Never raises.

    Call on the main thread before the plugin opens any socket to eKuiper.
    """
    try:
        settings = parse_debug(env)
    except DebugSettingError as exc:
        logger.error("%s; serving without a debugger", exc)
        return False
    if settings is None:
        return False
    try:
        debugpy = _debugpy()
    except ImportError:
        logger.error("%s is set but debugpy is not installed: %s; serving without a "
                     "debugger", DEBUG_ENV, _INSTALL_HINT)
        return False
    where = f"{settings.host}:{settings.port}"
    try:
        # debugpy's in-process listener binds on a thread of its own and only prints
        # there when the port is taken: find out here, where it can be said.
        _check_free(settings.host, settings.port)
        # In process: no adapter process to outlive the plugin when eKuiper kills it.
        debugpy.listen((settings.host, settings.port), in_process_debug_adapter=True)
    except Exception as exc:  # debugpy raises RuntimeError and OSError alike
        logger.error("debugpy cannot listen on %s (%s: %s); serving without a debugger",
                     where, type(exc).__name__, exc)
        return False
    if settings.wait <= 0:
        logger.warning("debugpy listens on %s; not waiting for a client (%s=0)", where,
                       DEBUG_WAIT_ENV)
        return False
    logger.warning("waiting up to %g s for a debugger to attach to %s (%s); eKuiper's "
                   "portable.initTimeout must be longer", settings.wait, where, DEBUG_ENV)
    waiter = threading.Thread(target=debugpy.wait_for_client, name="ekuiper-debug-wait",
                              daemon=True)
    waiter.start()
    waiter.join(settings.wait)
    if waiter.is_alive():
        debugpy.wait_for_client.cancel()
        logger.warning("no debugger attached within %g s; serving (attach to %s any time)",
                       settings.wait, where)
        return False
    logger.info("debugger attached on %s", where)
    return True
