"""ekuiper._metadata: metadata JSON from typed declarations, laid over committed files."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Literal, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ekuiper import Context, Function, Sink, Source
from ekuiper._metadata import describe_metadata, generate, merge, property_type


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


@dataclass
class Server:
    host: str


@dataclass
class TicksConfig:
    """Ticks settings."""

    interval: Annotated[float, "Seconds between rows"] = 1.0
    topic: str = field(default="t", metadata={"hint": "Topic", "label": "Topic name"})
    level: Level = Level.LOW
    mode: Literal["a", "b"] = "a"
    every: timedelta = timedelta(milliseconds=1500)
    tags: list[str] = field(default_factory=lambda: ["x"])
    servers: list[Server] = field(default_factory=list)
    required: int | None = None


class Ticks(Source):
    """Emits a row now and then."""

    config_type = TicksConfig

    def open(self, ctx: Context) -> None:
        pass


@dataclass
class OutConfig:
    path: str


class Out(Sink):
    config_type = OutConfig

    def collect(self, ctx: Context, data: Any) -> None:
        pass


class Shout(Function):
    def call(self, text: str, times: int = 1, *more: str) -> str:
        """Upper-cases text.

        More detail that the hint leaves out.
        """
        return text


def _props(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in doc["properties"]["default"]}


@pytest.mark.parametrize(("tp", "expected"), [
    (str, ("string", "text")), (int, ("int", "text")), (float, ("float", "text")),
    (bool, ("bool", "radio")), (list[str], ("list_string", "list")),
    (list[int], ("list_int", "list")), (list[Server], ("list_object", "list")),
    (dict[str, int], ("object", "text")), (Server, ("object", "text")),
    (Optional[int], ("int", "text")), (Literal["a", "b"], ("string", "select")),
    (Level, ("int", "select")), (Any, ("any", "text"))])
def test_property_types_are_ekuipers(tp: Any, expected: tuple[str, str]) -> None:
    """Python types map to the type/control names eKuiper's own metadata uses."""
    assert property_type(tp) == expected


def test_source_properties_from_config_type() -> None:
    """Each field is a property with its default, optionality, choices, hint and label."""
    doc = merge("sources", "ticks", None, generate("sources", "ticks", Ticks))
    props = _props(doc)
    assert list(props) == ["interval", "topic", "level", "mode", "every", "tags", "servers",
                           "required"]
    assert props["interval"]["hint"] == {"en_US": "Seconds between rows"}
    assert props["topic"]["label"] == {"en_US": "Topic name"}
    assert props["interval"]["label"] == {"en_US": "interval"}
    assert props["level"]["values"] == [1, 2] and props["level"]["default"] == 1
    assert props["every"]["default"] == "1.5s" and props["tags"]["default"] == ["x"]
    assert doc["about"]["description"] == {"en_US": "Emits a row now and then."}
    assert doc["node"]["category"] == "source"


def test_required_field_has_no_default() -> None:
    """A field without a default is not optional and has no default in the JSON."""
    doc = merge("sinks", "out", None, generate("sinks", "out", Out))
    assert doc["properties"] == [{"name": "path", "optional": False, "control": "text",
                                  "type": "string", "hint": {"en_US": ""},
                                  "label": {"en_US": "path"}}]


def test_function_entry_from_signature_and_docstring() -> None:
    """Args, example, hint (first paragraph) and return type come from call."""
    doc = merge("functions", "shout", None, generate("functions", "shout", Shout))
    entry = doc["functions"][0]
    assert entry["example"] == "shout(text[, times][, more...])"
    assert entry["hint"] == {"en_US": "Upper-cases text."}
    assert [(a["name"], a["type"], a["optional"]) for a in entry["args"]] == [
        ("text", "string", False), ("times", "int", True), ("more", "string", True)]
    assert entry["return"]["type"] == "string"


def test_merge_keeps_hand_written_parts() -> None:
    """Other languages, icons, extra keys and a hint the code lacks survive a merge."""
    generated = generate("sources", "ticks", Ticks)
    first = merge("sources", "ticks", None, generated)
    first["about"]["description"]["zh_CN"] = "中文"
    first["node"]["icon"] = "custom.svg"
    props = first["properties"]["default"]
    props[1]["hint"]["zh_CN"] = "主题"
    props[2]["hint"]["en_US"] = "Written by hand"
    again = merge("sources", "ticks", first, generated)
    assert again == first


def test_merge_updates_what_the_code_decides() -> None:
    """A changed default, a removed field and a new one follow the code."""
    stale = merge("sources", "ticks", None, generate("sources", "ticks", Ticks))
    stale["properties"]["default"][0]["default"] = 9
    stale["properties"]["default"].append({"name": "gone", "type": "int"})
    fresh = merge("sources", "ticks", stale, generate("sources", "ticks", Ticks))
    assert _props(fresh)["interval"]["default"] == 1.0 and "gone" not in _props(fresh)


def test_merge_keeps_other_functions_of_a_shared_file() -> None:
    """A functions file may list other functions; only this one's entry is replaced."""
    existing = {"functions": [{"name": "other", "example": "other()"}]}
    doc = merge("functions", "shout", existing, generate("functions", "shout", Shout))
    assert [f["name"] for f in doc["functions"]] == ["shout", "other"]


def test_merge_survives_garbage() -> None:
    """A committed file of the wrong shape is replaced by a skeleton, never a crash."""
    for junk in ([], "x", {"about": 3, "properties": "p", "functions": 5}):
        assert merge("sources", "ticks", junk, generate("sources", "ticks", Ticks))
        assert merge("functions", "shout", junk, generate("functions", "shout", Shout))


def test_describe_metadata_reports_unusable_declarations() -> None:
    """A declaration that cannot be read becomes an error entry naming it."""
    class Bad(Function):
        def call(self, x: int, *, y: int) -> int:
            return x

    out = describe_metadata([("functions", "bad", Bad), ("sinks", "out", Out)])
    assert "cannot be passed from SQL" in out["functions"]["bad"]["error"]
    assert out["sinks"]["out"]["properties"][0]["name"] == "path"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["about", "properties", "default", "functions", "name", "args",
                         "hint", "label", "return", "en_US", "node", "x"]), inner, max_size=4),
    max_leaves=15)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_merge_over_any_committed_json_is_stable(existing: Any) -> None:
    """Any committed JSON merges without error, and merging the result again changes nothing."""
    for kind, symbol, cls in (("sources", "ticks", Ticks), ("functions", "shout", Shout)):
        generated = generate(kind, symbol, cls)
        once = merge(kind, symbol, existing, generated)
        assert merge(kind, symbol, once, generated) == once
