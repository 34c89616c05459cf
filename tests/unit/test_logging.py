"""Unit tests for ekuiper._logging: levels, symbol loggers and the plugin handler."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ekuiper._logging import LOG_LEVEL_ENV, configure_plugin_logging, parse_level, symbol_logger

SDK_MARK = "_ekuiper_sdk_handler"
LINE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


def sdk_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, SDK_MARK, False)]


@pytest.fixture(autouse=True)
def clean_logging(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Isolate each test: no env level, no descriptor in cwd, logging state restored."""
    monkeypatch.delenv(LOG_LEVEL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    sdk = logging.getLogger("ekuiper")
    plugin = logging.getLogger("ekuiper.plugin")
    saved_root_level = root.level
    saved_sdk = (list(sdk.handlers), sdk.level, sdk.propagate)
    saved_plugin = (list(plugin.handlers), plugin.level)
    yield
    for handler in sdk_handlers(root):
        root.removeHandler(handler)
    root.setLevel(saved_root_level)
    sdk.handlers[:] = saved_sdk[0]
    sdk.setLevel(saved_sdk[1])
    sdk.propagate = saved_sdk[2]
    plugin.handlers[:] = saved_plugin[0]
    plugin.setLevel(saved_plugin[1])


@contextmanager
def root_handlers(*handlers: logging.Handler) -> Iterator[None]:
    """Give the root logger exactly ``handlers`` inside the block, then put back its own.

    Done inside the test body (not in a fixture) so that pytest's per-phase capture
    handlers, added to and removed from the root logger around each phase, never leak.
    """
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = handlers
    try:
        yield
    finally:
        root.handlers[:] = saved


# -- parse_level --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "level"), [
    ("debug", logging.DEBUG),
    ("INFO", logging.INFO),
    (" warning ", logging.WARNING),
    ("warn", logging.WARNING),
    ("Error", logging.ERROR),
    ("critical", logging.CRITICAL),
    ("10", 10),
    (" 25 ", 25),
    (15, 15),
])
def test_parse_level_accepts_names_and_numbers(value: object, level: int) -> None:
    """Level names (any case, WARN alias) and integers or digit strings map to levels."""
    assert parse_level(value) == level


@pytest.mark.parametrize("value", [None, "", "   ", "verbose", True, False, 10.0, ["debug"],
                                   "-10"])
def test_parse_level_unusable_value_is_none(value: object) -> None:
    """Unknown names, blanks, booleans and other types give None."""
    assert parse_level(value) is None


def test_parse_level_superscript_digit_is_none() -> None:
    """A string of non-decimal digit characters like '²' gives None, not an exception."""
    assert parse_level("²") is None


# -- symbol_logger ------------------------------------------------------------------------


def test_symbol_logger_is_a_plain_logger() -> None:
    """symbol_logger returns a real logging.Logger instance."""
    logger = symbol_logger("pysam/pyjson r1")
    assert type(logger) is logging.Logger


def test_symbol_logger_is_not_registered_with_the_manager() -> None:
    """The logger is absent from logging's registry, so it can be garbage-collected."""
    logger = symbol_logger("pysam/pyjson r-unregistered")
    assert logger.name not in logging.Logger.manager.loggerDict
    assert logger not in logging.Logger.manager.loggerDict.values()


def test_symbol_logger_name_and_parent() -> None:
    """The logger is named after its context and is a child of ekuiper.plugin."""
    logger = symbol_logger("pysam/print r1/op")
    assert logger.name == "ekuiper.plugin[pysam/print r1/op]"
    assert logger.parent is logging.getLogger("ekuiper.plugin")


def test_symbol_logger_stamps_context_on_records(caplog: pytest.LogCaptureFixture) -> None:
    """Each record from a symbol logger carries its context as ekuiper_context."""
    caplog.set_level(logging.INFO)
    symbol_logger("pysam/pyjson r1/op").info("row %d", 7)
    assert [(r.ekuiper_context, r.getMessage()) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("pysam/pyjson r1/op", "row 7")
    ]


