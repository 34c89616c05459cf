"""What plugin values become on the wire to eKuiper, what its JSON becomes in Python, and
binary payloads back to bytes.

Pure: no sockets, no threads. Two encoders follow the same rules, and tests run every
rule against both: orjson (the ``fast`` extra), used when it can be imported, and the
standard library's ``json``. The first call of :func:`encode` or :func:`decode` picks
one; :func:`use` picks one by name (tests). Decoding reads JSON exactly as ``json.loads``
does, with orjson where the two agree.

The rules, for source rows, function results and ack texts alike:

* UTF-8, compact, keys in insertion order. ``str``, ``int``, ``float``, ``bool``, ``None``,
  ``dict`` (keys ``str``, ``int``, ``float``, ``bool`` or ``None``), ``list`` and ``tuple``
  travel as JSON does; other mappings, dict and list subclasses as objects and arrays.
* NaN and +/-Infinity are refused with :data:`NAN_MESSAGE` (a ValueError), numpy's and
  Decimal's included: Go's encoding/json, which decodes every frame, has no such numbers.
* ``set``/``frozenset`` become arrays; UTF-8 ``bytes``/``bytearray``/``memoryview`` text.
* ``NamedTuple`` instances and dataclass instances become objects (fields in order;
  nested ones too), an ``Enum`` its value, a ``UUID`` its canonical text.
* ``datetime`` becomes ISO 8601 text (``2024-01-02T03:04:05.123456+08:00``), the RFC 3339
  form eKuiper's datetime casts parse (its ``cast`` package tries RFC 3339 and
  ``2006-01-02T15:04:05`` among its layouts). A naive datetime travels without an offset,
  and eKuiper reads it in *its* time zone (``basic.timezone``, by default its process's
  local zone): attach a tzinfo to name the instant. An offset with seconds (old local
  mean times), which RFC 3339 cannot write, is converted to UTC. ``date`` becomes
  ``2024-01-02`` (midnight in eKuiper's zone when cast), ``time`` ``03:04:05[.ffffff]``.
* ``Decimal``: eKuiper decodes every JSON number a portable plugin sends as a float64
  (Go's encoding/json into ``interface{}``), so no digit beyond float64's survives the trip
  as a number. A Decimal written without fraction digits (``Decimal("12")``) travels as
  an integer (every digit on the wire; eKuiper keeps them up to 2**53), others as the
  float nearest them (what eKuiper would make of any digits); one beyond float64's range
  is refused. Send ``str(d)`` to keep every digit.
* numpy (optional, never imported here unless a value is numpy's): ``bool_`` a bool,
  integers ints, floats numbers, arrays nested lists by the same rules. float16 and
  float32 values travel as numpy prints them, the shortest decimal that reads back as the
  same value at their precision (``float32(0.1)`` is ``0.1``, not ``0.10000000149011612``).
  ``datetime64`` becomes its ISO text; NaT is refused like NaN; complex and other dtypes
  are refused with a TypeError naming them.

Anything else raises ``TypeError("Object of type X is not JSON serializable")``; a value
nested deeper than Python's recursion limit, :data:`DEEP_MESSAGE`.

Threads: :func:`encode` and :func:`decode` keep no state and may be called from any
thread (every symbol's runtime thread does); the first call of either picks the encoder,
and two threads racing it pick the same one. :func:`use` is for tests and benchmarks.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from math import isfinite
from typing import Any, Callable, Final

__all__ = [
    "DEEP_MESSAGE",
    "ENCODERS",
    "NAN_MESSAGE",
    "as_record",
    "decode",
    "decode_loose",
    "encode",
    "encoder_name",
    "loose_may_round",
    "to_bytes",
    "use",
]

NAN_MESSAGE: Final = ("NaN and Infinity cannot be sent to eKuiper (JSON has no such numbers); "
                      "replace them with None or a finite value")
DEEP_MESSAGE: Final = "value is nested too deeply to be sent as JSON"
_BYTES_MESSAGE: Final = ("bytes that are not UTF-8 cannot be sent as JSON; "
                         "encode them (e.g. base64) first")
_NAT_MESSAGE: Final = ("NaT (numpy's not-a-time) cannot be sent to eKuiper; "
                       "replace it with None or a real time")
# Preference order; "json" (the standard library) is always available.
ENCODERS: Final = ("orjson", "json")

# Types both encoders write as they are, with nothing inside to convert.
_LEAVES: Final = frozenset({str, int, float, bool, type(None)})
_NAN_FREE: Final = frozenset({str, int, bool})


def _unsupported(value: Any) -> TypeError:
    return TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _module(name: str) -> Any:
    """An already imported module, or None: a value of its types implies it is loaded."""
    return sys.modules.get(name)


# -- the conversions both encoders share ------------------------------------------------


def _convert(value: Any) -> Any:
    """What a value JSON has no form for travels as (one step; containers are walked by
    the encoder). Raises TypeError or ValueError for a value that cannot travel."""
    cls = type(value)
    module = cls.__module__
    if module == "numpy" or module.startswith("numpy."):
        return _numpy_value(value)
    dt = _module("datetime")
    if dt is not None and isinstance(value, (dt.date, dt.time)):
        return _iso(value, dt)
    dec = _module("decimal")
    if dec is not None and isinstance(value, dec.Decimal):
        return _decimal(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise TypeError(_BYTES_MESSAGE) from None
    record = as_record(value)
    if record is not None:
        return record
    if isinstance(value, tuple):
        return list(value)  # tuple subclasses that are not records (struct_time, ...)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, float):
        return float(value)  # a float subclass (orjson hands those to default)
    enum = _module("enum")
    if enum is not None and isinstance(value, enum.Enum):
        return value.value
    uuid = _module("uuid")
    if uuid is not None and isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise _unsupported(value)


def _iso(value: Any, dt: Any) -> str:
    if isinstance(value, dt.datetime):
        offset = value.utcoffset()
        if offset is not None and (offset.seconds % 60 or offset.microseconds):
            value = value.astimezone(dt.timezone.utc)
    return str(value.isoformat())


def _decimal(value: Any) -> Any:
    if not value.is_finite():
        raise ValueError(NAN_MESSAGE)
    number = float(value)
    if not isfinite(number):
        raise ValueError(f"Decimal {value} is beyond the range of eKuiper's numbers (float64); "
                         f"send it as text (str(value))")
    return int(value) if value.as_tuple().exponent >= 0 else number


def _numpy_value(value: Any) -> Any:
    """A numpy scalar or array as Python values (arrays as nested lists)."""
    np = sys.modules["numpy"]
    if isinstance(value, np.ndarray):
        if type(value) is not np.ndarray:  # matrix, masked array: their own tolist()
            return value.tolist()
        kind = value.dtype.kind
        if kind == "f":
            if value.dtype.itemsize != 8:
                # float16/32 as numpy prints them; wider ones rounded to float64.
                value = (value.astype(str) if value.dtype.itemsize < 8 else value)
                value = value.astype(np.float64)
            if not np.isfinite(value).all():
                raise ValueError(NAN_MESSAGE)
            return value.tolist()
        if kind in "biuOUS":
            return value.tolist()
        if kind == "M":
            if np.isnat(value).any():
                raise ValueError(_NAT_MESSAGE)
            return np.datetime_as_string(value).tolist()
        raise TypeError(f"numpy arrays of dtype {value.dtype} cannot be sent as JSON; "
                        f"convert them (e.g. .astype(float), .real) first")
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.timedelta64):  # an integer to numpy, not a number to eKuiper
        raise _unsupported(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        number = float(str(value)) if value.dtype.itemsize < 8 else float(value)
        if not isfinite(number):
            raise ValueError(NAN_MESSAGE)
        return number
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise ValueError(_NAT_MESSAGE)
        return str(np.datetime_as_string(value))
    raise _unsupported(value)


def as_record(value: Any) -> dict[str, Any] | None:
    """A NamedTuple or dataclass instance as a dict of its fields; None for other values."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return dict(value._asdict())
    if hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type):
        fields = sys.modules["dataclasses"].fields(value)
        return {field.name: getattr(value, field.name) for field in fields}
    return None


