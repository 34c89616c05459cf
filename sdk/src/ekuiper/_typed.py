"""Typed config and typed function signatures: what eKuiper sends, checked and converted.

Pure: no I/O, no threads. Imported only by plugins that declare a ``config_type`` on a
source or sink, or a typed ``call`` on a function (it costs the ``dataclasses``,
``inspect`` and ``typing`` machinery that an untyped plugin never loads).

Two strictness levels, one table of rules (``_converter``):

* conf (``lenient=True``): values come from yaml and from rule JSON, where people quote
  numbers and eKuiper turns every JSON number into a float64. Accepted beyond the exact
  type: an integral float or a decimal string for ``int``; an int or a number string for
  ``float``; ``true``/``false`` (and the other spellings of Go's ``strconv.ParseBool``) for
  ``bool``; a Go duration (``"1m30s"``) or milliseconds for ``timedelta``, as eKuiper's
  own ``DurationConf``. Never a number for ``str`` (the fix, quoting it, is named).
* function arguments (``lenient=False``): SQL values are typed, so only lossless number
  changes (an int for ``float``, an integral float for ``int``); a string is never parsed.

Errors are ``ConfigError``/``ArgumentError`` whose text names the field (or argument),
the value and the expected type; any other exception from hostile input is a bug.
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import inspect
import math
import re
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, NamedTuple, Union

from ekuiper._durations import go_duration_seconds
from ekuiper._policy import SINK_KEYS
from ekuiper.errors import ArgumentError, ConfigError

__all__ = [
    "EKUIPER_KEYS",
    "CallSpec",
    "ConfigSpec",
    "Field",
    "Param",
    "bind_call",
    "call_spec",
    "check_call_nodes",
    "config_spec",
    "convert_config",
    "literal_of",
    "type_label",
]

_MISSING: Any = dataclasses.MISSING

# Keys eKuiper itself puts into a symbol's conf (v2.4: internal/topo/node/conf/source.go
# and planner_source.go for sources; node/props.go and pkg/model/conf.go for sinks; the
# SDK's own logLevel). They are not the plugin's to declare, so an undeclared one is
# dropped silently; a declared one (say `format`) is converted like any field.
EKUIPER_KEYS = frozenset({
    # source: stream options and what the planner adds
    "datasource", "format", "key", "schemaId", "delimiter", "retainSize",
    "strictValidation", "timestamp", "timestampFormat", "confKey", "type", "shared",
    "connectionSelector", "colAliasMapping", "payloadFormat", "payloadSchemaId",
    "payloadDelimiter", "payloadBatchField", "payloadField", "decompression",
    "bufferLength", "interval", "lookup",
    # sink: common action properties and the cache/resend ones
    "requireAck", "concurrency", "omitIfEmpty", "sendSingle", "dataTemplate", "fields",
    "excludeFields", "dataField", "batchSize", "lingerInterval", "compression",
    "compressionProps", "encryption", "encProps", "hasHeader", "runAsync",
    "enableCache", "memoryCacheThreshold", "maxDiskCache", "bufferPageSize",
    "resendInterval", "cleanCacheAtStop", "resendAlterQueue", "resendPriority",
    "resendIndicatorField", "resendDestination",
    # the SDK: a symbol's log level, and a sink's error policy (read by _policy)
    "logLevel", *SINK_KEYS,
})

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT_RE = re.compile(r"\A[+-]?[0-9]+\Z")
# A float holds every integer up to this exactly; beyond it int -> float is lossy.
_EXACT_FLOAT_INT = 2 ** 53
_MAX_SHOWN = 60

Convert = Callable[[Any, str], Any]
_NoneType = type(None)


def _show(value: Any) -> str:
    """A value as an error text shows it: short, typed, never raising."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN - 3] + "..."
    kind = "null" if value is None else type(value).__name__
    return f"{text} ({kind})"


def type_label(tp: Any) -> str:
    """A type as people write it in Python: ``float``, ``list[str]``, ``int | None``."""
    tp = _strip_annotated(tp)
    if tp is Any:
        return "any value"
    if tp is _NoneType:
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if _is_union(origin):
        return " | ".join(type_label(a) for a in args)
    if origin is not None and args:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join('...' if a is Ellipsis else type_label(a) for a in args)}]"
    return str(tp).replace("typing.", "")


