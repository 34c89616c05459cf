"""Shared runtime pieces: failure logging and bounded calls into user code."""

from __future__ import annotations

import logging
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ekuiper._runtime.base import FailureLog, call_bounded, describe_exception, exception_text


def _raise_value_error(n: int) -> None:
    raise ValueError(f"bad {n}")


def _failures(caplog: pytest.LogCaptureFixture, count: int) -> list[logging.LogRecord]:
    log = FailureLog(logging.getLogger("test.failures"))
    with caplog.at_level(logging.ERROR, logger="test.failures"):
        for n in range(count):
            try:
                _raise_value_error(n)
            except ValueError as exc:
                log.report("collect()", exc)
    return caplog.records


def test_failure_log_shows_traceback_once_per_site(caplog: pytest.LogCaptureFixture) -> None:
    """Repeated failures from one raise site carry a traceback only the first time."""
    records = _failures(caplog, 3)
    assert [r.exc_info is not None for r in records] == [True, False, False]


def test_failure_log_repeats_name_the_error(caplog: pytest.LogCaptureFixture) -> None:
    """Each later failure is still logged, as one line naming the exception."""
    records = _failures(caplog, 2)
    assert records[1].getMessage() == "collect() raised ValueError: bad 1"


def test_describe_exception_uses_type_when_message_is_empty() -> None:
    """An exception without a message is described by its type name."""
    assert describe_exception(KeyError()) == "KeyError"


def test_exception_text_names_type_and_message() -> None:
    """The text shown for an exception reads like a traceback's last line."""
    assert exception_text(TypeError("f() missing 1 required positional argument: 'b'")) == (
        "TypeError: f() missing 1 required positional argument: 'b'")


def test_exception_text_is_the_type_without_message() -> None:
    """An exception without a message is shown as its type name alone."""
    assert exception_text(KeyError()) == "KeyError"


@given(st.text())
def test_exception_text_always_starts_with_the_type(message: str) -> None:
    """Whatever the message, the text is the type name, then ': ' and the trimmed message."""
    text = exception_text(ValueError(message))
    assert text == ("ValueError: " + message.strip() if message.strip() else "ValueError")


def test_call_bounded_gives_up_after_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """A call that does not return in time is logged and left behind."""
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="test.bounded"):
        call_bounded(lambda: time.sleep(5), "close() of x", logging.getLogger("test.bounded"),
                     timeout=0.2)
    assert time.monotonic() - started < 2
    assert "close() of x did not return within 0.2 s" in caplog.text
