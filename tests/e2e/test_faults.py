"""Faults on an unattended box, against a real kuiperd: counts, not just survival.

Figures (rows lost, exit times) are printed; run with -s to see them.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_PLUGINS
from tests.e2e.conftest import BootKuiperd
from tests.e2e.kuiper import Kuiperd, proc_stats
from tests.e2e.scenarios import file_action, read_lines, start_rules_lost_at_boot, stop_rule, uid
from tests.protocol.events import events, wait_for

TESTPLUG = TEST_PLUGINS / "testplug"
SINK_IN = "sink_recorder_0_0_records_in_total"


@pytest.fixture
def kuiperd(boot_kuiperd: BootKuiperd, tmp_path: Path) -> Kuiperd:
    return boot_kuiperd(drop_in=(TESTPLUG,), env={"TESTPLUG_OUT": str(tmp_path)})


def _rule(kuiperd: Kuiperd, conf: str, select: str, actions: list[dict],
          options: dict | None = None) -> tuple[str, str]:
    stream, rule = uid("s_"), uid("r_")
    kuiperd.create_stream(stream, "counter", uid("ds-"), extra=f', CONF_KEY="{conf}"'
                          if conf else "")
    resp = kuiperd.create_rule(rule, f"SELECT {select} FROM {stream}", actions, options)
    assert resp.status in (200, 201), resp
    return stream, rule


def _pid(kuiperd: Kuiperd) -> int:
    return int(wait_for(lambda: kuiperd.plugin_pids("testplug"), what="testplug process")[0])


def test_plugin_sigkill_restarts_on_next_use(kuiperd: Kuiperd, tmp_path: Path) -> None:
    """After SIGKILL of the plugin, the next use restarts it and the old rule resumes
    with no row lost after the restart."""
    (kuiperd.home / "etc" / "sources" / "counter.yaml").write_text(
        "default:\n  interval: 0.02\nkill:\n  interval: 0.02\n  with_pid: true\n"
        "  record_emits: true\n")
    out = kuiperd.out_path("kill.txt")
    stream, rule = _rule(kuiperd, "kill", "n, pid", [file_action(out)])
    key = f"source_{stream}_0_records_in_total"
    kuiperd.wait_status(rule, lambda s: s.get(key, 0) >= 20)
    old = _pid(kuiperd)
    os.kill(old, signal.SIGKILL)
    time.sleep(1.0)
    # Next use: any rule that needs the plugin makes eKuiper restart it and replay starts.
    _, other = _rule(kuiperd, "", "upper(datasource) AS u", [{"log": {}}])
    new = wait_for(lambda: (p := kuiperd.plugin_pids("testplug")) and p[0] != old and p[0],
                   what="restarted plugin")
    wait_for(lambda: sum(e["pid"] == new for e in events(tmp_path, "emit")) >= 30,
             what="rows from the restarted plugin")
    stop_rule(kuiperd, rule)
    stop_rule(kuiperd, other)
    rows = read_lines(kuiperd, out)
    emitted_old = [e["n"] for e in events(tmp_path, "emit") if e["pid"] == old]
    got_old = [r["n"] for r in rows if r["pid"] == old]
    got_new = [r["n"] for r in rows if r["pid"] == new]
    # An emit is recorded after it returns, so the last row sent may lack its record.
    lost_in_gap = max(0, len(emitted_old) - len(got_old))
    print(f"\nplugin SIGKILL: {len(emitted_old)} emitted before, {lost_in_gap} lost in the gap, "
          f"{len(got_new)} delivered after restart")
    assert got_old == list(range(len(got_old)))  # in order, no duplicates, no holes
    assert len(got_old) >= len(emitted_old) - 2  # at most the rows in flight were lost
    assert got_new == list(range(len(got_new)))  # nothing lost after the restart
    assert len(got_new) >= 30


def test_kuiperd_sigkill_plugin_exits_and_home_reusable(kuiperd: Kuiperd,
                                                        tmp_path: Path) -> None:
    """SIGKILL of kuiperd: the plugin exits within 2 s, its socket files are gone, and a
    new kuiperd on the same home runs the rule again (started again if eKuiper restored it
    before registering the plugin)."""
    stream, rule = _rule(kuiperd, "", "n", [{"recorder": {"requireAck": True}}])
    kuiperd.wait_status(rule, lambda s: s.get(SINK_IN, 0) >= 5)
    pid = _pid(kuiperd)
    kuiperd.kill()
    killed = time.monotonic()
    wait_for(lambda: not kuiperd.plugin_pids("testplug"), timeout=5, what="plugin exit")
    exit_s = time.monotonic() - killed
    print(f"\nkuiperd SIGKILL: plugin {pid} exited after {exit_s:.2f} s")
    assert exit_s < 2.0
    assert [e["rule"] for e in events(tmp_path, "close") if e["symbol"] == "recorder"] == [rule]
    assert not [p for p in kuiperd.sink_sockets if p.exists()]
    restarted = time.monotonic()
    kuiperd.start()
    start_rules_lost_at_boot(kuiperd, rule)
    kuiperd.wait_status(rule, lambda s: s.get(SINK_IN, 0) >= 5)
    print(f"new kuiperd on the same home: rule {rule} delivering after "
          f"{time.monotonic() - restarted:.2f} s")
    _ = stream


def test_kuiperd_sigterm_closes_each_symbol_once(kuiperd: Kuiperd, tmp_path: Path) -> None:
    """SIGTERM to kuiperd: the running source and sink are each closed exactly once."""
    _, rule = _rule(kuiperd, "", "n", [{"recorder": {}}])
    kuiperd.wait_status(rule, lambda s: s.get(SINK_IN, 0) >= 3)
    assert kuiperd.stop() is not None
    wait_for(lambda: not kuiperd.plugin_pids("testplug"), timeout=5, what="plugin exit")
    closes = sorted((e["symbol"], e["rule"]) for e in events(tmp_path, "close"))
    assert closes == [("counter", rule), ("recorder", rule)]


def test_plugin_sigterm_closes_each_symbol_once(kuiperd: Kuiperd, tmp_path: Path) -> None:
    """SIGTERM to the plugin: it closes the running source and sink once and exits."""
    _, rule = _rule(kuiperd, "", "n", [{"recorder": {}}])
    kuiperd.wait_status(rule, lambda s: s.get(SINK_IN, 0) >= 3)
    pid = _pid(kuiperd)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: pid not in kuiperd.plugin_pids("testplug"), timeout=5, what="exit")
    closes = sorted((e["symbol"], e["rule"]) for e in events(tmp_path, "close"))
    assert closes == [("counter", rule), ("recorder", rule)]


def test_slow_sink_loses_and_duplicates_nothing(kuiperd: Kuiperd, tmp_path: Path) -> None:
    """A slow acking sink under a fast source: every row arrives exactly once, in order,
    and the plugin's memory stays bounded (the source blocks instead of buffering)."""
    total = 400
    (kuiperd.home / "etc" / "sources" / "counter.yaml").write_text(
        f"default:\n  interval: 0.0\nfast:\n  interval: 0.0\n  limit: {total}\n")
    _, rule = _rule(kuiperd, "fast", "n",
                    [{"recorder": {"requireAck": True, "sleep": 0.01, "sendSingle": True}}],
                    options={"disableBufferFullDiscard": True, "bufferLength": 8})
    pid = _pid(kuiperd)
    time.sleep(1.0)
    rss_start, _ = proc_stats(pid)
    wait_for(lambda: len(events(tmp_path, "collect")) >= total, timeout=60,
             what=f"{total} rows at the sink")
    rss_end, _ = proc_stats(pid)
    got = [int(e["data"].split(":")[1].rstrip("}")) for e in events(tmp_path, "collect")]
    print(f"\nslow sink: {len(got)} of {total} rows, RSS {rss_start} -> {rss_end} KiB")
    assert got == list(range(total))
    assert rss_end - rss_start < 10_000
    status = kuiperd.rule_status(rule)
    assert status[SINK_IN] == total
    assert status["sink_recorder_0_0_exceptions_total"] == 0