# -- the standard library's encoder -----------------------------------------------------


def _prepare(value: Any) -> Any:
    """``value`` with its NamedTuples (and other tuple subclasses) converted.

    The C encoder writes every tuple subclass as an array without asking ``default``, so
    records must be found before it runs. Containers of plain leaves are returned as they
    are, after one C-level pass over their items.
    """
    cls = type(value)
    if cls is dict:
        if _LEAVES.issuperset(map(type, value.values())):
            return value
        return {key: _prepare(item) for key, item in value.items()}
    if cls is list or cls is tuple:
        if _LEAVES.issuperset(map(type, value)):
            return value
        return [_prepare(item) for item in value]
    if cls in _LEAVES:
        return value
    if isinstance(value, tuple):
        return _prepare(_convert(value))
    if isinstance(value, dict):
        return {key: _prepare(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_prepare(item) for item in value]
    return value  # left to default


def _default_json(value: Any) -> Any:
    return _prepare(_convert(value))


# One encoder object for every frame: json.dumps() with options builds a new one per
# call, which was a tenth of a source's per-row cost.
_json_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                                default=_default_json).encode


def _encode_json(value: Any, known_nulls: int = 0) -> bytes:
    try:
        text = _json_encode(_prepare(value))
    except RecursionError:
        raise ValueError(DEEP_MESSAGE) from None
    except ValueError as exc:
        if "Out of range float" in str(exc):
            raise ValueError(NAN_MESSAGE) from None
        raise
    return text.encode("utf-8")