def _is_union(origin: Any) -> bool:
    return origin is Union or (origin is not None and getattr(origin, "__name__", "") ==
                               "UnionType")


_WRAPPERS = tuple(w for w in (typing.Annotated, getattr(typing, "Required", None),
                               getattr(typing, "NotRequired", None)) if w is not None)


def _strip_annotated(tp: Any) -> Any:
    """``T`` of ``Annotated[T, ...]`` (and of a TypedDict's ``Required[T]``)."""
    while typing.get_origin(tp) in _WRAPPERS:
        tp = typing.get_args(tp)[0]
    return tp


def _annotated_hint(tp: Any) -> str:
    """The first string in ``Annotated[T, "..."]``: the field's hint in the metadata."""
    if typing.get_origin(tp) is typing.Annotated:
        for extra in typing.get_args(tp)[1:]:
            if isinstance(extra, str):
                return extra
    return ""


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def _fail(cls: type[Exception], path: str, value: Any, expected: str, fix: str = "") -> Any:
    text = f"{_where(path)}expected {expected}, got {_show(value)}"
    raise cls(f"{text}; {fix}" if fix else text)


# -- conversion rules -------------------------------------------------------------------

class _Rules:
    """The converters of one strictness; ``err`` is the exception they raise."""

    def __init__(self, lenient: bool, err: type[Exception]) -> None:
        self.lenient = lenient
        self.err = err

    def to_int(self, value: Any, path: str) -> int:
        if type(value) is int:
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if self.lenient and isinstance(value, str) and _INT_RE.match(value.strip()):
            try:
                return int(value.strip())
            except ValueError:  # past Python's digit limit for int("...")
                pass
        return _fail(self.err, path, value, "an integer (int)")  # type: ignore[no-any-return]

    def to_float(self, value: Any, path: str) -> float:
        if type(value) is float:
            if math.isfinite(value):
                return value
            return _fail(self.err, path, value, "a finite number (float)")  # type: ignore[no-any-return]
        if type(value) is int:
            if abs(value) <= _EXACT_FLOAT_INT:
                return float(value)
            return _fail(self.err, path, value, "a number a float holds exactly "  # type: ignore[no-any-return]
                         "(at most 2**53 in size)")
        if self.lenient and isinstance(value, str):
            try:
                parsed = float(value.strip())
            except ValueError:
                parsed = math.nan
            if math.isfinite(parsed):
                return parsed
        return _fail(self.err, path, value, "a number (float)")  # type: ignore[no-any-return]

    def to_bool(self, value: Any, path: str) -> bool:
        if type(value) is bool:
            return value
        if self.lenient and isinstance(value, str):
            if value.strip() in _TRUE:
                return True
            if value.strip() in _FALSE:
                return False
        return _fail(self.err, path, value, "true or false (bool)")  # type: ignore[no-any-return]

    def to_str(self, value: Any, path: str) -> str:
        if isinstance(value, str):
            return str(value)
        fix = "quote it" if self.lenient and isinstance(value, (int, float)) else ""
        return _fail(self.err, path, value, "a string (str)", fix)  # type: ignore[no-any-return]

    def to_timedelta(self, value: Any, path: str) -> timedelta:
        seconds: float | None = None
        if isinstance(value, timedelta):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                seconds = value / 1000.0  # eKuiper's DurationConf: a number is milliseconds
            except OverflowError:  # an int too large for a float
                seconds = None
        elif self.lenient and isinstance(value, str):
            seconds = go_duration_seconds(value)
        if seconds is not None and math.isfinite(seconds):
            try:
                return timedelta(seconds=seconds)
            except OverflowError:
                pass
        return _fail(self.err, path, value, 'a duration such as "1.5s", "500ms" or "1m30s", '  # type: ignore[no-any-return]
                     "or milliseconds (timedelta)")


