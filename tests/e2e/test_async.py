"""Async symbols in a real kuiperd: asyncplug's async generator source, async sink with
four messages in flight and sync function in one plugin process; its async configure,
emit_async-awaiting open, async exec and async sink under requireAck."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_PLUGINS
from tests.e2e.conftest import V1_VERSION, BootKuiperd
from tests.e2e.kuiper import DEFAULT_VERSION, Kuiperd
from tests.e2e.scenarios import stop_rule, uid
from tests.protocol.events import events, json_lines, wait_for

ASYNCPLUG = TEST_PLUGINS / "asyncplug"
ROWS = 60
PUSHED = 40  # the "forty" conf key of sources/pushes.yaml
STEP = 7


@pytest.fixture(params=[DEFAULT_VERSION, V1_VERSION])
def asyncplug_kuiperd(request: pytest.FixtureRequest, boot_kuiperd: BootKuiperd,
                      tmp_path: Path) -> Kuiperd:
    """kuiperd (2.x and 1.x) with asyncplug dropped in; it records rows and events under
    tmp_path."""
    return boot_kuiperd(request.param, drop_in=(ASYNCPLUG,),
                        env={"ASYNCPLUG_OUT": str(tmp_path)})


def _stored(out: Path, rule: str) -> list[dict[str, Any]]:
    path = out / "rows.jsonl"
    if not path.exists():
        return []
    rows = json_lines(path.read_text())
    return [row for row in rows if row["rule"] == rule]


def _rule(kuiperd: Kuiperd, conf_key: str) -> str:
    stream, rule = uid("s_"), uid("r_")
    kuiperd.create_stream(stream, "ticks", uid("ds-"), extra=f', CONF_KEY="{conf_key}"')
    resp = kuiperd.create_rule(
        rule, f"SELECT seq, datasource, live_threads(seq) AS threads FROM {stream}",
        [{"store": {"sendSingle": True}}])
    assert resp.status in (200, 201), resp
    return rule


def _pushes_rule(kuiperd: Kuiperd, select: str, action: dict[str, Any]) -> tuple[str, str]:
    stream, rule = uid("s_"), uid("r_")
    kuiperd.create_stream(stream, "pushes", uid("ds-"), extra=', CONF_KEY="forty"')
    resp = kuiperd.create_rule(rule, f"SELECT {select} FROM {stream}", [action])
    assert resp.status in (200, 201), resp
    return stream, rule


def _all_stored(out: Path, rule: str, count: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = wait_for(
        lambda: len(_stored(out, rule)) >= count and _stored(out, rule),
        timeout=30, what=f"{count} rows stored by rule {rule}")
    return rows


def _stopped(kuiperd: Kuiperd, rule: str, symbols: set[str]) -> None:
    """Wait until eKuiper has the plugin's answer to the stop of each of ``symbols``.

    The plugin's own events come before it answers; a kuiperd stopped in between leaves
    the plugin waiting to answer and it outlives the fixture's teardown (1.x answers the
    REST stop before its plugin does).
    """
    def answered() -> bool:
        lines = [line for line in kuiperd.log().splitlines() if f"rule={rule}" in line]
        return all(any(f'msg="stopped symbol {name}"' in line for line in lines)
                   for name in symbols)
    wait_for(answered, what=f"eKuiper's stop of {sorted(symbols)} in rule {rule}")


def _stop_and_wait_close(kuiperd: Kuiperd, out: Path, rule: str,
                         symbols: set[str]) -> list[dict[str, Any]]:
    """Stop the rule, wait until its symbols are stopped, and return its events."""
    stop_rule(kuiperd, rule)
    _stopped(kuiperd, rule, symbols)
    return [e for e in events(out) if e.get("rule") == rule]


def test_async_source_and_sink_deliver_every_row_and_stop_cleanly(
        asyncplug_kuiperd: Kuiperd, tmp_path: Path) -> None:
    """Every row of the async generator reaches the in-flight sink, collects start in row
    order with more than one in flight, and a stop cancels the source's tasks and thread
    while the plugin process goes on serving the next rule."""
    kuiperd = asyncplug_kuiperd
    first = _rule(kuiperd, "sixty")
    rows = wait_for(lambda: len(_stored(tmp_path, first)) >= ROWS and _stored(tmp_path, first),
                    timeout=30, what=f"{ROWS} rows stored by rule {first}")
    assert sorted(row["seq"] for row in rows) == list(range(ROWS))
    starts = [e["seq"] for e in events(tmp_path, "collect_start") if e["rule"] == first]
    assert starts == list(range(ROWS))
    # While the rule runs the source's sender thread is alive (the function sees it).
    assert any(first in name and "sender" in name for name in rows[0]["threads"])
    pids = kuiperd.plugin_pids("asyncplug")

    stop_rule(kuiperd, first)
    wait_for(lambda: len([e for e in events(tmp_path) if e.get("rule") == first and
                          e["event"] in ("open_ended", "heartbeat_cancelled", "close")]) == 4,
             what="open ended, heartbeat cancelled, both closes")
    ended = [e for e in events(tmp_path) if e.get("rule") == first]
    assert [e["emitted"] for e in ended if e["event"] == "open_ended"] == [ROWS]
    assert any(e["event"] == "heartbeat_cancelled" for e in ended)
    peak = [e["peak"] for e in ended if e["event"] == "close" and e["symbol"] == "store"]
    assert len(peak) == 1 and 2 <= peak[0] <= 4, peak

    second = _rule(kuiperd, "sixty")
    later = wait_for(lambda: len(_stored(tmp_path, second)) >= 5 and _stored(tmp_path, second),
                     timeout=30, what=f"rows of the second rule {second}")
    assert kuiperd.plugin_pids("asyncplug") == pids
    opened = [e for e in events(tmp_path, "open") if e["rule"] == second]
    assert opened and not [t for t in opened[0]["tasks"] if first in t]
    assert not [name for row in later for name in row["threads"] if first in name]
    stop_rule(kuiperd, second)
    _stopped(kuiperd, second, {"ticks", "store"})


def test_async_exec_runs_on_the_plugin_event_loop(asyncplug_kuiperd: Kuiperd,
                                                  tmp_path: Path) -> None:
    """An async exec answers every call from the plugin's one event loop, the loop the
    async source runs on."""
    _, rule = _pushes_rule(asyncplug_kuiperd, "seq, loop, asyncfn(seq) AS y",
                           {"store": {"sendSingle": True}})
    rows = _all_stored(tmp_path, rule, PUSHED)
    assert sorted(row["y"]["x"] for row in rows) == list(range(PUSHED))
    assert all(row["y"]["x"] == row["seq"] for row in rows)
    assert {row["y"]["thread"] for row in rows} == {"ekuiper-aio"}
    assert {row["y"]["loop"] for row in rows} == {rows[0]["loop"]}
    _stop_and_wait_close(asyncplug_kuiperd, tmp_path, rule, {"pushes", "store"})


def test_emit_async_open_delivers_every_row_in_order(asyncplug_kuiperd: Kuiperd,
                                                     tmp_path: Path) -> None:
    """An async open awaiting emit_async (one row or a list of two in turn) gets every row
    into eKuiper once, in emit order."""
    # acked under requireAck collects one message at a time, so its file keeps the
    # order eKuiper delivered the rows in.
    stream, rule = _pushes_rule(asyncplug_kuiperd, "seq",
                                {"acked": {"sendSingle": True, "requireAck": True}})
    rows = _all_stored(tmp_path, rule, PUSHED)
    assert [row["seq"] for row in rows] == list(range(PUSHED))
    status = asyncplug_kuiperd.rule_status(rule)
    assert status[f"source_{stream}_0_records_in_total"] == PUSHED
    ended = _stop_and_wait_close(asyncplug_kuiperd, tmp_path, rule, {"pushes", "acked"})
    assert [e["emitted"] for e in ended if e["event"] == "open_ended"] == [PUSHED]
    assert len(_stored(tmp_path, rule)) == PUSHED


def test_async_configure_converts_conf_before_open(asyncplug_kuiperd: Kuiperd,
                                                   tmp_path: Path) -> None:
    """An async configure runs on the loop before open, and the int it made of the conf's
    string step is in every row."""
    _, rule = _pushes_rule(asyncplug_kuiperd, "seq, value, configured_on, configured_loop, loop",
                           {"store": {"sendSingle": True}})
    rows = _all_stored(tmp_path, rule, PUSHED)
    assert sorted((row["seq"], row["value"]) for row in rows) == \
        [(n, n * STEP) for n in range(PUSHED)]
    assert {row["configured_on"] for row in rows} == {"ekuiper-aio"}
    assert {row["configured_loop"] for row in rows} == {rows[0]["loop"]}
    _stop_and_wait_close(asyncplug_kuiperd, tmp_path, rule, {"pushes", "store"})


def test_async_sink_with_require_ack_keeps_one_in_flight(asyncplug_kuiperd: Kuiperd,
                                                         tmp_path: Path) -> None:
    """Under requireAck an async sink declaring four in flight takes one message at a
    time and stores every row in arrival order."""
    _, rule = _pushes_rule(asyncplug_kuiperd, "seq",
                           {"acked": {"sendSingle": True, "requireAck": True}})
    rows = _all_stored(tmp_path, rule, PUSHED)
    assert [row["seq"] for row in rows] == list(range(PUSHED))
    ended = _stop_and_wait_close(asyncplug_kuiperd, tmp_path, rule, {"pushes", "acked"})
    assert [e["peak"] for e in ended if e.get("symbol") == "acked"] == [1]


def test_async_sink_acks_are_counted_in_rule_metrics(boot_kuiperd: BootKuiperd,
                                                     tmp_path: Path) -> None:
    """eKuiper counts each ack an async collect sends: ack_ok as a record out, its one
    ack_error as an exception with the collect's text."""
    # 2.x only: eKuiper 1.x's portable sink ignores requireAck and never reads an ack
    # (it waits only when a "requiredACKs" property holds a Go int).
    kuiperd = boot_kuiperd(DEFAULT_VERSION, drop_in=(ASYNCPLUG,),
                           env={"ASYNCPLUG_OUT": str(tmp_path)})
    _, rule = _pushes_rule(kuiperd, "seq", {"acked": {"sendSingle": True, "requireAck": True,
                                                      "nack_seq": 5}})
    prefix = "sink_acked_0_0_"
    status = kuiperd.wait_status(
        rule, lambda s: s.get(f"{prefix}records_out_total", 0)
        + s.get(f"{prefix}exceptions_total", 0) >= PUSHED)
    assert status[f"{prefix}records_in_total"] == PUSHED
    assert status[f"{prefix}exceptions_total"] == 1
    assert status[f"{prefix}records_out_total"] == PUSHED - 1
    assert "acked refuses seq 5" in status[f"{prefix}last_exception"]
    _stop_and_wait_close(kuiperd, tmp_path, rule, {"pushes", "acked"})
