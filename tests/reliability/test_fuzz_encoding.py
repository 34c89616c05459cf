"""Property tests of the encoder (ekuiper._encoding): whatever plugin code hands it, both
encoders agree, and what they send is strict JSON eKuiper can decode, or a clear error."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ekuiper import _encoding
from ekuiper._encoding import NAN_MESSAGE
from tests.conftest import skip_or_fail
from tests.reliability import strategies as s
from tests.reliability._counts import CASES

QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
         HealthCheck.large_base_example]
MAIN = settings(max_examples=1000, deadline=None, database=None, suppress_health_check=QUIET)
SIDE = settings(max_examples=300, deadline=None, database=None, suppress_health_check=QUIET)


@pytest.fixture(scope="module", autouse=True)
def _orjson_loaded() -> None:
    if not _encoding._load_orjson():
        skip_or_fail("orjson is not installed (the dev extra installs it)")


class Rec(NamedTuple):
    a: Any
    b: Any


@dataclasses.dataclass
class Box:
    item: Any
    _hidden: Any = None


class Mood(enum.Enum):
    CALM = 1
    ODD = 0.5


# -- what plugin code may hand the encoder ----------------------------------------------

offsets = st.builds(dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-23, minutes=-59),
                                               max_value=dt.timedelta(hours=23, minutes=59)))
dates_and_times = (st.datetimes() | st.datetimes(timezones=offsets) | st.dates() | st.times()
                   | st.times(timezones=offsets))
NUMPY_DTYPES = ["bool", "int8", "uint8", "int32", "int64", "uint64", "float16", "float32",
                "float64", ">f8", "complex64", "datetime64[s]", "datetime64[ns]", "U3", "O"]


def _numpy_scalar(dtype: str) -> st.SearchStrategy[Any]:
    if dtype == "O":
        return st.just(np.array([None, 1.5, "x"], dtype=object))
    return hnp.from_dtype(np.dtype(dtype))


numpy_arrays = st.sampled_from(NUMPY_DTYPES[:-1]).flatmap(
    lambda d: hnp.arrays(np.dtype(d), hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)))
numpy_values = (st.sampled_from(NUMPY_DTYPES).flatmap(_numpy_scalar) | numpy_arrays
                | numpy_arrays.map(lambda a: a[::2] if a.ndim else a)
                | numpy_arrays.map(lambda a: np.asfortranarray(a) if a.ndim == 2 else a))
leaves = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 10,
                                                                  max_value=2**80)
          | st.floats() | st.text(max_size=10)
          | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)
          | st.binary(max_size=8) | st.decimals(places=None) | st.uuids()
          | dates_and_times | st.sampled_from(Mood) | numpy_values | st.builds(object))
keys = (st.text(max_size=6) | st.integers() | st.floats() | st.booleans() | st.none()
        | st.tuples(st.integers()))
hashables = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4)
values = st.recursive(
    leaves,
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(keys, inner, max_size=4)
                   | st.frozensets(hashables, max_size=3) | st.sets(hashables, max_size=3)
                   | st.builds(Rec, inner, inner) | st.builds(Box, inner, inner)),
    max_leaves=10,
)


def _outcome(encode: Any, value: Any) -> tuple[str, Any]:
    """("ok", decoded JSON) or ("error", (type, message)), checking what was sent."""
    try:
        raw = encode(value)
    except (TypeError, ValueError) as exc:
        assert str(exc), "an encoding error must say what is wrong"
        return "error", (type(exc).__name__, str(exc))
    return "ok", _strict_json(raw)


def _strict_json(raw: bytes) -> Any:
    """Decode as Go would: strict UTF-8, no NaN/Infinity literals."""
    def refuse(literal: str) -> Any:
        raise AssertionError(f"the encoder sent the non-JSON literal {literal}")
    return json.loads(raw.decode("utf-8"), parse_constant=refuse)


# -- properties -------------------------------------------------------------------------


@MAIN
@given(values)
def test_both_encoders_agree(value: Any) -> None:
    """orjson and json accept the same values, send the same JSON values, and refuse the
    rest with the same error."""
    CASES["pure"] += 1
    assert _outcome(_encoding._encode_orjson, value) == _outcome(_encoding._encode_json, value)


@MAIN
@given(numpy_values)
def test_both_encoders_agree_on_numpy(value: Any) -> None:
    """For numpy scalars and arrays of every dtype, layout and byte order, both encoders
    send the same numbers (float16/32 at their own precision) or the same error."""
    CASES["pure"] += 1
    assert _outcome(_encoding._encode_orjson, value) == _outcome(_encoding._encode_json, value)


@MAIN
@given(s.json_values)
def test_plain_json_values_round_trip(value: Any) -> None:
    """A value JSON already has comes back as it went, with either encoder."""
    CASES["pure"] += 1
    for encode in (_encoding._encode_orjson, _encoding._encode_json):
        assert _strict_json(encode(value)) == value


def _with_nonfinite(value: Any, where: int, bad: Any) -> Any:
    """``value`` as a list with ``bad`` put inside, at a depth chosen by ``where``."""
    for _ in range(where % 3):
        value = {"k": [value]}
    return [value, Rec(bad, 1)] if where % 2 else [{"x": (bad,)}, value]


@SIDE
@given(s.json_values, st.integers(min_value=0, max_value=5),
       st.sampled_from([math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("inf"),
                        np.array([1.0, math.nan]), np.array([math.inf], dtype=np.float16)]))
def test_nan_anywhere_is_refused(value: Any, where: int, bad: Any) -> None:
    """A NaN or Infinity anywhere in a value is refused with the NaN error by both."""
    CASES["pure"] += 1
    payload = _with_nonfinite(value, where, bad)
    for encode in (_encoding._encode_orjson, _encoding._encode_json):
        with pytest.raises(ValueError) as info:
            encode(payload)
        assert str(info.value) == NAN_MESSAGE


@SIDE
@given(values)
def test_nulls_known_to_the_caller_change_nothing(value: Any) -> None:
    """Telling the encoder of a row's empty meta (known_nulls) never changes the outcome."""
    CASES["pure"] += 1
    frame = {"message": {"v": value}, "meta": None}
    assert _outcome(lambda v: _encoding._encode_orjson(v, 1), frame) == \
        _outcome(_encoding._encode_orjson, frame)


