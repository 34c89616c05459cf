"""Unit tests for ekuiper._encoding: what plugin values become on the wire, with each encoder.

Every rule is checked against both encoders (orjson, the ``fast`` extra, and the standard
library's json): the ``encoder`` fixture switches the SDK to one for the test.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import json
import sys
import textwrap
import time
import uuid
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pytest

from ekuiper import _encoding, _protocol
from ekuiper._encoding import NAN_MESSAGE, encode, to_bytes
from tests.conftest import loaded_after

NAN = r"^NaN and Infinity cannot be sent to eKuiper \(JSON has no such numbers\); replace them"


def wire(value: Any) -> bytes:
    """``value`` as the SDK puts it on the wire, through the encoder in use."""
    return _encoding.encode(value)


class Point(NamedTuple):
    x: int
    y: float


class Pair(tuple):  # type: ignore[type-arg]
    """A tuple subclass that is not a record."""


ORIGIN = Point(0, 0.0)


@dataclasses.dataclass
class Reading:
    sensor: str
    value: float
    _raw: int = 0
    where: Point = ORIGIN
    unit: ClassVar[str] = "C"


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: int


class Color(enum.Enum):
    RED = "red"
    DEEP = Point(1, 2.0)


class Level(enum.IntEnum):
    HIGH = 3


class Half(float):
    """A float subclass (orjson hands these to default, json writes them itself)."""


UTC = dt.timezone.utc
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
# Old local mean times have offsets with seconds, which RFC 3339 cannot write.
LMT = dt.timezone(dt.timedelta(hours=-4, minutes=-56, seconds=-2))


def _fortran() -> Any:
    return np.asfortranarray(np.arange(4.0).reshape(2, 2))


# (id, value, JSON it travels as)
ACCEPTED: list[tuple[str, Any, bytes]] = [
    # numpy scalars
    ("np.bool_", np.bool_(True), b"true"),
    ("np.int8", np.int8(-5), b"-5"),
    ("np.int64", np.int64(-2**63), b"-9223372036854775808"),
    ("np.uint64", np.uint64(2**64 - 1), b"18446744073709551615"),
    ("np.float64", np.float64(0.1), b"0.1"),
    ("np.float32", np.float32(0.1), b"0.1"),
    ("np.float32 large", np.float32(3.4028235e38), b"3.4028235e+38"),
    ("np.float16", np.float16(0.1), b"0.1"),
    ("np.float16 max", np.float16(65504), b"65500.0"),
    ("np.datetime64", np.datetime64("2024-01-02T03:04:05.123456789"),
     b'"2024-01-02T03:04:05.123456789"'),
    ("np.str_", np.str_("s"), b'"s"'),
    # numpy arrays
    ("float64 array", np.array([0.5, 1e16, -0.0]), b"[0.5,1e+16,-0.0]"),
    ("2-d int array", np.arange(4, dtype=np.int32).reshape(2, 2), b"[[0,1],[2,3]]"),
    ("uint8 array", np.array([0, 255], dtype=np.uint8), b"[0,255]"),
    ("bool array", np.array([True, False]), b"[true,false]"),
    ("float32 array", np.array([0.1, 1 / 3], dtype=np.float32), b"[0.1,0.33333334]"),
    ("float16 array", np.array([0.1, 1 / 3], dtype=np.float16), b"[0.1,0.3333]"),
    ("non-contiguous array", np.arange(6.0)[::2], b"[0.0,2.0,4.0]"),
    ("fortran-order array", _fortran(), b"[[0.0,1.0],[2.0,3.0]]"),
    ("big-endian array", np.array([1.5], dtype=">f8"), b"[1.5]"),
    ("0-d array", np.array(2.5), b"2.5"),
    ("empty 2-d array", np.zeros((2, 0)), b"[[],[]]"),
    ("object array", np.array([1, "a", None], dtype=object), b'[1,"a",null]'),
    ("str array", np.array(["a", "b"]), b'["a","b"]'),
    ("datetime64 array", np.array(["2024-01-02", "2024-01-03"], dtype="datetime64[D]"),
     b'["2024-01-02","2024-01-03"]'),
    ("masked array", np.ma.masked_array([1.0, 2.0], mask=[False, True]), b"[1.0,null]"),
    ("row with an array", {"id": 1, "v": np.arange(3.0)}, b'{"id":1,"v":[0.0,1.0,2.0]}'),
    # dates and times
    ("naive datetime", dt.datetime(2024, 1, 2, 3, 4, 5), b'"2024-01-02T03:04:05"'),
    ("datetime with µs", dt.datetime(2024, 1, 2, 3, 4, 5, 120),
     b'"2024-01-02T03:04:05.000120"'),
    ("UTC datetime", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
     b'"2024-01-02T03:04:05+00:00"'),
    ("offset datetime", dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=IST),
     b'"2024-01-02T03:04:05.000006+05:30"'),
    ("offset with seconds", dt.datetime(1880, 1, 1, 12, 0, 0, tzinfo=LMT),
     b'"1880-01-01T16:56:02+00:00"'),
    ("year 5", dt.datetime(5, 1, 1), b'"0005-01-01T00:00:00"'),
    ("date", dt.date(2024, 1, 2), b'"2024-01-02"'),
    ("time", dt.time(3, 4, 5, 600), b'"03:04:05.000600"'),
    ("aware time", dt.time(3, 4, tzinfo=UTC), b'"03:04:00+00:00"'),
    # Decimal
    ("Decimal fraction", Decimal("1.10"), b"1.1"),
    ("Decimal integer", Decimal("12345678901234567"), b"12345678901234567"),
    ("Decimal exponent", Decimal("1E+3"), b"1000"),
    ("Decimal with .0", Decimal("100.0"), b"100.0"),
    ("Decimal negative", Decimal("-0.25"), b"-0.25"),
    # records and friends
    ("UUID", uuid.UUID(int=1), b'"00000000-0000-0000-0000-000000000001"'),
    ("NamedTuple", Point(1, 2.5), b'{"x":1,"y":2.5}'),
    ("NamedTuples in a list", [Point(1, 2.0), (3, 4)], b'[{"x":1,"y":2.0},[3,4]]'),
    ("dataclass", Reading("t1", 21.5), b'{"sensor":"t1","value":21.5,"_raw":0,'
                                         b'"where":{"x":0,"y":0.0}}'),
    ("frozen dataclass", Frozen(1), b'{"a":1}'),
    ("dataclass in a list", {"t": [Frozen(2)]}, b'{"t":[{"a":2}]}'),
    ("Enum", Color.RED, b'"red"'),
    ("Enum of a record", Color.DEEP, b'{"x":1,"y":2.0}'),
    ("IntEnum", Level.HIGH, b"3"),
    ("tuple subclass", Pair((1, 2)), b"[1,2]"),
    ("struct_time", time.gmtime(0), b"[1970,1,1,0,0,0,3,1,0]"),
    ("float subclass", Half(0.5), b"0.5"),
    ("mapping proxy", MappingProxyType({"a": 1}), b'{"a":1}'),
    ("OrderedDict", collections.OrderedDict(b=1, a=2), b'{"b":1,"a":2}'),
    ("set of records", {Point(1, 1.0)}, b'[{"x":1,"y":1.0}]'),
    ("frozenset", frozenset([3]), b"[3]"),
    # what JSON already had, kept as it was
    ("int beyond 64 bits", 2**70, b"1180591620717411303424"),
    ("non-str keys", {1: "a", 1.5: "b", False: "c", None: "d"},
     b'{"1":"a","1.5":"b","false":"c","null":"d"}'),
    ("UTF-8 bytes", b"h\xc3\xa9", '"hé"'.encode()),
    ("unicode", "Zoë 🚀", '"Zoë 🚀"'.encode()),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in ACCEPTED],
                         ids=[c[0] for c in ACCEPTED])
def test_value_travels_as_ekuiper_expects(encoder: str, value: Any, expected: bytes) -> None:
    """Each supported type is encoded to the JSON the rules give, by either encoder."""
    assert wire(value) == expected


# (id, value, exception type, message pattern)
REFUSED: list[tuple[str, Any, type[Exception], str]] = [
    ("NaN", float("nan"), ValueError, NAN),
    ("-Infinity", float("-inf"), ValueError, NAN),
    ("np.float64 NaN", np.float64("nan"), ValueError, NAN),
    ("np.float32 Infinity", np.float32("inf"), ValueError, NAN),
    ("np.float16 NaN", np.float16("nan"), ValueError, NAN),
    ("float64 array with NaN", np.array([1.0, np.nan]), ValueError, NAN),
    ("float32 array with Infinity", np.array([np.inf], dtype=np.float32), ValueError, NAN),
    ("float16 array with NaN", np.array([np.nan], dtype=np.float16), ValueError, NAN),
    ("non-contiguous array with NaN", np.array([1.0, 0, np.nan])[::2], ValueError, NAN),
    ("object array with NaN", np.array([None, float("nan")], dtype=object), ValueError, NAN),
    ("masked array with NaN", np.ma.masked_array([np.nan, 1.0], mask=[False, True]),
     ValueError, NAN),
    ("Decimal NaN", Decimal("NaN"), ValueError, NAN),
    ("Decimal sNaN", Decimal("sNaN"), ValueError, NAN),
    ("Decimal Infinity", Decimal("-Infinity"), ValueError, NAN),
    ("Decimal beyond float64", Decimal("1E+400"), ValueError,
     r"^Decimal 1E\+400 is beyond the range of eKuiper's numbers \(float64\); send it as "
     r"text \(str\(value\)\)$"),
    ("NaN in a NamedTuple", Point(1, float("nan")), ValueError, NAN),
    ("NaN in a dataclass", Reading("t", float("inf")), ValueError, NAN),
    ("NaN in a set", {float("nan")}, ValueError, NAN),
    ("NaN in a float subclass", Half("nan"), ValueError, NAN),
    ("NaN as a key", {float("nan"): 1}, ValueError, NAN),
    ("NaT", np.datetime64("NaT"), ValueError, r"^NaT \(numpy's not-a-time\) cannot be sent"),
    ("NaT in an array", np.array(["NaT"], dtype="datetime64[s]"), ValueError, r"^NaT"),
    ("complex array", np.array([1j]), TypeError,
     r"^numpy arrays of dtype complex128 cannot be sent as JSON; convert them"),
    ("complex scalar", np.complex64(1j),
     TypeError, r"^Object of type complex64 is not JSON serializable$"),
    ("timedelta64", np.timedelta64(1, "s"),
     TypeError, r"^Object of type timedelta64 is not JSON serializable$"),
    ("structured array", np.zeros(1, dtype=[("a", "i4")]), TypeError, r"dtype \[\('a'"),
    ("object", object(), TypeError, r"^Object of type object is not JSON serializable$"),
    ("tuple key", {(1,): 2}, TypeError, r"^keys must be str, int, float, bool or None"),
    ("non-UTF-8 bytes", b"\xff", TypeError, r"^bytes that are not UTF-8 cannot be sent"),
    ("lone surrogate", "\udcff", ValueError, "surrogates not allowed"),
]


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


REFUSED.append(("5000 levels deep", _deep(5000), ValueError,
                r"^value is nested too deeply to be sent as JSON$"))


@pytest.mark.parametrize(("value", "error", "message"), [c[1:] for c in REFUSED],
                         ids=[c[0] for c in REFUSED])
def test_value_eKuiper_cannot_take_is_refused(encoder: str, value: Any,
                                              error: type[Exception], message: str) -> None:
    """What eKuiper cannot decode is refused with an error saying what to do, by either
    encoder."""
    with pytest.raises(error, match=message):
        wire({"v": value})


def test_nesting_within_python_limits_is_sent_by_both(encoder: str) -> None:
    """300 levels (past orjson's own limit of 254) still travel."""
    assert wire(_deep(300)) == b"[" * 301 + b"]" * 301


def test_null_in_a_row_is_not_taken_for_nan(encoder: str) -> None:
    """None values (and the text null) travel as null and "null", not as an error."""
    assert wire({"a": None, "b": "null", "c": [None]}) == b'{"a":null,"b":"null","c":[null]}'


@pytest.mark.parametrize("value", ["null", "nullnull", 7, True])
def test_a_str_int_or_bool_encodes_without_the_nan_search(encoder: str, value: Any) -> None:
    """A bare str (even the text null), int or bool encodes as itself, never as an error."""
    assert wire(value) == json.dumps(value).encode()


def test_known_nulls_do_not_hide_a_nan(encoder: str) -> None:
    """A row's empty meta (a known null) does not stop a NaN from being refused."""
    with pytest.raises(ValueError, match=NAN):
        _encoding.encode({"message": {"x": float("nan")}, "meta": None}, 1)


# -- source rows, function results, acks --------------------------------------------------


def test_dataclass_is_one_row(encoder: str) -> None:
    """A dataclass instance given as the message is encoded as one row."""
    assert _protocol.encode_source_frame(Frozen(7), None) == \
        b'{"message":{"a":7},"meta":null}'  # type: ignore[arg-type]


def test_namedtuple_is_one_row(encoder: str) -> None:
    """A NamedTuple given as the message is one row (an object), not a list of rows."""
    assert _protocol.encode_source_frame(Point(1, 2.0), None) == \
        b'{"message":{"x":1,"y":2.0},"meta":null}'  # type: ignore[arg-type]


def test_numpy_row_with_meta(encoder: str) -> None:
    """numpy values in a row and in its meta both travel."""
    assert _protocol.encode_source_frame({"v": np.float32(0.5)}, {"n": np.int16(2)}) == \
        b'{"message":{"v":0.5},"meta":{"n":2}}'


def test_function_result_of_numpy_and_dates(encoder: str) -> None:
    """A function result holding numpy values and a datetime is a state-true reply."""
    result = {"mean": np.float64(1.5), "at": dt.datetime(2024, 1, 2, tzinfo=UTC)}
    assert _protocol.encode_func_reply(True, result) == \
        b'{"state":true,"result":{"mean":1.5,"at":"2024-01-02T00:00:00+00:00"}}'


def test_function_result_with_numpy_nan_is_state_false(encoder: str) -> None:
    """A numpy NaN in a function result becomes a state-false reply with the NaN text."""
    assert json.loads(_protocol.encode_func_reply(True, np.array([np.nan]))) == {
        "state": False, "result": f"function result cannot be sent to eKuiper: {NAN_MESSAGE}"}


def test_ack_error_text_is_utf8(encoder: str) -> None:
    """An ack error text travels as {"error": text} in UTF-8."""
    assert _protocol.encode_ack_error("échec") == '{"error":"échec"}'.encode()


# -- decoding what eKuiper sends -------------------------------------------------------------

DECODED: list[tuple[str, bytes | str, Any]] = [
    ("object", b'{"a":[1,2.5,"x",null,true]}', {"a": [1, 2.5, "x", None, True]}),
    ("unicode", '["é 🚀"]'.encode(), ["é 🚀"]),
    ("int of 64 bits", b"[18446744073709551615,-9223372036854775808]",
     [18446744073709551615, -9223372036854775808]),
    ("int beyond 64 bits", b"[123456789012345678901234567890]",
     [123456789012345678901234567890]),
    ("int just below i64's min, 19 digits", b"[-9223372036854775809,-9999999999999999999]",
     [-9223372036854775809, -9999999999999999999]),
    ("19-digit int beyond i64's max (a u64)", b"[9999999999999999999]", [9999999999999999999]),
    ("Go's float64 1e20", b"100000000000000000000", 100000000000000000000),
    ("long digits in a string", b'["12345678901234567890123", 1.5]',
     ["12345678901234567890123", 1.5]),
    ("NaN literal", b"[NaN]", None),  # compared below: nan != nan
    ("float beyond float64", b"1e400", float("inf")),
    ("lone surrogate escape", b'"\\ud800"', "\ud800"),
    ("UTF-16 with BOM", '{"a":1}'.encode("utf-16"), {"a": 1}),
    ("text", '{"k":"v"}', {"k": "v"}),
    ("text with long digits", "[123456789012345678901]", [123456789012345678901]),
    ("text with an int below i64's min", "[-9223372036854775809]", [-9223372036854775809]),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in DECODED],
                         ids=[c[0] for c in DECODED])
