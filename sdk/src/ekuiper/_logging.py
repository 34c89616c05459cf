"""Logging for plugins: one handler on the ``ekuiper`` logger, context on every line.

Each running symbol gets a real ``logging.Logger`` that is *not* registered with the
logging manager (so loggers of finished rules are garbage-collected) and whose parent is
``ekuiper.plugin``; a filter stamps plugin, symbol, rule and operator on each record.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

__all__ = [
    "LOG_LEVEL_ENV",
    "configure_plugin_logging",
    "parse_level",
    "symbol_logger",
]

LOG_LEVEL_ENV = "EKUIPER_PLUGIN_LOG_LEVEL"
ROOT_NAME = "ekuiper"
PLUGIN_LOGGER_NAME = "ekuiper.plugin"
_FORMAT = "%(asctime)s %(levelname)s [%(ekuiper_context)s] %(message)s"
_SDK_MARK = "_ekuiper_sdk_handler"


def parse_level(value: Any) -> int | None:
    """Turn "debug", "INFO", 10 or "10" into a logging level; None when unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip().upper()
        if text.isdecimal():
            return int(text)
        if text == "WARN":
            text = "WARNING"
        level = logging.getLevelName(text)
        if isinstance(level, int):
            return level
    return None


class _StampContext(logging.Filter):
    """Stamps ``ekuiper_context`` on records that do not carry one yet."""

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "ekuiper_context"):
            record.ekuiper_context = self.context
        return True


class _FlushingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """StreamHandler that resolves sys.stderr at emit time (tests swap it) and flushes."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _descriptor_level(plugin_name: str) -> int | None:
    # eKuiper starts the plugin in its folder, next to <name>.json.
    try:
        with open(f"{plugin_name}.json", encoding="utf-8") as fh:
            descriptor = json.load(fh)
    except (OSError, ValueError):
        return None
    return parse_level(descriptor.get("logLevel")) if isinstance(descriptor, dict) else None


def configure_plugin_logging(plugin_name: str) -> logging.Logger:
    """Install the SDK's handler once and set the plugin-wide level.

    Level: ``EKUIPER_PLUGIN_LOG_LEVEL`` if set, else the descriptor's ``logLevel``, else
    INFO. Returns the ``ekuiper.plugin`` logger, the parent of every symbol logger.
    """
    level = parse_level(os.environ.get(LOG_LEVEL_ENV))
    if level is None:
        level = _descriptor_level(plugin_name)
    if level is None:
        level = logging.INFO
    sdk_root = logging.getLogger(ROOT_NAME)
    sdk_root.setLevel(level)
    root = logging.getLogger()
    installed = any(getattr(h, _SDK_MARK, False) for h in root.handlers + sdk_root.handlers)
    if not installed:
        handler = _FlushingHandler()
        setattr(handler, _SDK_MARK, True)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(_StampContext(plugin_name))
        if root.handlers:
            # The plugin configured logging itself: leave its setup alone, serve ours.
            sdk_root.addHandler(handler)
            sdk_root.propagate = False
        else:
            # Plugins written for the official SDK log with logging.info(): keep showing it.
            root.addHandler(handler)
            root.setLevel(level)
    return logging.getLogger(PLUGIN_LOGGER_NAME)


def symbol_logger(context: str, level: Any = None) -> logging.Logger:
    """A Logger for one running symbol; ``context`` is stamped on every line.

    ``level`` (the symbol's ``logLevel`` config) overrides the plugin-wide level.
    """
    logger = logging.Logger(f"{PLUGIN_LOGGER_NAME}[{context}]")
    logger.parent = logging.getLogger(PLUGIN_LOGGER_NAME)
    logger.addFilter(_StampContext(context))
    parsed = parse_level(level)
    if parsed is not None:
        logger.setLevel(parsed)
    return logger