def test_symbol_logger_context_in_formatted_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The SDK handler's line shows the symbol's context between brackets."""
    with root_handlers(logging.NullHandler()):
        configure_plugin_logging("pysam")
        symbol_logger("pysam/pyjson r1/op").warning("broker %s down", "b1")
    err = capsys.readouterr().err
    assert re.fullmatch(LINE + r" WARNING \[pysam/pyjson r1/op\] broker b1 down\n", err), err


def test_plugin_logger_line_shows_plugin_name(capsys: pytest.CaptureFixture[str]) -> None:
    """A record from the plugin logger itself is stamped with the plugin name."""
    with root_handlers(logging.NullHandler()):
        configure_plugin_logging("pysam").info("connected")
    err = capsys.readouterr().err
    assert re.fullmatch(LINE + r" INFO \[pysam\] connected\n", err), err


def test_symbol_logger_level_override_is_set() -> None:
    """A usable level argument sets the symbol logger's own level."""
    assert symbol_logger("ctx", "debug").level == logging.DEBUG


def test_symbol_logger_without_level_inherits_plugin_level() -> None:
    """Without a level the symbol logger follows the ekuiper logger's level."""
    logging.getLogger("ekuiper").setLevel(logging.ERROR)
    logger = symbol_logger("ctx")
    assert logger.level == logging.NOTSET
    assert logger.getEffectiveLevel() == logging.ERROR


def test_symbol_logger_unusable_level_is_ignored() -> None:
    """An unusable level argument leaves the logger at NOTSET (inherit)."""
    assert symbol_logger("ctx", "loud").level == logging.NOTSET


def test_symbol_level_override_lets_debug_through(capsys: pytest.CaptureFixture[str]) -> None:
    """A symbol at DEBUG logs debug lines while the plugin-wide level is INFO."""
    with root_handlers(logging.NullHandler()):
        configure_plugin_logging("pysam")
        symbol_logger("loud", "debug").debug("detail")
        symbol_logger("quiet").debug("hidden")
    err = capsys.readouterr().err
    assert re.fullmatch(LINE + r" DEBUG \[loud\] detail\n", err), err


def test_symbol_level_override_suppresses_below_it(capsys: pytest.CaptureFixture[str]) -> None:
    """A symbol at ERROR drops warnings the plugin-wide INFO level would show."""
    with root_handlers(logging.NullHandler()):
        configure_plugin_logging("pysam")
        symbol_logger("strict", "error").warning("dropped")
        symbol_logger("normal").warning("shown")
    err = capsys.readouterr().err
    assert re.fullmatch(LINE + r" WARNING \[normal\] shown\n", err), err


# -- configure_plugin_logging -------------------------------------------------------------


def test_configure_returns_plugin_logger() -> None:
    """configure_plugin_logging returns the ekuiper.plugin logger."""
    assert configure_plugin_logging("pysam") is logging.getLogger("ekuiper.plugin")


@pytest.mark.parametrize(("env", "level"), [("debug", logging.DEBUG), ("WARN", logging.WARNING),
                                            ("40", logging.ERROR)])
def test_env_var_sets_ekuiper_logger_level(monkeypatch: pytest.MonkeyPatch, env: str,
                                           level: int) -> None:
    """EKUIPER_PLUGIN_LOG_LEVEL sets the level of the 'ekuiper' logger."""
    monkeypatch.setenv("EKUIPER_PLUGIN_LOG_LEVEL", env)
    configure_plugin_logging("pysam")
    assert logging.getLogger("ekuiper").level == level


def test_default_level_is_info() -> None:
    """Without env var or descriptor the 'ekuiper' logger is at INFO."""
    configure_plugin_logging("pysam")
    assert logging.getLogger("ekuiper").level == logging.INFO