def test_json_from_ekuiper_decodes_as_json_loads_does(encoder: str, raw: bytes | str,
                                                      expected: Any) -> None:
    """Each encoder's decode reads a frame exactly as json.loads does."""
    value = _encoding.decode(raw)
    if expected is None:
        assert len(value) == 1 and value[0] != value[0]
    else:
        assert value == expected
        assert type(value) is type(expected)
    assert repr(value) == repr(json.loads(raw))


def _holds_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_holds_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_float(v) for v in value)
    return False


@pytest.mark.parametrize("raw", [c[1] for c in DECODED], ids=[c[0] for c in DECODED])
def test_loose_decode_is_exact_wherever_it_reads_no_float(encoder: str,
                                                          raw: bytes | str) -> None:
    """decode_loose gives what decode gives, but where it read a float (a rounded int) or
    refused the text (a ValueError, on which its caller reads with decode)."""
    try:
        loose = _encoding.decode_loose(raw)
    except ValueError:
        assert encoder == "orjson"
        return
    if not _holds_float(loose):
        assert repr(loose) == repr(_encoding.decode(raw))


@pytest.mark.parametrize(("raw", "long_run"), [
    (b"[123456789012345678901]", True), ("[123456789012345678901]", True),
    (b'["a12345678901234567890"]', True), (b"[-9223372036854775809]", True),
    ("[-9223372036854775809]", True), (b"[1.5, 12345]", False),
    (b"[1764700000000000000, -922337203685477580]", False)])
