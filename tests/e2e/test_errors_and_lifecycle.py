"""Errors surface in eKuiper and symbols are closed: testplug in a real kuiperd (4, 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TEST_PLUGINS
from tests.e2e.conftest import DOCKER, NATIVE, BootKuiperd, targets
from tests.e2e.kuiper import Kuiperd, KuiperREST
from tests.e2e.scenarios import metric, stop_rule, uid
from tests.protocol.events import events, wait_for

TESTPLUG = TEST_PLUGINS / "testplug"
RECORDED = "sink_recorder_0_0_records_in_total"


@pytest.fixture
def testplug_kuiperd(boot_kuiperd: BootKuiperd, tmp_path: Path) -> Kuiperd:
    """kuiperd with testplug dropped in; testplug records events under tmp_path."""
    return boot_kuiperd(drop_in=(TESTPLUG,), env={"TESTPLUG_OUT": str(tmp_path)})


def _counter_rule(kuiperd: KuiperREST, sql_select: str, actions: list[dict]) -> tuple[str, str]:
    stream, rule = uid("s_"), uid("r_")
    kuiperd.create_stream(stream, "counter", uid("ds-"))
    resp = kuiperd.create_rule(rule, f"SELECT {sql_select} FROM {stream}", actions)
    assert resp.status in (200, 201), resp
    return stream, rule


@targets(NATIVE, DOCKER)
def test_sink_ack_error_shows_in_rule_status(kuiper: KuiperREST) -> None:
    """A sink's ack_error text becomes the sink's last_exception; the rule keeps running."""
    _, rule = _counter_rule(kuiper, "n, datasource",
                            [{"recorder": {"requireAck": True, "nack_on": "datasource",
                                           "sendSingle": True}}])
    status = kuiper.wait_status(
        rule, lambda s: s.get("sink_recorder_0_0_exceptions_total", 0) >= 3)
    assert "rejected by recorder" in metric(status, "sink_recorder_0_0_last_exception")
    assert status["status"] == "running"


@targets(NATIVE, DOCKER)
def test_collect_exception_shows_in_rule_status(kuiper: KuiperREST) -> None:
    """A collect that raises becomes the sink's last_exception with the exception text."""
    _, rule = _counter_rule(kuiper, "n",
                            [{"recorder": {"requireAck": True, "fail_on": '"n"',
                                           "sendSingle": True}}])
    status = kuiper.wait_status(
        rule, lambda s: s.get("sink_recorder_0_0_exceptions_total", 0) >= 2)
    assert "cannot store {" in metric(status, "sink_recorder_0_0_last_exception")


@targets(NATIVE, DOCKER)
def test_function_exception_shows_in_rule_status(kuiper: KuiperREST) -> None:
    """A function that raises becomes the project operator's last_exception."""
    _, rule = _counter_rule(kuiper, "fails(n) AS x",
                            [{"log": {}}])
    status = kuiper.wait_status(
        rule, lambda s: s.get("op_2_project_0_exceptions_total", 0) >= 2)
    assert "cannot divide by zero" in metric(status, "op_2_project_0_last_exception")


@targets(NATIVE, DOCKER)
def test_source_error_counts_as_source_exception(kuiper: KuiperREST) -> None:
    """emit_error becomes a source exception carrying its text, and is not a row."""
    stream, rule = uid("s_"), uid("r_")
    kuiper.create_stream(stream, "reporter", "x")
    kuiper.create_rule(rule, f"SELECT * FROM {stream}", [{"log": {}}])
    status = kuiper.wait_status(
        rule, lambda s: s.get(f"source_{stream}_0_exceptions_total", 0) >= 1
        and s.get(f"source_{stream}_0_records_in_total", 0) >= 1)
    assert "sensor offline" in status[f"source_{stream}_0_last_exception"]
    assert status[f"source_{stream}_0_records_in_total"] == 1


def test_plugin_keeps_serving_after_errors(testplug_kuiperd: Kuiperd, tmp_path: Path) -> None:
    """After a failing function and sink, a new rule on the same plugin process works."""
    _, bad = _counter_rule(testplug_kuiperd, "fails(n) AS x",
                           [{"recorder": {"requireAck": True, "fail_on": "x"}}])
    testplug_kuiperd.wait_status(bad, lambda s: s.get("op_2_project_0_exceptions_total", 0) >= 1)
    pids = testplug_kuiperd.plugin_pids("testplug")
    _, good = _counter_rule(testplug_kuiperd, "upper(datasource) AS u",
                            [{"recorder": {"requireAck": True}}])
    status = testplug_kuiperd.wait_status(
        good, lambda s: s.get(RECORDED, 0) >= 3)
    assert status["sink_recorder_0_0_exceptions_total"] == 0
    assert testplug_kuiperd.plugin_pids("testplug") == pids
    assert any('"u":"DS-' in e["data"] for e in events(tmp_path, "collect"))


def test_rule_stop_closes_symbols_and_restart_reuses_plugin(
        testplug_kuiperd: Kuiperd, tmp_path: Path) -> None:
    """Stopping a rule closes its source and sink once; restarting it works on one process."""
    _, rule = _counter_rule(testplug_kuiperd, "n", [{"recorder": {"requireAck": True}}])
    testplug_kuiperd.wait_status(rule, lambda s: s.get(RECORDED, 0) >= 2)
    pids = testplug_kuiperd.plugin_pids("testplug")
    stop_rule(testplug_kuiperd, rule)
    closes = wait_for(lambda: len(events(tmp_path, "close")) >= 2 and events(tmp_path, "close"),
                      what="both closes")
    closed = sorted((e["symbol"], e["rule"]) for e in closes)
    assert closed == [("counter", rule), ("recorder", rule)]
    wait_for(lambda: not list(Path("/tmp").glob(f"{rule}_*.ipc")), timeout=5,
             what="socket files released")
    assert testplug_kuiperd.post(f"/rules/{rule}/start", {}).status == 200
    testplug_kuiperd.wait_status(rule, lambda s: s.get(RECORDED, 0) >= 2)
    assert testplug_kuiperd.plugin_pids("testplug") == pids
    assert len(events(tmp_path, "open")) == 4  # source and sink, twice


def test_rule_delete_closes_symbols_once(testplug_kuiperd: Kuiperd, tmp_path: Path) -> None:
    """Deleting a running rule closes each of its symbols exactly once."""
    _, rule = _counter_rule(testplug_kuiperd, "n", [{"recorder": {}}])
    testplug_kuiperd.wait_status(rule, lambda s: s.get(RECORDED, 0) >= 1)
    assert testplug_kuiperd.delete(f"/rules/{rule}").status == 200
    wait_for(lambda: len(events(tmp_path, "close")) >= 2, what="closes")
    assert sorted(e["symbol"] for e in events(tmp_path, "close")) == ["counter", "recorder"]
