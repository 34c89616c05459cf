"""ekuiper._typed: conf conversion and typed call signatures, pure."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Literal, Optional, TypedDict, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ekuiper import Context, Function
from ekuiper._typed import (
    EKUIPER_KEYS,
    _pep604_fix,
    bind_call,
    call_spec,
    check_call_nodes,
    config_spec,
    convert_config,
    literal_of,
    type_label,
    unknown_text,
)
from ekuiper.errors import ArgumentError, ConfigError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Server:
    host: str
    port: int = 80


@dataclass
class Conf:
    """Everything the converter knows."""

    name: str
    rate: float = 1.0
    count: Optional[int] = None  # noqa: UP045 (the typing spelling must work too)
    on: bool = False
    every: timedelta = timedelta(seconds=1)
    mode: Literal["fast", "slow"] = "fast"
    color: Color = Color.RED
    tags: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    server: Server | None = None
    servers: list[Server] = field(default_factory=list)
    anything: Any = None
    either: Union[int, str] = 0
    noted: Annotated[int, "a hint"] = 0


class TD(TypedDict, total=False):
    a: int
    b: str


def conv(**conf: Any) -> Any:
    return convert_config(Conf, {"name": "n", **conf})[0]


# -- conf: conversions ---------------------------------------------------------------

def test_defaults_fill_absent_fields() -> None:
    """Only the required field given: every other field has its default."""
    assert conv() == Conf("n")


@pytest.mark.parametrize(("raw", "expected"), [
    (2, 2.0), (2.5, 2.5), ("2.5", 2.5), (" 3 ", 3.0), (-1, -1.0)])
def test_float_accepts_numbers_and_number_strings(raw: Any, expected: float) -> None:
    """A float field takes ints, floats and (yaml-quoted) number strings."""
    value = conv(rate=raw).rate
    assert value == expected and type(value) is float


@pytest.mark.parametrize(("raw", "expected"), [(3, 3), (3.0, 3), ("3", 3), ("-7", -7)])
def test_int_accepts_integral_numbers(raw: Any, expected: int) -> None:
    """An int field takes ints, integral floats (eKuiper's float64) and digit strings."""
    value = conv(count=raw).count
    assert value == expected and type(value) is int


@pytest.mark.parametrize("raw", [3.5, "3.5", "x", True, [1], float("inf")])
def test_int_refuses_lossy_or_foreign_values(raw: Any) -> None:
    """A fraction, a bool, a non-number string or a list is not an int."""
    with pytest.raises(ConfigError, match=r"^count: expected an integer \(int\), got "):
        conv(count=raw)


@pytest.mark.parametrize(("raw", "expected"), [
    (True, True), ("true", True), ("FALSE", False), ("1", True), ("f", False)])
def test_bool_accepts_go_parsebool_spellings(raw: Any, expected: bool) -> None:
    """A bool field takes bools and the strings Go's strconv.ParseBool reads."""
    assert conv(on=raw).on is expected


@pytest.mark.parametrize("raw", [1, 0, "yes", None])
def test_bool_refuses_numbers_and_other_words(raw: Any) -> None:
    """1, 0 and "yes" are not booleans."""
    with pytest.raises(ConfigError, match=r"^on: expected true or false \(bool\)"):
        conv(on=raw)


def test_str_refuses_a_number_and_says_to_quote_it() -> None:
    """A yaml number for a str field: the error says to quote it."""
    with pytest.raises(ConfigError, match=r"^name: expected a string \(str\), got 7 \(int\); "
                                          r"quote it$"):
        convert_config(Conf, {"name": 7})


@pytest.mark.parametrize(("raw", "seconds"), [
    ("1m30s", 90.0), ("500ms", 0.5), ("1.5h", 5400.0), (250, 0.25), ("0", 0.0),
    ("-2s", -2.0)])
def test_duration_reads_go_durations_and_milliseconds(raw: Any, seconds: float) -> None:
    """timedelta: a Go duration string, or a number of milliseconds (eKuiper's rule)."""
    assert conv(every=raw).every.total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["90", "1x", "s", "", True])
def test_duration_refuses_unitless_strings(raw: Any) -> None:
    """A string without a unit (or a bool) is not a duration."""
    with pytest.raises(ConfigError, match=r"^every: expected a duration"):
        conv(every=raw)


def test_literal_and_enum_choices() -> None:
    """Literal takes one of its values; an Enum its values or member names."""
    assert conv(mode="slow").mode == "slow"
    assert conv(color="blue").color is Color.BLUE
    assert conv(color="RED").color is Color.RED
    with pytest.raises(ConfigError, match=r"^mode: expected one of 'fast', 'slow', got 'x'"):
        conv(mode="x")