def test_loose_may_round_only_where_orjson_meets_a_long_digit_run(
        encoder: str, raw: bytes | str, long_run: bool) -> None:
    """loose_may_round is true only for orjson and 20 digits in a row, or a minus and 19."""
    assert _encoding.loose_may_round(raw) is (encoder == "orjson" and long_run)


@pytest.mark.parametrize("raw", [b"[1,]", b"\xff", b'{"a":', b""])
def test_bad_json_raises_what_json_loads_raises(encoder: str, raw: bytes) -> None:
    """Bad JSON raises the same exception, with the same text, as json.loads."""
    with pytest.raises((ValueError, UnicodeDecodeError)) as ours:
        _encoding.decode(raw)
    with pytest.raises((ValueError, UnicodeDecodeError)) as theirs:
        json.loads(raw)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


# -- choosing an encoder --------------------------------------------------------------------


def test_orjson_is_chosen_when_installed() -> None:
    """With the fast extra installed, the SDK encodes with orjson."""
    pytest.importorskip("orjson")
    assert _encoding.use() == "orjson"
    assert _encoding.encoder_name() == "orjson"


def test_json_is_chosen_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without orjson importable, the SDK falls back to the standard library."""
    monkeypatch.setitem(sys.modules, "orjson", None)  # makes `import orjson` fail
    monkeypatch.setattr(_encoding, "_orjson", None)
    try:
        assert _encoding.use() == "json"
        assert _protocol.encode_source_frame({"a": 1}, None) == b'{"message":{"a":1},"meta":null}'
        with pytest.raises(ImportError, match=r"pip install 'ekuiper-plugin-sdk\[fast\]'"):
            _encoding.use("orjson")
    finally:
        monkeypatch.undo()
        _encoding.use()


def test_unknown_encoder_name_is_refused() -> None:
    """use() names the encoders it knows when given another."""
    with pytest.raises(ValueError,
                       match=r"^unknown encoder 'ujson': expected one of orjson, json$"):
        _encoding.use("ujson")


def test_encode_is_rebound_by_use() -> None:
    """The module-level encode follows use() (the runtime looks it up on each frame)."""
    _encoding.use("json")
    try:
        assert _encoding.encode is _encoding._encode_json
    finally:
        _encoding.use()
    assert encode is not None  # the name imported at collection time still works


IMPORT_CHECK = textwrap.dedent("""
    import sys
    import ekuiper
    from ekuiper import _encoding, _protocol
    assert "orjson" not in sys.modules, "orjson imported with the SDK"
    for name in ({encoders}):
        _encoding.use(name)
        _protocol.encode_source_frame({{"a": 1, "b": [1.5, None], "c": {{"d": "x"}}}}, None)
        _protocol.encode_func_reply(True, ("t", {{1, 2}}))
