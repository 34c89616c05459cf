"""Typed config and typed function signatures on a real kuiperd (typedplug)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_PLUGINS
from tests.e2e.conftest import BootKuiperd
from tests.e2e.kuiper import Kuiperd
from tests.e2e.scenarios import uid
from tests.protocol.events import json_lines

TYPEDPLUG = TEST_PLUGINS / "typedplug"


@pytest.fixture
def kuiperd(boot_kuiperd: BootKuiperd) -> Kuiperd:
    return boot_kuiperd(drop_in=(TYPEDPLUG,))


def _rows(path: Path, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if path.exists():
            rows = json_lines(path.read_text())
            if len(rows) >= count:
                return rows
        time.sleep(0.1)
    raise AssertionError(f"{len(rows)} of {count} rows in {path}: {rows}")


def _ticks_rule(kuiperd: Kuiperd, out: Path, select: str = "*", conf_key: str = "",
                keep: dict[str, Any] | None = None) -> tuple[str, Any]:
    stream, rule = uid("s_"), uid("r_")
    extra = f', CONF_KEY="{conf_key}"' if conf_key else ""
    kuiperd.create_stream(stream, "ticks", uid("ds-"), extra)
    resp = kuiperd.create_rule(rule, f"SELECT {select} FROM {stream}",
                               [{"keep": {"path": str(out), "sendSingle": True,
                                          **(keep or {})}}])
    return rule, resp


def _failed_start(kuiperd: Kuiperd, rule: str, resp: Any) -> str:
    """The text eKuiper closed a rule with after its start failed.

    v2.4 creates the rule (201), then stops it: the status says ``stopped by error`` and
    leaves ``message`` empty; the reason is in kuiperd's log.
    """
    assert resp.status in (200, 201), resp
    kuiperd.wait_status(rule, lambda s: s.get("status") == "stopped by error")
    lines = [line for line in kuiperd.log().splitlines()
             if "closing Rule for error" in line and f"Rule={rule}" in line]
    assert lines, "kuiperd logged no reason for stopping the rule"
    return lines[-1]


def test_source_conf_is_converted(kuiperd: Kuiperd, tmp_path: Path) -> None:
    """yaml values arrive converted: a quoted number as float/int, milliseconds as timedelta."""
    out = tmp_path / "rows.jsonl"
    _, resp = _ticks_rule(kuiperd, out, conf_key="quoted")
    assert resp.status in (200, 201), resp
    row = _rows(out, 1)[0]
    assert row["period"] == 0.05 and row["count"] == 3 and row["mode"] == "slow"
    assert row["label"] == "007"  # the default section's quoted string stays a string
    assert row["every_s"] == 0.25  # a number is milliseconds, as eKuiper's DurationConf
    assert row["types"] == "float,int,str,timedelta"
    assert len(_rows(out, 3)) == 3


def test_source_bad_conf_fails_rule_start(kuiperd: Kuiperd, tmp_path: Path) -> None:
    """A conf value that does not fit fails the rule's start, naming field, value and type."""
    rule, resp = _ticks_rule(kuiperd, tmp_path / "rows.jsonl", conf_key="bad")
    text = _failed_start(kuiperd, rule, resp)
    assert "period: expected a number (float), got 'fast' (str)" in text, text
    assert not (tmp_path / "rows.jsonl").exists()


def test_sink_bad_conf_fails_rule_start(kuiperd: Kuiperd, tmp_path: Path) -> None:
    """A rule action property of the wrong type fails the start with the sink's message."""
    rule, resp = _ticks_rule(kuiperd, tmp_path / "rows.jsonl", keep={"limit": "lots"})
    text = _failed_start(kuiperd, rule, resp)
    assert "sink 'keep' config: limit: expected an integer (int), got 'lots' (str)" in text


def test_typed_function_computes(kuiperd: Kuiperd, tmp_path: Path) -> None:
    """Typed calls get their arguments bound and converted (eKuiper's ints become floats)."""
    out = tmp_path / "rows.jsonl"
    _, resp = _ticks_rule(kuiperd, out, "n, shout(mode) AS one, shout(mode, 2) AS two, "
                          "scale(n) AS doubled, scale(n, 0.5) AS halved")
    assert resp.status in (200, 201), resp
    rows = _rows(out, 3)
    for row in rows:
        assert row["one"] == "FAST" and row["two"] == "FASTFAST"
        assert row["doubled"] == row["n"] * 2 and row["halved"] == row["n"] * 0.5
    assert [r["n"] for r in rows[:3]] == [0, 1, 2]


@pytest.mark.parametrize(("call", "expected"), [
    ("shout()", "shout() takes 1 to 2 arguments, got 0: shout(text: str, times: int = 1)"),
    ("shout(label, 1, 2)", "shout() takes 1 to 2 arguments, got 3"),
    ("shout(label, 'x')", "argument 2 (times) of shout(): expected an integer (int), "
                          "got 'x' (str)"),
    ("scale(n, true)", "argument 2 (factor) of scale(): expected a number (float), "
                       "got True (bool)"),
])
def test_typed_function_bad_call_refused_at_creation(kuiperd: Kuiperd, tmp_path: Path,
                                                     call: str, expected: str) -> None:
    """A wrong argument count or literal type is refused when the rule is created."""
    rule, resp = _ticks_rule(kuiperd, tmp_path / "rows.jsonl", f"{call} AS x")
    assert resp.status == 400, resp
    assert expected in json.dumps(resp.body).replace('\\"', '"'), resp.body
    assert kuiperd.get(f"/rules/{rule}").status != 200


def test_generated_metadata_is_what_kuiperd_serves(kuiperd: Kuiperd) -> None:
    """kuiperd reads the files `ekuiper-plugin metadata` generated (as Manager would)."""
    source = kuiperd.get("/metadata/sources/ticks")
    assert source.status == 200, source
    props = {p["name"]: p for p in source.body["properties"]["default"]}
    assert props["period"]["type"] == "float" and props["period"]["default"] == 1.0
    assert props["mode"]["values"] == ["fast", "slow"]
    sink = kuiperd.get("/metadata/sinks/keep")
    assert sink.status == 200, sink
    path = next(p for p in sink.body["properties"] if p["name"] == "path")
    assert path["optional"] is False and path["type"] == "string"
    functions = kuiperd.get("/metadata/functions")
    assert functions.status == 200, functions
    shout = next(f for group in functions.body for f in group.get("functions", [])
                 if f.get("name") == "shout")
    assert [a["name"] for a in shout["args"]] == ["text", "times"]
    assert shout["example"] == "shout(text[, times])"