def test_unusable_env_var_falls_back_to_info(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unusable EKUIPER_PLUGIN_LOG_LEVEL is ignored and INFO applies."""
    monkeypatch.setenv("EKUIPER_PLUGIN_LOG_LEVEL", "chatty")
    configure_plugin_logging("pysam")
    assert logging.getLogger("ekuiper").level == logging.INFO


def test_descriptor_log_level_applies_without_env(tmp_path: Path) -> None:
    """The descriptor <name>.json logLevel in the cwd sets the level when no env var is set."""
    (tmp_path / "pysam.json").write_text(json.dumps({"logLevel": "error"}))
    configure_plugin_logging("pysam")
    assert logging.getLogger("ekuiper").level == logging.ERROR


def test_env_var_beats_descriptor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EKUIPER_PLUGIN_LOG_LEVEL takes precedence over the descriptor's logLevel."""
    (tmp_path / "pysam.json").write_text(json.dumps({"logLevel": "error"}))
    monkeypatch.setenv("EKUIPER_PLUGIN_LOG_LEVEL", "debug")
    configure_plugin_logging("pysam")
    assert logging.getLogger("ekuiper").level == logging.DEBUG


def test_unreadable_descriptor_falls_back_to_info(tmp_path: Path) -> None:
    """A descriptor that is not JSON is ignored and INFO applies."""
    (tmp_path / "pysam.json").write_text("{not json")
    configure_plugin_logging("pysam")
    assert logging.getLogger("ekuiper").level == logging.INFO


def test_handler_goes_on_ekuiper_logger_when_root_configured() -> None:
    """With a root handler present, the SDK handler goes on 'ekuiper', which stops propagating."""
    foreign = logging.NullHandler()
    with root_handlers(foreign):
        configure_plugin_logging("pysam")
        root_after = logging.getLogger().handlers[:]
    sdk = logging.getLogger("ekuiper")
    assert len(sdk_handlers(sdk)) == 1
    assert sdk.propagate is False
    assert root_after == [foreign]


def test_handler_goes_on_root_when_root_unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no root handler, the SDK handler goes on root and root takes the plugin level."""
    monkeypatch.setenv("EKUIPER_PLUGIN_LOG_LEVEL", "warning")
    with root_handlers():
        configure_plugin_logging("pysam")
        root = logging.getLogger()
        on_root = sdk_handlers(root)
        root_level = root.level
    assert len(on_root) == 1
    assert root_level == logging.WARNING
    assert sdk_handlers(logging.getLogger("ekuiper")) == []


def test_root_handler_shows_plain_logging_calls(capsys: pytest.CaptureFixture[str]) -> None:
    """With no root handler, plain root-logger calls from plugin code show the plugin name."""
    with root_handlers():
        configure_plugin_logging("pysam")
        logging.getLogger().info("hello")
    err = capsys.readouterr().err
    assert re.fullmatch(LINE + r" INFO \[pysam\] hello\n", err), err


def test_configure_twice_installs_one_handler() -> None:
    """Calling configure_plugin_logging again does not add a second handler."""
    with root_handlers(logging.NullHandler()):
        configure_plugin_logging("pysam")
        configure_plugin_logging("pysam")
    assert len(sdk_handlers(logging.getLogger("ekuiper"))) == 1


def test_configure_twice_installs_one_handler_on_root() -> None:
    """With an unconfigured root, a second call does not add a second root handler."""
    with root_handlers():
        configure_plugin_logging("pysam")
        configure_plugin_logging("pysam")
        on_root = sdk_handlers(logging.getLogger())
    assert len(on_root) == 1


def test_configure_twice_updates_level(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second configure_plugin_logging call still applies the current env level."""
    with root_handlers(logging.NullHandler()):
        configure_plugin_logging("pysam")
        monkeypatch.setenv("EKUIPER_PLUGIN_LOG_LEVEL", "error")
        configure_plugin_logging("pysam")
    assert logging.getLogger("ekuiper").level == logging.ERROR
