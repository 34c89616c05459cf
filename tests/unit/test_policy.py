"""Unit tests for ekuiper._policy: ErrorPolicy, the sink action properties, the backoff."""

from __future__ import annotations

import logging
import math
import textwrap
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ekuiper import ErrorPolicy
from ekuiper._policy import (
    MAX_DELAY_S,
    MAX_RETRIES,
    function_policy,
    parse_count,
    parse_duration,
    replacement_reply,
    sink_policy,
)
from ekuiper.errors import PolicyError, SymbolError
from tests.conftest import loaded_after

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=5)


def test_policy_error_is_a_symbol_error_and_a_value_error() -> None:
    """PolicyError fails a start like any SymbolError and is a ValueError for callers."""
    assert issubclass(PolicyError, SymbolError)
    assert issubclass(PolicyError, ValueError)


def test_null_and_default_replace() -> None:
    """null() and default(v) are replacing policies holding their value."""
    assert ErrorPolicy.null().replaces and ErrorPolicy.null().value is None
    assert ErrorPolicy.default([1, "x"]).value == [1, "x"]


def test_retry_keeps_its_arguments() -> None:
    """retry(n, backoff, max_backoff) keeps what it was given."""
    policy = ErrorPolicy.retry(3, 0.5, 2.0)
    assert (policy.retries, policy.backoff, policy.max_backoff, policy.replaces) == \
        (3, 0.5, 2.0, False)


@pytest.mark.parametrize(("args", "field"), [
    ((-1,), "retries"), ((True,), "retries"), ((1.5,), "retries"), ((MAX_RETRIES + 1,), "retries"),
    ((1, -0.1), "backoff"), ((1, math.nan), "backoff"), ((1, "1s"), "backoff"),
    ((1, 0.1, math.inf), "max_backoff"), ((1, 2.0, 1.0), "max_backoff"),
])
def test_retry_rejects_bad_arguments(args: tuple[Any, ...], field: str) -> None:
    """A bad retry() argument raises PolicyError naming the argument and its value."""
    with pytest.raises(PolicyError, match=rf"ErrorPolicy.retry\(\) {field} "):
        ErrorPolicy.retry(*args)


def test_unknown_kind_is_rejected() -> None:
    """An ErrorPolicy built by hand with an unknown kind says which constructors exist."""
    with pytest.raises(PolicyError, match=r"ErrorPolicy\.null\(\)"):
        ErrorPolicy("skip")


def test_delays_double_up_to_the_cap() -> None:
    """The waits before retries are backoff, 2*backoff, ... capped at max_backoff."""
    policy = ErrorPolicy.retry(6, 0.1, 1.0)
    assert [policy.delay(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


@given(st.integers(0, MAX_RETRIES), st.floats(0, MAX_DELAY_S), st.floats(0, MAX_DELAY_S),
       st.integers(0, 10_000))
def test_delays_stay_in_bounds(retries: int, a: float, b: float, n: int) -> None:
    """Every wait is finite, at least the previous one and at most max_backoff."""
    policy = ErrorPolicy.retry(retries, min(a, b), max(a, b))
    assert policy.delay(0) == min(a, b)
    assert policy.delay(n) <= policy.delay(n + 1) <= policy.max_backoff
    assert math.isfinite(policy.delay(n))


@pytest.mark.parametrize(("value", "seconds"), [
    (500, 0.5), (0, 0.0), (1.5, 0.0015), ("250", 0.25), ("250ms", 0.25), ("2s", 2.0),
    ("1.5s", 1.5), ("1m30s", 90.0), (" 1h ", 3600.0), (".5s", 0.5),
])
def test_durations_read_as_ekuiper_writes_them(value: Any, seconds: float) -> None:
    """Milliseconds as a number or digits, or Go duration text with ms/s/m/h units."""
    assert parse_duration("collectBackoff", value, "sink 'x': action property") == \
        pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "5x", "s", "1 s", "-1s", True, None, [1], -5,
                                   "2h", math.inf, "nan", "\u00b2", "\u0663s", "1e3"])
def test_bad_durations_name_field_and_value(value: Any) -> None:
    """A value that is no duration in range fails with the field, value and the forms."""
    with pytest.raises(PolicyError) as err:
        parse_duration("collectBackoff", value, "sink 'x': action property")
    assert str(err.value).startswith(f"sink 'x': action property collectBackoff is {value!r}")
    assert "500ms" in str(err.value)


@given(st.integers(0, int(MAX_DELAY_S * 1000)))
def test_millisecond_forms_agree(ms: int) -> None:
    """500, "500" and "500ms" are the same duration."""
    where = "w"
    assert parse_duration("f", ms, where) == parse_duration("f", str(ms), where) == \
        pytest.approx(parse_duration("f", f"{ms}ms", where))


@given(st.one_of(JSON, st.text(alphabet="0123456789.mhs -+e\u00b2\u0663", max_size=12)))
def test_duration_parse_only_raises_policy_error(value: Any) -> None:
    """Whatever an action property holds, the result is seconds in range or PolicyError."""
    try:
        seconds = parse_duration("f", value, "w")
    except PolicyError:
        return
    assert 0 <= seconds <= MAX_DELAY_S


@given(st.one_of(JSON, st.text(alphabet="0123456789 \u00b2\u0663.-", max_size=8)))
def test_count_parse_only_raises_policy_error(value: Any) -> None:
    """A retry count is a whole number in range, or PolicyError naming the field."""
    try:
        count = parse_count("collectRetries", value, "w")
    except PolicyError as exc:
        assert str(exc).startswith("w collectRetries is ")
        return
    assert isinstance(count, int) and 0 <= count <= MAX_RETRIES