def _converter(tp: Any, rules: _Rules, owner: str) -> Convert | None:
    """The function converting a value to ``tp``, or None where any value passes as is.

    Raises TypeError (a plugin bug, reported at start) for a type it cannot convert to.
    """
    tp = _strip_annotated(tp)
    if tp is Any or tp is object:
        return None
    simple = {int: rules.to_int, float: rules.to_float, bool: rules.to_bool,
              str: rules.to_str, timedelta: rules.to_timedelta}
    if tp in simple:
        return simple[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(origin):
        return _union(args, rules, owner)
    if origin is typing.Literal:
        return _literal(args, rules)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp, rules)
    if tp is list or origin is list or tp is tuple or origin is tuple:
        item_tp = args[0] if args and (origin is list or args[1:] == (Ellipsis,)) else Any
        if origin is tuple and args and args[1:] != (Ellipsis,):
            raise TypeError(f"{owner}: fixed-length {type_label(tp)} is not supported; "
                            "use tuple[T, ...] or list[T]")
        return _sequence(_converter(item_tp, rules, owner), rules,
                         tuple if (tp is tuple or origin is tuple) else list, type_label(tp))
    if tp is dict or origin is dict or origin is Mapping:
        if args and _strip_annotated(args[0]) is not str:
            raise TypeError(f"{owner}: {type_label(tp)} needs str keys (JSON has no others)")
        return _mapping(_converter(args[1], rules, owner) if args else None, rules,
                        type_label(tp))
    if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or _is_typeddict(tp)):
        spec = config_spec(tp, rules.lenient)

        def record(value: Any, path: str) -> Any:
            # Inside convert_config, nested undeclared keys follow config_unknown as the
            # top level's do; anywhere else (a function argument) they are refused.
            collected = _nested_unknown.get()
            value, unknown = _record(spec, value, path, rules, strict_keys=collected is None)
            if collected is not None:
                collected.extend(f"{path}.{key}" for key in unknown)
            return value
        return record
    raise TypeError(f"{owner}: cannot convert to {type_label(tp)}; use int, float, bool, "
                    "str, timedelta, Literal, an Enum, list, dict, a dataclass or a TypedDict")


def _union(args: tuple[Any, ...], rules: _Rules, owner: str) -> Convert | None:
    nullable = _NoneType in args
    members = [a for a in args if a is not _NoneType]
    convs = [_converter(a, rules, owner) for a in members]
    if any(c is None for c in convs):
        return None
    label = type_label(Union[tuple(args)])
    # An exact type match first: `int | str` given "5" stays a string.
    exact = tuple(m for m in members if m in (int, str, bool))

    if len(convs) == 1:
        only = convs[0]
        assert only is not None

        def optional(value: Any, path: str) -> Any:
            # The member's own error says more than "expected T | None".
            return None if value is None else only(value, path)

        return optional

    def convert(value: Any, path: str) -> Any:
        if value is None and nullable:
            return None
        if exact and type(value) in exact:
            return value
        for conv in convs:
            try:
                return conv(value, path)  # type: ignore[misc]
            except rules.err:
                continue
        return _fail(rules.err, path, value, label)

    return convert


def _literal(choices: tuple[Any, ...], rules: _Rules) -> Convert:
    label = "one of " + ", ".join(repr(c) for c in choices)

    def convert(value: Any, path: str) -> Any:
        for choice in choices:
            # 1 == True in Python; a literal choice must match its type too.
            if type(value) is type(choice) and value == choice:
                return choice
            if type(choice) is int and type(value) is float and value == choice:
                return choice
        return _fail(rules.err, path, value, label)

    return convert


def _enum(tp: type[enum.Enum], rules: _Rules) -> Convert:
    members = list(tp)
    label = f"one of {', '.join(repr(m.value) for m in members)} ({tp.__name__})"

    def convert(value: Any, path: str) -> Any:
        if isinstance(value, tp):
            return value
        for member in members:
            if type(value) is type(member.value) and value == member.value:
                return member
        if isinstance(value, str) and value in tp.__members__:
            return tp.__members__[value]
        return _fail(rules.err, path, value, label)

    return convert


def _sequence(item: Convert | None, rules: _Rules, kind: type, label: str) -> Convert:
    def convert(value: Any, path: str) -> Any:
        if not isinstance(value, (list, tuple)):
            return _fail(rules.err, path, value, f"a list ({label})")
        if item is None:
            return kind(value)
        return kind(item(v, f"{path}[{i}]") for i, v in enumerate(value))

    return convert


