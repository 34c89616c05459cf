"""ekuiper._state.rules: keys, values and scopes, hostile input included."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ekuiper._state.rules import (
    MAX_KEY_CHARS,
    Scope,
    check_key,
    decode_value,
    encode_value,
    scope_for,
)


@given(st.text(min_size=1, max_size=MAX_KEY_CHARS).filter(lambda t: "\x00" not in t))
def test_any_nul_free_text_up_to_the_limit_is_a_key(key: str) -> None:
    """Every non-empty text without NUL and within the limit is accepted as it is."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(ValueError, match="surrogate"):
            check_key(key)
        return
    assert check_key(key) == key


@given(st.one_of(st.none(), st.integers(), st.binary(), st.floats(), st.lists(st.text()),
                 st.tuples(st.text())))
def test_a_key_that_is_not_a_str_is_a_type_error(key: Any) -> None:
    """Anything but a str is refused with a TypeError naming its type."""
    with pytest.raises(TypeError, match=f"state keys are str, got {type(key).__name__}"):
        check_key(key)


@pytest.mark.parametrize(("key", "message"), [
    ("", "empty"),
    ("a\x00b", "NUL"),
    ("x" * (MAX_KEY_CHARS + 1), f"longer than {MAX_KEY_CHARS}"),
    ("\ud800", "lone surrogate"),
])
def test_hostile_keys_are_value_errors_saying_why(key: str, message: str) -> None:
    """An empty, NUL-holding, over-long or non-UTF-8 key is refused with the reason."""
    with pytest.raises(ValueError, match=message):
        check_key(key)


def test_a_huge_key_is_shown_cut_short() -> None:
    """The error for a huge key quotes its start and its length, not all of it."""
    with pytest.raises(ValueError) as info:
        check_key("k" * 1_000_000)
    assert len(str(info.value)) < 200
    assert "1000000 characters" in str(info.value)


def test_a_str_subclass_key_is_kept_as_plain_text() -> None:
    """A str subclass is accepted and comes back as a plain str."""
    class Name(str):
        pass

    key = check_key(Name("n"))
    assert (key, type(key)) == ("n", str)


def test_a_key_with_a_hostile_repr_is_still_refused_clearly() -> None:
    """A non-str key whose repr raises is refused with its type name."""
    class Bad:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    with pytest.raises(TypeError, match="got Bad <Bad>"):
        check_key(Bad())


def test_values_come_back_as_json_reads_them() -> None:
    """A tuple comes back a list, a datetime its ISO text, nested dicts as dicts."""
    value = {"t": (1, 2), "at": datetime.datetime(2024, 1, 2, 3, 4, 5), "d": {"x": [None]}}
    assert decode_value(encode_value("k", value)) == {
        "t": [1, 2], "at": "2024-01-02T03:04:05", "d": {"x": [None]}}


def test_a_value_json_cannot_carry_is_a_type_error_naming_the_key() -> None:
    """put_state of an object JSON cannot hold fails with TypeError naming the key."""
    with pytest.raises(TypeError, match=r"put_state\('model'\).*object"):
        encode_value("model", object())


def test_nan_is_a_value_error_naming_the_key() -> None:
    """NaN is refused as the encoder refuses it, with the key named."""
    with pytest.raises(ValueError, match=r"put_state\('avg'\).*NaN"):
        encode_value("avg", float("nan"))


def test_a_value_nested_too_deep_is_refused_naming_the_key() -> None:
    """A value nested deeper than the recursion limit is an error, not a crash."""
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match=r"put_state\('deep'\).*nested too deeply"):
        encode_value("deep", deep)


def test_a_function_scope_is_per_rule_whatever_its_operator() -> None:
    """Two calls of a function in one rule share its scope; a source's is per op."""
    assert scope_for("function", "f", "r1", "op1", 2) == scope_for("function", "f", "r1", "op9", 0)
    assert scope_for("function", "f", "r1", "op1", 2) == Scope("function", "f", "r1", "", 0)
    assert scope_for("source", "s", "r1", "op1", 2) == Scope("source", "s", "r1", "op1", 2)