""")


def test_plain_rows_never_import_numpy() -> None:
    """`import ekuiper` and encoding plain rows with each encoder load no numpy (nor orjson
    before the first frame)."""
    encoders = ", ".join(repr(n) for n in _encoding.ENCODERS
                         if n != "orjson" or _encoding._load_orjson())
    assert loaded_after(IMPORT_CHECK.format(encoders=encoders), ("numpy", "pandas")) == []


# -- to_bytes ---------------------------------------------------------------------------------


def test_to_bytes_decodes_base64_text() -> None:
    """A binary payload as a function receives it (base64 text) becomes its bytes."""
    assert to_bytes("iVBORw0KGgo=") == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("raw", [b"\x89PNG", bytearray(b"\x89PNG"), memoryview(b"\x89PNG")])
def test_to_bytes_passes_bytes_through(raw: Any) -> None:
    """Raw bytes (a sink with format binary) are returned as bytes."""
    assert to_bytes(raw) == b"\x89PNG"
    assert type(to_bytes(raw)) is bytes


@pytest.mark.parametrize("text", ["not base64!", "abc", "é"])
def test_to_bytes_refuses_text_that_is_not_base64(text: str) -> None:
    """Text that is not base64 raises ValueError saying what to pass."""
    with pytest.raises(ValueError, match=r"is not base64 text; pass the field of a binary "
                                         r"payload \(self, as eKuiper sends it\)$"):
        to_bytes(text)


def test_to_bytes_refuses_other_types() -> None:
    """A value that is neither text nor bytes raises TypeError naming its type."""
    with pytest.raises(TypeError, match=r"^to_bytes\(\) takes base64 text or bytes .*got int$"):
        to_bytes(5)