def test_nested_records_and_lists_convert_deeply() -> None:
    """Nested dataclasses in fields and lists are built, their values converted."""
    got = conv(server={"host": "h", "port": "8080"}, servers=[{"host": "a"}],
               tags=["x"], weights={"a": 1})
    assert got.server == Server("h", 8080) and got.servers == [Server("a")]
    assert got.weights == {"a": 1.0} and type(got.weights["a"]) is float


def test_nested_error_names_the_path() -> None:
    """An error inside a list of records names the index and the field."""
    with pytest.raises(ConfigError, match=r"^servers\[1\]\.port: expected an integer"):
        conv(servers=[{"host": "a"}, {"host": "b", "port": "x"}])


def test_nested_unknown_key_follows_config_unknown() -> None:
    """A nested record's undeclared key is returned with its path, as a top-level one is."""
    value, unknown = convert_config(Conf, {"name": "n", "server": {"host": "h", "x": 1}})
    assert value.server == Server("h") and unknown == ["server.x"]


def test_nested_unknown_key_error_mode_names_the_path() -> None:
    """config_unknown="error" refuses a nested undeclared key, naming its path."""
    with pytest.raises(ConfigError, match=r"^unknown property 'server\.x'"):
        convert_config(Conf, {"name": "n", "server": {"host": "h", "x": 1}}, "error")


def test_nested_typo_of_a_required_field_names_the_typo() -> None:
    """A typo'd required nested key fails as missing, naming the typo and the fix."""
    with pytest.raises(ConfigError, match=r"missing required property in server: host "
                                          r"\(str\); undeclared 'hots' given \(did you mean "
                                          r"'host'\?\)"):
        conv(server={"hots": "h"})


def test_int_past_the_digit_limit_is_a_config_error() -> None:
    """A quoted integer too long for int() is a ConfigError naming the field."""
    with pytest.raises(ConfigError, match=r"^count: expected an integer"):
        conv(count="1" * 5000)


def test_duration_too_large_for_a_float_is_a_config_error() -> None:
    """A millisecond count too large for a float is a ConfigError naming the field."""
    with pytest.raises(ConfigError, match=r"^every: expected a duration"):
        conv(every=10**400)


@dataclass
class Node:
    value: int = 0
    child: Optional[Node] = None  # noqa: UP045


def test_recursive_record_is_refused_as_unsupported() -> None:
    """A dataclass containing itself is a TypeError saying recursive types are unsupported."""
    with pytest.raises(TypeError, match=r"Node contains itself \(a recursive type\)"):
        config_spec(Node)


def test_missing_required_field_is_named_with_its_type() -> None:
    """A required field that is absent is named with its type."""
    with pytest.raises(ConfigError, match=r"^missing required property: name \(str\)$"):
        convert_config(Conf, {})


def test_union_keeps_an_exact_match() -> None:
    """int | str given "5" keeps the string; given 5 the int."""
    assert conv(either="5").either == "5"
    assert conv(either=5).either == 5


def test_typeddict_converts_to_a_dict() -> None:
    """A TypedDict config gives a plain dict with converted values."""
    assert convert_config(TD, {"a": "3", "b": "x"})[0] == {"a": 3, "b": "x"}


# -- conf: keys eKuiper adds, and unknown ones ----------------------------------------

def test_ekuiper_keys_are_dropped_silently() -> None:
    """Keys eKuiper adds (stream options, sink properties) are neither fields nor warnings."""
    value, unknown = convert_config(Conf, {"name": "n", "format": "json", "datasource": "d",
                                           "sendSingle": True, "requireAck": True,
                                           "logLevel": "debug", "key": ""})
    assert value == Conf("n") and unknown == []


def test_a_declared_ekuiper_key_is_converted() -> None:
    """A plugin may declare one of eKuiper's keys (say `format`) and gets its value."""
    @dataclass
    class WithFormat:
        format: str = "json"

    assert convert_config(WithFormat, {"format": "binary"})[0] == WithFormat("binary")


def test_unknown_keys_are_returned_for_a_warning() -> None:
    """By default an undeclared key is returned, and its warning names the nearest field."""
    _, unknown = convert_config(Conf, {"name": "n", "rat": 2})
    assert unknown == ["rat"]
    assert "ignoring undeclared property 'rat' (did you mean 'rate'?)" in unknown_text(
        Conf, unknown)


def test_unknown_keys_error_and_ignore_modes() -> None:
    """config_unknown="error" refuses undeclared keys; "ignore" drops them quietly."""
    with pytest.raises(ConfigError, match=r"^unknown property 'rat' \(did you mean 'rate'"):
        convert_config(Conf, {"name": "n", "rat": 2}, "error")
    assert convert_config(Conf, {"name": "n", "rat": 2}, "ignore")[1] == []


