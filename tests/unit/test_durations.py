"""Go duration text as eKuiper's properties write it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ekuiper._durations import go_duration_seconds


@pytest.mark.parametrize(("text", "seconds"), [
    ("1h2m3.5s", 3723.5), ("500ms", 0.5), ("-250ms", -0.25), ("0", 0.0), (" 2s ", 2.0),
    ("1µs", 1e-6), ("1us", 1e-6), ("3ns", 3e-9), (".5s", 0.5),
])
def test_go_durations_are_read_in_seconds(text: str, seconds: float) -> None:
    """Every unit Go's time.ParseDuration takes, with a sign and fractions."""
    assert go_duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1x", "s", "1s2", "--1s", "1 s", "½s"])
def test_what_is_not_a_go_duration_is_none(text: str) -> None:
    """A bare number (milliseconds, the caller's case), a unit alone or junk is None."""
    assert go_duration_seconds(text) is None


@given(st.text(max_size=40))
def test_any_text_is_a_number_or_none(text: str) -> None:
    """Whatever the text, the parser answers a float or None and never raises."""
    result = go_duration_seconds(text)
    assert result is None or isinstance(result, float)