def _mapping(item: Convert | None, rules: _Rules, label: str) -> Convert:
    def convert(value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            return _fail(rules.err, path, value, f"an object ({label})")
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                _fail(rules.err, path, key, "string keys")
            out[key] = v if item is None else item(v, f"{path}.{key}" if path else key)
        return out

    return convert


# -- records: dataclasses and TypedDicts ------------------------------------------------

def _is_typeddict(tp: type) -> bool:
    return isinstance(getattr(tp, "__required_keys__", None), frozenset) and issubclass(tp, dict)


class Field(NamedTuple):
    """One declared property: its key, type, default (or required) and hint."""

    name: str
    type: Any
    required: bool
    default: Any  # _MISSING when there is none, or when it comes from a default_factory
    hint: str
    label: str
    convert: Convert | None


class ConfigSpec(NamedTuple):
    """What a ``config_type`` declares, resolved once per class."""

    cls: type
    fields: tuple[Field, ...]
    by_name: Mapping[str, Field]
    typed_dict: bool
    doc: str


def _hints(tp: Any, owner: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(tp, include_extras=True)
    except Exception as exc:  # NameError for a forward reference nobody defined, ...
        raise TypeError(f"{owner}: cannot read its type hints ({type(exc).__name__}: "
                        f"{exc}){_pep604_fix(exc)}") from None


def _pep604_fix(exc: Exception, version: tuple[int, ...] = sys.version_info[:3]) -> str:
    """What to write instead of ``T | None``, which Python 3.9 cannot evaluate."""
    if version < (3, 10) and isinstance(exc, TypeError) and "|" in str(exc):
        return "; Python 3.9 cannot evaluate T | None: write Optional[T] (and Union[A, B])"
    return ""


_specs: dict[tuple[type, bool], ConfigSpec] = {}
# The nested records' undeclared keys (as paths) while convert_config runs, else None.
_nested_unknown: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "ekuiper_nested_unknown", default=None)
# The records whose spec is being built: a field of one of them naming it again is a cycle.
_building: set[tuple[type, bool]] = set()


def config_spec(cls: type, lenient: bool = True) -> ConfigSpec:
    """The fields of a dataclass or TypedDict; TypeError (naming it) for anything else.

    ``lenient``: converted as conf (raising ConfigError), else as function arguments
    (raising ArgumentError).
    """
    cached = _specs.get((cls, lenient))
    if cached is not None:
        return cached
    owner = getattr(cls, "__qualname__", repr(cls))
    if (cls, lenient) in _building:
        raise TypeError(f"{owner} contains itself (a recursive type); config and argument "
                        "types must be finite: use dict[str, Any] for the recursive part")
    _building.add((cls, lenient))
    try:
        return _config_spec(cls, lenient, owner)
    finally:
        _building.discard((cls, lenient))


def _config_spec(cls: type, lenient: bool, owner: str) -> ConfigSpec:
    # Lenient is the conf's strictness, strict a function argument's (a map given to a
    # dataclass parameter): each raises its own error.
    rules = _Rules(lenient, ConfigError if lenient else ArgumentError)
    hints = _hints(cls, owner)
    fields: list[Field] = []
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        typed_dict = False
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            tp = hints.get(f.name, Any)
            has_default = f.default is not _MISSING or f.default_factory is not _MISSING
            fields.append(Field(f.name, tp, not has_default, f.default,
                                str(f.metadata.get("hint", "")) or _annotated_hint(tp),
                                str(f.metadata.get("label", "")),
                                _converter(tp, rules, f"{owner}.{f.name}")))
    elif isinstance(cls, type) and _is_typeddict(cls):
        typed_dict = True
        required = cls.__required_keys__  # type: ignore[attr-defined]
        for name, tp in hints.items():
            fields.append(Field(name, tp, name in required, _MISSING, _annotated_hint(tp), "",
                                _converter(tp, rules, f"{owner}.{name}")))
    else:
        raise TypeError(f"config_type {owner} must be a dataclass or a TypedDict")
    spec = ConfigSpec(cls, tuple(fields), {f.name: f for f in fields}, typed_dict,
                      inspect.cleandoc(cls.__doc__ or "") if not _auto_doc(cls) else "")
    _specs[(cls, lenient)] = spec
    return spec


def _auto_doc(cls: type) -> bool:
    """Whether ``__doc__`` is the signature dataclasses writes for undocumented classes."""
    return bool(cls.__doc__ and cls.__doc__.startswith(f"{cls.__name__}("))


def _record(spec: ConfigSpec, value: Any, path: str, rules: _Rules,
            strict_keys: bool) -> tuple[Any, list[str]]:
    if not isinstance(value, Mapping):
        return _fail(rules.err, path, value, f"an object ({spec.cls.__name__})"), []
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, raw in value.items():
        field = spec.by_name.get(key) if isinstance(key, str) else None
        if field is None:
            unknown.append(key if isinstance(key, str) else repr(key))
            continue
        sub = f"{path}.{key}" if path else key
        out[key] = raw if field.convert is None else field.convert(raw, sub)
    # A typo'd key also makes its field missing: name the typo first.
    if strict_keys and unknown:
        raise rules.err(f"{_where(path)}unknown propert{'y' if len(unknown) == 1 else 'ies'} "
                        f"{', '.join(repr(k) for k in unknown[:10])}"
                        f"{_suggest(unknown[0], spec)}; {spec.cls.__name__} declares "
                        f"{', '.join(f.name for f in spec.fields) or 'none'}")
    missing = [f for f in spec.fields if f.required and f.name not in out]
    if missing:
        names = ", ".join(f"{f.name} ({type_label(f.type)})" for f in missing)
        where = f" in {path}" if path else ""
        typo = (f"; undeclared {unknown[0]!r} given{_suggest(unknown[0], spec)}"
                if unknown and path else "")
        raise rules.err(f"missing required propert{'y' if len(missing) == 1 else 'ies'}"
                        f"{where}: {names}{typo}")
    if spec.typed_dict:
        return out, unknown
    try:
        return spec.cls(**out), unknown
    except (TypeError, ValueError) as exc:  # a __post_init__ that checks values itself
        raise rules.err(f"{_where(path)}{spec.cls.__name__} refused the values: "
                        f"{exc}") from None


def _suggest(key: str, spec: ConfigSpec) -> str:
    import difflib  # only on the error path

    if "." in key:  # a nested record's key: its own record was the one to suggest from
        return ""
    close = difflib.get_close_matches(key, list(spec.by_name), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def convert_config(cls: type, conf: Mapping[str, Any],
                   unknown: str = "warn") -> tuple[Any, list[str]]:
    """Validate and convert the merged conf eKuiper sent; (value, unknown keys to warn of).

    Keys eKuiper adds itself (EKUIPER_KEYS) are dropped unless declared. ``unknown`` says
    what other undeclared keys do: ``"warn"`` returns them for the caller to log,
    ``"ignore"`` drops them, ``"error"`` raises ConfigError naming them. Raises
    ConfigError for a bad value, TypeError if ``cls`` is not a usable config type.
    """
    spec = config_spec(cls)
    if unknown not in ("warn", "ignore", "error"):
        raise TypeError(f"config_unknown must be 'warn', 'ignore' or 'error', got {unknown!r}")
    nested: list[str] = []
    token = _nested_unknown.set(nested)
    try:
        value, extra = _record(spec, conf, "", _Rules(True, ConfigError), strict_keys=False)
    finally:
        _nested_unknown.reset(token)
    extra = [k for k in extra if k not in EKUIPER_KEYS] + nested
    if extra and unknown == "error":
        raise ConfigError(f"unknown propert{'y' if len(extra) == 1 else 'ies'} "
                          f"{', '.join(repr(k) for k in extra[:10])}{_suggest(extra[0], spec)}; "
                          f"{spec.cls.__name__} declares "
                          f"{', '.join(f.name for f in spec.fields) or 'none'}")
    return value, (extra if unknown == "warn" else [])


def unknown_text(cls: type, keys: Sequence[str]) -> str:
    """The warning for undeclared keys, with the nearest declared name where there is one."""
    spec = config_spec(cls)
    return (f"ignoring undeclared propert{'y' if len(keys) == 1 else 'ies'} "
            f"{', '.join(repr(k) for k in keys[:10])}{_suggest(keys[0], spec)} "
            f"({spec.cls.__name__} declares "
            f"{', '.join(f.name for f in spec.fields) or 'none'})")


# -- typed function calls -----------------------------------------------------------------

class Param(NamedTuple):
    """One SQL argument of a typed ``call``."""

    name: str
    type: Any
    required: bool
    default: Any
    convert: Convert | None
    fast: tuple[type, ...]  # value types that pass as they are, without a call


class CallSpec(NamedTuple):
    """A typed ``call`` resolved once per class: its SQL arguments and return type."""

    name: str
    params: tuple[Param, ...]
    variadic: Param | None  # *args: each extra SQL argument
    wants_ctx: bool  # a keyword-only ``ctx`` parameter gets the Context
    returns: Any
    doc: str

    @property
    def least(self) -> int:
        return sum(p.required for p in self.params)

    @property
    def most(self) -> int | None:
        return None if self.variadic is not None else len(self.params)

    def usage(self) -> str:
        """``shout(text: str, times: int = 1)``, as the error texts show it."""
        parts = [f"{p.name}: {type_label(p.type)}" + ("" if p.required else
                 f" = {p.default!r}") for p in self.params]
        if self.variadic is not None:
            parts.append(f"*{self.variadic.name}: {type_label(self.variadic.type)}")
        return f"{self.name}({', '.join(parts)})"


_FAST = {int: (int,), float: (float,), str: (str,), bool: (bool,)}
_calls: dict[tuple[type, str], CallSpec] = {}


def call_spec(cls: type, name: str = "") -> CallSpec:
    """Read ``cls.call``'s signature; TypeError naming what cannot come from SQL."""
    key = (cls, name)
    cached = _calls.get(key)
    if cached is not None:
        return cached
    shown = name or cls.__name__.lower()
    owner = f"{cls.__qualname__}.call"
    call = cls.call  # type: ignore[attr-defined]
    if inspect.iscoroutinefunction(call):
        raise TypeError(f"{owner} is async def, which a typed call cannot be; make call() "
                        "a plain def, or write async def exec(self, args, ctx)")
    rules = _Rules(False, ArgumentError)
    hints = _hints(call, owner)
    params: list[Param] = []
    variadic: Param | None = None
    wants_ctx = False
    for i, p in enumerate(inspect.signature(call).parameters.values()):
        if i == 0:
            continue  # self
        tp = hints.get(p.name, Any)
        if p.kind is p.KEYWORD_ONLY and p.name == "ctx":
            wants_ctx = True
            continue
        if p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD):
            if p.kind is p.KEYWORD_ONLY and p.default is not p.empty:
                continue  # never passed from SQL; the default applies
            raise TypeError(f"{owner}: parameter {p.name!r} cannot be passed from SQL "
                            "(SQL arguments are positional; only a keyword-only `ctx` "
                            "gets the Context)")
        param = Param(p.name, tp, p.default is p.empty and p.kind is not p.VAR_POSITIONAL,
                      None if p.default is p.empty else p.default,
                      _converter(tp, rules, f"{owner}({p.name})"),
                      _FAST.get(_strip_annotated(tp), ()))
        if p.kind is p.VAR_POSITIONAL:
            variadic = param
        else:
            params.append(param)
    doc = inspect.cleandoc(call.__doc__ or "")
    spec = CallSpec(shown, tuple(params), variadic, wants_ctx, hints.get("return", Any), doc)
    _calls[key] = spec
    return spec


def _count_error(spec: CallSpec, given: int) -> ArgumentError:
    least, most = spec.least, spec.most
    if most == least:
        wanted = f"{least} argument{'s' if least != 1 else ''}"
    elif most is None:
        wanted = f"at least {least} argument{'s' if least != 1 else ''}"
    else:
        wanted = f"{least} to {most} arguments"
    return ArgumentError(f"{spec.name}() takes {wanted}, got {given}: {spec.usage()}")


def bind_call(obj: Any, spec: CallSpec) -> Callable[[list[Any], Any], Any]:
    """``(args, ctx) -> obj.call(*converted args)``, checked; built once per function.

    Per call: a length check, then per argument one type test (a value of the declared
    type passes without a further call), the converter only for the others. Converted
    values replace the originals in ``args``, which the caller hands over (the runtime's
    list is parsed per request and used for nothing else).
    """
    call = obj.call
    least = spec.least
    most = spec.most if spec.most is not None else 1 << 62
    # Which argument positions carry a converter: fixed here, not per call.
    checks = tuple((i, p.fast, p.convert, f"argument {i + 1} ({p.name}) of {spec.name}()")
                   for i, p in enumerate(spec.params) if p.convert is not None)
    var = spec.variadic if spec.variadic is not None and spec.variadic.convert else None
    start_var = len(spec.params)
    wants_ctx = spec.wants_ctx
    if spec.most is not None:
        return _compiled(call, spec, checks)

    def invoke(args: list[Any], ctx: Any) -> Any:
        n = len(args)
        if n < least or n > most:
            raise _count_error(spec, n)
        for i, fast, convert, where in checks:
            if i >= n:
                break
            v = args[i]
            if type(v) not in fast:
                args[i] = _arg(convert, v, where)
        if var is not None:
            for j in range(start_var, n):
                v = args[j]
                if type(v) not in var.fast:
                    args[j] = _arg(var.convert, v,  # type: ignore[arg-type]
                                   f"argument {j + 1} ({var.name}) of {spec.name}()")
        if wants_ctx:
            return call(*args, ctx=ctx)
        return call(*args)

    return invoke


def _compiled(call: Callable[..., Any], spec: CallSpec,
              checks: tuple[tuple[int, tuple[type, ...], Any, str], ...]
              ) -> Callable[[list[Any], Any], Any]:
    """The binder without a loop: one line per checked argument, as dataclasses does it.

    Only integers and fixed names go into the generated source; the types, converters and
    texts are looked up in its namespace. A loop over the checks costs about twice as
    many instructions per call.
    """
    ns: dict[str, Any] = {"call": call, "_arg": _arg, "_count_error": _count_error,
                          "spec": spec}
    least, most = spec.least, spec.most
    lines = ["def invoke(args, ctx):", "    n = len(args)",
             f"    if n != {least}:" if least == most else f"    if n < {least} or n > {most}:",
             "        raise _count_error(spec, n)"]
    for i, fast, convert, where in checks:
        ns[f"c{i}"], ns[f"w{i}"] = convert, where
        guard = "" if i < least else f"n > {i} and "
        if len(fast) == 1:
            ns[f"t{i}"] = fast[0]
            test = f"type(args[{i}]) is not t{i}"
        elif fast:
            ns[f"f{i}"] = fast
            test = f"type(args[{i}]) not in f{i}"
        else:
            test = "True"
        lines += [f"    if {guard}{test}:", f"        args[{i}] = _arg(c{i}, args[{i}], w{i})"]
    lines.append("    return call(*args, ctx=ctx)" if spec.wants_ctx else "    return call(*args)")
    # Our own source (see the docstring); the file name says what it is in a traceback.
    exec(compile("\n".join(lines), f"<ekuiper binder of {spec.name}()>", "exec"), ns)
    invoke: Callable[[list[Any], Any], Any] = ns["invoke"]
    return invoke


def _arg(convert: Convert, value: Any, where: str) -> Any:
    try:
        return convert(value, where)
    except ArgumentError:
        if value is None:
            raise ArgumentError(f"{where} is null; declare it Optional (`T | None`) to take "
                                "nulls, or filter them out in SQL") from None
        raise


def literal_of(node: Any) -> tuple[bool, Any]:
    """(True, value) if a Validate argument node is a literal, else (False, None).

    eKuiper encodes its AST nodes with Go's encoding/json: a StringLiteral, NumberLiteral,
    IntegerLiteral or BooleanLiteral is an object with the one key ``Val`` (a number
    literal 2.0 arrives as ``{"Val": 2}``); a field reference or an expression has other
    keys and is not checked.
    """
    if isinstance(node, Mapping) and len(node) == 1 and "Val" in node:
        value = node["Val"]
        if value is None or isinstance(value, (str, int, float, bool)):
            return True, value
    return False, None


def check_call_nodes(spec: CallSpec, nodes: Sequence[Any]) -> str:
    """The default ``validate`` of a typed function: "" or the reason to refuse the rule."""
    n = len(nodes)
    if n < spec.least or (spec.most is not None and n > spec.most):
        return str(_count_error(spec, n))
    for i, node in enumerate(nodes):
        param = spec.params[i] if i < len(spec.params) else spec.variadic
        if param is None or param.convert is None:
            continue
        is_literal, value = literal_of(node)
        if not is_literal or value is None:
            continue
        where = f"argument {i + 1} ({param.name}) of {spec.name}()"
        try:
            param.convert(value, where)
        except ArgumentError as exc:
            return f"{exc}: {spec.usage()}"
    return ""
