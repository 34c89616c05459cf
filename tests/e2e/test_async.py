"""Async symbols in a real kuiperd: asyncplug's async generator source, async sink with
four messages in flight and sync function in one plugin process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_PLUGINS
from tests.e2e.conftest import V1_VERSION, BootKuiperd
from tests.e2e.kuiper import DEFAULT_VERSION, Kuiperd
from tests.e2e.scenarios import stop_rule, uid
from tests.protocol.events import events, wait_for

ASYNCPLUG = TEST_PLUGINS / "asyncplug"
ROWS = 60


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
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row["rule"] == rule]


def _rule(kuiperd: Kuiperd, conf_key: str) -> str:
    stream, rule = uid("s_"), uid("r_")
    kuiperd.create_stream(stream, "ticks", uid("ds-"), extra=f', CONF_KEY="{conf_key}"')
    resp = kuiperd.create_rule(
        rule, f"SELECT seq, datasource, live_threads(seq) AS threads FROM {stream}",
        [{"store": {"sendSingle": True}}])
    assert resp.status in (200, 201), resp
    return rule


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
    # Let the plugin answer both stops before the fixture stops kuiperd: a reply to a
    # kuiperd that is gone holds the plugin's shutdown up (1.x answers the REST stop
    # before its plugin does).
    wait_for(lambda: {(e["event"], e.get("symbol")) for e in events(tmp_path)
                      if e.get("rule") == second} >= {("open_ended", None),
                                                      ("close", "store")},
             what="the stop of the second rule")