def test_sdk_and_stream_keys_are_in_the_table() -> None:
    """The keys seen from a real kuiperd v2.4 source conf are all known to be eKuiper's."""
    seen = {"datasource", "delimiter", "format", "key", "retainSize", "schemaId",
            "strictValidation", "timestamp", "timestampFormat"}
    assert seen <= EKUIPER_KEYS


# -- conf: unusable declarations -------------------------------------------------------

def test_a_non_record_config_type_is_a_type_error() -> None:
    """config_type must be a dataclass or TypedDict; the error names it."""
    with pytest.raises(TypeError, match="must be a dataclass or a TypedDict"):
        config_spec(int)


def test_an_unsupported_field_type_is_named() -> None:
    """A field type the SDK cannot convert to is named, with the supported list."""
    @dataclass
    class Bad:
        when: complex = 0j

    with pytest.raises(TypeError, match=r"Bad\.when: cannot convert to complex"):
        config_spec(Bad)


def test_post_init_refusal_becomes_a_config_error() -> None:
    """A __post_init__ that raises ValueError becomes a ConfigError with its text."""
    @dataclass
    class Checked:
        n: int = 0

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("n must not be negative")

    with pytest.raises(ConfigError, match="Checked refused the values: n must not be"):
        convert_config(Checked, {"n": -1})


def test_type_label_reads_like_python() -> None:
    """Types in messages are spelled as in Python source."""
    assert type_label(Optional[int]) == "int | None"
    assert type_label(list[str]) == "list[str]"
    assert type_label(Literal["a", 1]) == "'a' | 1"


# -- conf: hostile values never crash --------------------------------------------------

hostile = st.sampled_from([10**400, -(10**400), "1" * 5000, "9" * 400, 2**63, "1e999"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | hostile,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in config_spec(Conf).fields] +
                                       ["format", "x"]) | st.integers(), json_values))
def test_any_json_conf_converts_or_raises_config_error(conf: dict[str, Any]) -> None:
    """Whatever JSON eKuiper sends, the result is a Conf or a ConfigError, nothing else."""
    try:
        value, _ = convert_config(Conf, conf)
    except ConfigError as exc:
        assert str(exc)
    else:
        assert isinstance(value, Conf)


class Hostile:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_a_value_whose_repr_raises_is_still_reported() -> None:
    """An error message survives a value whose repr raises."""
    with pytest.raises(ConfigError, match=r"got <Hostile> \(Hostile\)"):
        conv(rate=Hostile())


# -- typed calls ----------------------------------------------------------------------

class Shout(Function):
    def call(self, text: str, times: int = 1) -> str:
        """Upper-cases text."""
        return text.upper() * times


class Mean(Function):
    def call(self, first: float, *rest: float, ctx: Context) -> float:
        return (first + sum(rest)) / (1 + len(rest))


class Maybe(Function):
    def call(self, x: Optional[float]) -> str:  # noqa: UP045
        return "none" if x is None else f"{x:.1f}"


def test_call_spec_reads_params_defaults_and_return() -> None:
    """The SQL arguments are call's parameters after self; ctx is not one of them."""
    spec = call_spec(Mean, "mean")
    assert [p.name for p in spec.params] == ["first"] and spec.variadic is not None
    assert spec.wants_ctx and spec.least == 1 and spec.most is None
    assert call_spec(Shout, "shout").usage() == "shout(text: str, times: int = 1)"


def test_bind_call_passes_converted_args_and_ctx() -> None:
    """Ints for float params become floats; the context reaches a keyword-only ctx."""
    seen: list[Any] = []

    class Probe(Function):
        def call(self, x: float, *, ctx: Context) -> float:
            seen.append((type(x), ctx))
            return x

    assert bind_call(Probe(), call_spec(Probe, "probe"))([2], "CTX") == 2.0
    assert seen == [(float, "CTX")]


def test_bind_call_checks_count_and_types() -> None:
    """Too many arguments, or a string for an int, raise ArgumentError naming it."""
    invoke = bind_call(Shout(), call_spec(Shout, "shout"))
    assert invoke(["ab", 2.0], None) == "ABAB"
    with pytest.raises(ArgumentError, match=r"^shout\(\) takes 1 to 2 arguments, got 3"):
        invoke(["a", 1, 2], None)
    with pytest.raises(ArgumentError, match=r"^argument 2 \(times\) of shout\(\): expected an "
                                            r"integer \(int\), got '2' \(str\)$"):
        invoke(["a", "2"], None)