# -- orjson -----------------------------------------------------------------------------

_orjson: Any = None
_OPTIONS = 0
_NUMPY_OPTION = 0


def _default_orjson(value: Any) -> Any:
    cls = type(value)
    if cls.__module__ == "numpy":
        np = sys.modules["numpy"]
        if cls is np.ndarray and value.dtype.kind in "fbiu" and value.dtype.itemsize <= 8 \
                and not (value.dtype.kind == "f" and value.dtype.itemsize < 4):
            try:
                out = _orjson.dumps(value, option=_NUMPY_OPTION)
            except _orjson.JSONEncodeError:
                pass  # not C-contiguous, not native byte order, 0-d: the generic way
            else:
                # orjson writes NaN and Infinity as null; no other value of these
                # dtypes is null.
                if value.dtype.kind == "f" and b"null" in out:
                    raise ValueError(NAN_MESSAGE)
                return _orjson.Fragment(out)
    return _convert(value)


def _nonfinite(value: Any) -> bool:
    """Whether orjson wrote a NaN or Infinity in ``value`` as null (it refuses none)."""
    cls = type(value)
    if cls is float:
        return not isfinite(value)
    if cls in _LEAVES:
        return False
    if cls is dict:
        return any(map(_nonfinite, value.values()))
    if cls is list or cls is tuple:
        return any(map(_nonfinite, value))
    if cls.__module__ == "numpy":
        # _default_orjson refused non-finite numeric values already; object arrays hold
        # Python values orjson wrote one by one.
        kind = getattr(getattr(value, "dtype", None), "kind", "")
        return kind == "O" and _nonfinite(value.tolist())
    if isinstance(value, dict):
        return any(map(_nonfinite, value.values()))
    if isinstance(value, list):
        return any(map(_nonfinite, value))
    if isinstance(value, (str, int)):
        return False
    enum = _module("enum")
    if enum is not None and isinstance(value, enum.Enum):
        return _nonfinite(value.value)
    converted = _default_orjson(value)
    return not isinstance(converted, _orjson.Fragment) and _nonfinite(converted)


def _encode_orjson(value: Any, known_nulls: int = 0) -> bytes:
    try:
        out: bytes = _orjson.dumps(value, default=_default_orjson, option=_OPTIONS)
    except _orjson.JSONEncodeError:
        # Non-str keys, ints beyond 64 bits, nesting past orjson's 254 levels, and every
        # error: the standard library decides and words it, so both encoders agree.
        return _encode_json(value)
    # A str, int or bool (a function's usual result) holds no NaN: no search for null.
    if type(value) not in _NAN_FREE and out.count(b"null") > known_nulls \
            and _nonfinite(value):
        raise ValueError(NAN_MESSAGE)
    return out


# orjson reads an integer beyond 64 bits as a float, json as an int: a text with such a
# run of digits (inside a string too, which only costs the slower path) goes to json.
# Beyond 64 bits: 20 digits or more (u64's max has 20), or a minus and 19 (i64's min
# has 19); a 19-digit positive int (a timestamp in ns, say) is under u64's max and fast.
# For bytes, a translate (every digit and "-" to "0", every other byte to " ") and one
# substring search, a quarter of what the regex costs on a function request; a minus
# before 19 digits that is no number's sign only costs the slower path.
_DIGITS_AS_ZEROS: Final = bytes(48 if 48 <= i <= 57 or i == 45 else 32 for i in range(256))
_TWENTY_DIGITS: Final = b"0" * 20
_LONG_DIGITS_S: Final = re.compile(r"[-\d]{20}", re.ASCII).search


def _long_digits(raw: bytes | str) -> bool:
    if isinstance(raw, bytes):
        # find, not ``in``: ``in`` on bytes first tries the needle as an int and
        # raises and clears a TypeError, which costs as much as the search.
        return raw.translate(_DIGITS_AS_ZEROS).find(_TWENTY_DIGITS) >= 0
    return _LONG_DIGITS_S(raw) is not None


def _decode_orjson(raw: bytes | str) -> Any:
    if not _long_digits(raw):
        try:
            return _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass  # NaN literals, lone surrogates, a BOM or UTF-16, bad JSON: json decides
    return json.loads(raw)


def _load_orjson() -> bool:
    global _orjson, _OPTIONS, _NUMPY_OPTION
    if _orjson is None:
        try:
            import orjson
        except ImportError:
            return False
        _orjson = orjson
        # Dates and dataclasses through default: one definition of their form for both.
        _OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
        _NUMPY_OPTION = orjson.OPT_SERIALIZE_NUMPY
    return True