@pytest.mark.parametrize(("value", "count"), [(3, 3), (3.0, 3), ("4", 4), (" 0 ", 0)])
def test_counts_accept_json_numbers_and_digits(value: Any, count: int) -> None:
    """A count may come as an integer, an integral float (Go's JSON) or digits."""
    assert parse_count("collectRetries", value, "w") == count


def test_sink_without_policy_or_properties_has_none() -> None:
    """No on_error and no collect* property: collect is not retried (today's default)."""
    assert sink_policy("s", None, {"requireAck": True}) is None


def test_sink_properties_alone_make_a_policy() -> None:
    """collectRetries with durations makes a retry policy with those values."""
    policy = sink_policy("s", None, {"collectRetries": 2, "collectBackoff": "50ms",
                                     "collectMaxBackoff": 1000})
    assert policy == ErrorPolicy.retry(2, 0.05, 1.0)


def test_sink_properties_override_the_class() -> None:
    """An action's property wins over the class's value; the rest comes from the class."""
    declared = ErrorPolicy.retry(5, 0.2, 3.0)
    assert sink_policy("s", declared, {"collectRetries": "1"}) == ErrorPolicy.retry(1, 0.2, 3.0)
    assert sink_policy("s", declared, {"collectBackoff": "4s"}) == \
        ErrorPolicy.retry(5, 4.0, 4.0)


def test_zero_retries_in_the_action_turns_retrying_off() -> None:
    """collectRetries: 0 disables a class's retry policy for that action."""
    assert sink_policy("s", ErrorPolicy.retry(3), {"collectRetries": 0}) is None


def test_backoff_without_retries_is_refused() -> None:
    """A backoff property with neither collectRetries nor a class policy says what is missing."""
    with pytest.raises(PolicyError, match="collectBackoff is set but collectRetries is not"):
        sink_policy("s", None, {"collectBackoff": "1s"})


def test_max_backoff_below_backoff_is_refused() -> None:
    """collectMaxBackoff under collectBackoff names both properties and their values."""
    with pytest.raises(PolicyError, match=r"collectMaxBackoff \(0.1s\) is less than "
                                          r"collectBackoff \(2s\)"):
        sink_policy("s", None, {"collectRetries": 1, "collectBackoff": "2s",
                                "collectMaxBackoff": 100})


def test_sink_class_policy_must_be_a_retry() -> None:
    """A sink's ErrorPolicy that is not a retry is refused with what it is."""
    with pytest.raises(PolicyError, match="on_error is null, which is not for a sink"):
        sink_policy("snk", ErrorPolicy.null(), {})


def test_function_policy_must_replace() -> None:
    """A function's ErrorPolicy that is not null()/default(v) is refused with what it is."""
    with pytest.raises(PolicyError, match=r"on_error is up to 2 retries.*not for a function"):
        function_policy("fn", ErrorPolicy.retry(2))


@pytest.mark.parametrize("value", ["retry", True, {"retries": 3}, 5])
def test_sink_on_error_not_a_policy_is_ignored(value: Any) -> None:
    """A sink's own on_error that is not an ErrorPolicy is no policy, and no error."""
    assert sink_policy("snk", value, {}) is None


@pytest.mark.parametrize("value", ["null", True, {"a": 1}])
def test_function_on_error_not_a_policy_is_ignored(value: Any) -> None:
    """A function's own on_error that is not an ErrorPolicy is no policy, and no error."""
    assert function_policy("fn", value) is None


def test_on_error_not_a_policy_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    """The first start with a non-policy on_error logs one warning naming ErrorPolicy."""
    with caplog.at_level(logging.WARNING, logger="ekuiper"):
        function_policy("once", "skip")
        function_policy("once", "skip")
    texts = [r.getMessage() for r in caplog.records if "'once'" in r.getMessage()]
    assert len(texts) == 1 and "not an ErrorPolicy" in texts[0]


def test_replacement_reply_is_encoded_once() -> None:
    """The replacement is a successful reply carrying the default value."""
    assert replacement_reply("fn", ErrorPolicy.default({"a": 1})) == \
        b'{"state":true,"result":{"a":1}}'
    assert replacement_reply("fn", ErrorPolicy.null()) == b'{"state":true,"result":null}'


def test_replacement_json_cannot_carry_is_refused() -> None:
    """A default value JSON cannot carry fails when the policy is applied, not per row."""
    with pytest.raises(PolicyError, match="on_error default <object object"):
        replacement_reply("fn", ErrorPolicy.default(object()))


def test_plugin_without_policies_does_not_import_them() -> None:
    """A plugin that declares no policy never loads the policy or retry modules."""
    code = textwrap.dedent("""
        from ekuiper import Function, Sink, PluginConfig
        from ekuiper.testing import call_function, run_sink
        class F(Function):
            def exec(self, args, ctx): return 1
        class S(Sink):
            def collect(self, ctx, data): pass
        call_function(F(), 1)
        run_sink(S(), [{"a": 1}], {"sendSingle": True}, require_ack=True)
    """)
    assert loaded_after(code, ("ekuiper._policy", "ekuiper._runtime.retry")) == []


def test_an_on_error_method_is_not_a_policy() -> None:
    """A plugin's own on_error method (written before policies existed) declares nothing."""
    class Legacy:
        def on_error(self, exc: Exception) -> None:
            pass

    assert function_policy("fn", Legacy().on_error) is None
    assert sink_policy("snk", Legacy().on_error, {}) is None