def test_bind_call_names_a_null_argument() -> None:
    """A null for a non-Optional parameter says how to accept nulls; Optional takes it."""
    with pytest.raises(ArgumentError, match=r"argument 1 \(text\) of shout\(\) is null"):
        bind_call(Shout(), call_spec(Shout, "shout"))([None], None)
    assert bind_call(Maybe(), call_spec(Maybe, "maybe"))([None], None) == "none"


def test_bind_call_converts_variadic_args() -> None:
    """Each *args value is converted with its annotation."""
    assert bind_call(Mean(), call_spec(Mean, "mean"))([1, 2, 3.0], None) == 2.0


def test_keyword_only_param_without_default_is_refused() -> None:
    """A parameter SQL cannot pass (keyword-only, not ctx) is refused at build time."""
    class Bad(Function):
        def call(self, x: int, *, scale: int) -> int:
            return x * scale

    with pytest.raises(TypeError, match="parameter 'scale' cannot be passed from SQL"):
        call_spec(Bad, "bad")


@pytest.mark.parametrize(("node", "expected"), [
    ({"Val": 1.5}, (True, 1.5)), ({"Val": "x"}, (True, "x")), ({"Val": True}, (True, True)),
    ({"StreamName": "s", "Name": "a"}, (False, None)), ({"Val": {"x": 1}}, (False, None)),
    ("junk", (False, None))])
def test_literal_of_reads_go_encoded_literals(node: Any, expected: tuple[bool, Any]) -> None:
    """eKuiper's literal nodes are {"Val": v}; field refs and other nodes are not literals."""
    assert literal_of(node) == expected


def test_check_call_nodes_counts_and_types_literals() -> None:
    """Validate refuses a wrong count or a literal of the wrong type; fields pass."""
    spec = call_spec(Shout, "shout")
    field_ref = {"StreamName": "s", "Name": "a", "HasIndex": False}
    assert check_call_nodes(spec, [field_ref]) == ""
    assert check_call_nodes(spec, [{"Val": "a"}, {"Val": 2}]) == ""
    assert check_call_nodes(spec, []).startswith("shout() takes 1 to 2 arguments, got 0")
    assert check_call_nodes(spec, [{"Val": 3}]).startswith(
        "argument 1 (text) of shout(): expected a string (str), got 3 (int)")
    assert check_call_nodes(spec, [field_ref, {"Val": 2.5}]).startswith(
        "argument 2 (times) of shout(): expected an integer (int), got 2.5")


def _functions() -> list[type[Function]]:
    return [Shout, Mean, Maybe, Norm]


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values | st.builds(lambda v: {"Val": v}, json_values), max_size=5))
def test_check_call_nodes_never_raises(nodes: list[Any]) -> None:
    """Any node list eKuiper could send gets "" or a refusal text, never an exception."""
    for cls in _functions():
        assert isinstance(check_call_nodes(call_spec(cls, cls.__name__), nodes), str)


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values, max_size=4))
def test_bind_call_raises_only_argument_errors(args: list[Any]) -> None:
    """Any Exec arguments give a result or an ArgumentError."""
    for cls in _functions():
        try:
            bind_call(cls(), call_spec(cls, cls.__name__))(list(args), None)
        except ArgumentError as exc:
            assert str(exc)


@dataclass
class Point:
    x: float
    y: float = 0.0


class Norm(Function):
    def call(self, p: Point) -> float:
        return abs(p.x) + abs(p.y)


def test_record_argument_is_built_and_its_errors_are_argument_errors() -> None:
    """A map for a dataclass parameter becomes the dataclass; a bad one an ArgumentError."""
    invoke = bind_call(Norm(), call_spec(Norm, "norm"))
    assert invoke([{"x": 3, "y": -4}], None) == 7.0
    with pytest.raises(ArgumentError, match=r"argument 1 \(p\) of norm\(\)\.x: expected a "
                                            r"number \(float\), got 'a' \(str\)"):
        invoke([{"x": "a"}], None)
    assert check_call_nodes(call_spec(Norm, "norm"), [{"Val": 3}]).startswith(
        "argument 1 (p) of norm(): expected an object (Point), got 3 (int)")


def test_pipe_union_on_python_3_9_says_to_use_optional() -> None:
    """On 3.9 the TypeError from evaluating T | None gets the Optional[T] fix."""
    exc = TypeError("unsupported operand type(s) for |: 'type' and 'NoneType'")
    assert "write Optional[T]" in _pep604_fix(exc, (3, 9, 18))
    assert _pep604_fix(exc, (3, 10, 0)) == ""