# -- selection --------------------------------------------------------------------------

_ENCODE: dict[str, Callable[..., bytes]] = {"orjson": _encode_orjson, "json": _encode_json}
_DECODE: dict[str, Callable[[bytes | str], Any]] = {"orjson": _decode_orjson,
                                                    "json": json.loads}
_MAY_ROUND: dict[str, Callable[[bytes | str], bool]] = {"orjson": _long_digits,
                                                       "json": lambda raw: False}
_current = ""


def use(name: str | None = None) -> str:
    """Encode with ``name`` ("orjson" or "json"), or the first available if None.

    Returns the name in use. Raises ImportError for orjson when it is not installed.
    """
    global encode, decode, decode_loose, loose_may_round, _current
    if name is None:
        name = "orjson" if _load_orjson() else "json"
    elif name == "orjson" and not _load_orjson():
        raise ImportError("orjson is not installed: pip install 'ekuiper-plugin-sdk[fast]'")
    elif name not in _ENCODE:
        raise ValueError(f"unknown encoder {name!r}: expected one of {', '.join(ENCODERS)}")
    encode = _ENCODE[name]
    decode = _DECODE[name]
    decode_loose = _orjson.loads if name == "orjson" else json.loads
    loose_may_round = _MAY_ROUND[name]
    _current = name
    return name


def encoder_name() -> str:
    """The encoder in use ("orjson" or "json"); picks one if none is yet."""
    return _current or use()


def _first_encode(value: Any, known_nulls: int = 0) -> bytes:
    # orjson is imported on the first frame, not with the SDK: it pulls in uuid,
    # dataclasses and inspect, tens of ms a plugin's start-up need not wait for.
    use()
    return encode(value, known_nulls)


encode: Callable[..., bytes] = _first_encode
"""``encode(value, known_nulls=0) -> bytes``: ``value`` as eKuiper's JSON, by the rules
above. ``known_nulls`` is how many ``null`` the caller knows the output holds (a row's
empty meta): with none beyond those, the NaN scan orjson needs is skipped."""


def _first_decode(raw: bytes | str) -> Any:
    use()
    return decode(raw)


decode: Callable[[bytes | str], Any] = _first_decode
"""``decode(raw) -> value``: JSON from eKuiper, exactly as ``json.loads`` reads it (and
raising what it raises), with orjson's speed where the two agree."""


def _first_decode_loose(raw: bytes | str) -> Any:
    use()
    return decode_loose(raw)


decode_loose: Callable[[bytes | str], Any] = _first_decode_loose
"""``decode_loose(raw) -> value``: as :func:`decode`, except that orjson may read an
integer beyond 64 bits as the float nearest it, and raises ValueError for any text it
refuses (NaN literals, say), which ``decode`` may still read. For a caller on a hot path
that looks at what it read anyway: where that holds no float (nor anything that could
hold one), it is exactly what ``decode`` gives, without the scan for long digit runs
that ``decode`` pays for; where it does, :func:`loose_may_round` tells whether to read
``raw`` again with ``decode``, as it must on a ValueError. It is orjson's own loads, for
the frame a wrapper costs."""


def _first_may_round(raw: bytes | str) -> bool:
    use()
    return loose_may_round(raw)


loose_may_round: Callable[[bytes | str], bool] = _first_may_round
"""``loose_may_round(raw) -> bool``: whether :func:`decode_loose` may have read an
integer of ``raw`` as a float (only orjson does, and only with a run of 20 digits, or a
minus and 19, in the text)."""


# -- binary payloads --------------------------------------------------------------------


def to_bytes(value: Any) -> bytes:
    """The bytes of a binary payload, as eKuiper hands it to a plugin.

    A stream with ``FORMAT="binary"`` (an image, say) holds its payload in the ``self``
    field. eKuiper writes its JSON with Go's encoding/json, which turns bytes into base64
    text: a function receives ``self`` as a base64 ``str``, and so does a sink that
    decodes rows (``decode_rows``; the rows are ``{"self": "<base64>"}``). A sink whose
    action sets ``"format": "binary"`` (eKuiper 2.x) receives the payload's raw bytes.
    This takes any of them: base64 text is decoded (strictly), bytes-like values are
    returned as bytes.

    Raises TypeError for other types and ValueError for text that is not base64.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        import base64
        import binascii

        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                f"{value[:40]!r}{'...' if len(value) > 40 else ''} is not base64 text; "
                f"pass the field of a binary payload (self, as eKuiper sends it)"
            ) from None
    raise TypeError(f"to_bytes() takes base64 text or bytes (a binary payload as eKuiper "
                    f"sends it), got {type(value).__name__}")