def _read(decode: Any, raw: bytes | str) -> tuple[str, str]:
    """("ok", repr of the value) or ("error", type and text): NaN compares by repr."""
    try:
        return "ok", repr(decode(raw))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"


# The edges of orjson's integers (i64 min and u64 max), where an int turns into a float:
# below i64 min with as few as 19 digits.
edges = (st.integers(min_value=-10**19, max_value=-2**63 + 2)
         | st.integers(min_value=2**64 - 3, max_value=10**20))
numbers = (st.integers() | st.integers(min_value=-2**80, max_value=2**80) | edges
           | st.floats() | st.text(st.sampled_from("0123456789"), min_size=18, max_size=24))
texts = st.recursive(numbers | st.text(max_size=8) | st.none() | st.booleans(),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=4), inner, max_size=4),
                     max_leaves=10)


@MAIN
@given(texts, st.booleans(), st.booleans())
def test_decode_reads_json_as_json_loads_does(value: Any, ascii_only: bool,
                                              as_text: bool) -> None:
    """eKuiper's JSON (any numbers, long digit runs, unicode) decodes exactly as with
    json.loads, as bytes or text."""
    CASES["pure"] += 1
    raw: bytes | str = json.dumps(value, ensure_ascii=ascii_only)
    if not as_text:
        raw = raw.encode("utf-8")
    assert _read(_encoding._decode_orjson, raw) == _read(json.loads, raw)


@MAIN
@given(st.binary(max_size=60) | st.text(max_size=30).map(lambda t: t.encode("utf-8", "replace")))
def test_decode_of_any_bytes_is_json_loads(raw: bytes) -> None:
    """Whatever bytes arrive, decode gives json.loads's value or raises its error."""
    CASES["pure"] += 1
    assert _read(_encoding._decode_orjson, raw) == _read(json.loads, raw)
