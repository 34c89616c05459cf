"""Per-record error policies in a real kuiperd: testplug's nullfails and defaultfails
functions (on_error = ErrorPolicy.null() / .default(-1)) and flaky sink (ErrorPolicy.retry,
overridable per action)."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import DOCKER, NATIVE, targets
from tests.e2e.kuiper import Kuiperd, KuiperREST
from tests.e2e.metered import Metered, value, write_source_conf
from tests.e2e.scenarios import file_action, metric, read_lines, stop_rule, uid
from tests.protocol.events import json_lines, wait_for

FLAKY = "sink_flaky_0_0"


def _counter_rule(kuiper: KuiperREST, select: str, actions: list[dict],
                  extra: str = "") -> str:
    stream, rule = uid("s_"), uid("r_")
    kuiper.create_stream(stream, "counter", uid("ds-"), extra=extra)
    resp = kuiper.create_rule(rule, f"SELECT {select} FROM {stream}", actions)
    assert resp.status in (200, 201), resp
    return rule


@targets(NATIVE, DOCKER)
def test_null_policy_rows_carry_null_and_no_exception(kuiper: KuiperREST) -> None:
    """Rows whose function call raised carry NULL there (SQL sees it: coalesce replaces it;
    eKuiper's JSON leaves the null field out); the project operator counts no exception."""
    out = kuiper.out_path(uid("nullfails-") + ".jsonl")
    rule = _counter_rule(kuiper, "n, nullfails(n) AS x, coalesce(nullfails(n), -1) AS y",
                         [file_action(out)])
    status = kuiper.wait_status(rule, lambda s: s.get("sink_file_0_0_records_in_total", 0) >= 6)
    stop_rule(kuiper, rule)
    rows = read_lines(kuiper, out)
    assert len(rows) >= 6
    assert [(row.get("x", "null"), row["y"]) for row in rows] == \
        [("null", -1) if row["n"] % 2 else (row["n"] * 10, row["n"] * 10) for row in rows]
    assert metric(status, "op_2_project_0_exceptions_total") == 0
    assert metric(status, "op_2_project_0_records_out_total") >= 6


@targets(NATIVE)
def test_function_without_policy_still_counts_errors(kuiper: KuiperREST) -> None:
    """The same kind of failure without a policy is still an exception of the rule."""
    rule = _counter_rule(kuiper, "fails(n) AS x", [{"log": {}}])
    status = kuiper.wait_status(
        rule, lambda s: s.get("op_2_project_0_exceptions_total", 0) >= 2)
    assert "cannot divide by zero" in metric(status, "op_2_project_0_last_exception")


def _flaky_events(kuiper: KuiperREST, directory: str, event: str) -> list[dict[str, Any]]:
    """What flaky recorded in its events_dir (a path as kuiperd sees it)."""
    text = kuiper.read_text(f"{directory}/events.jsonl") or ""
    rows = json_lines(text)
    return [r for r in rows if r["event"] == event]


@targets(NATIVE, DOCKER)
def test_retried_sink_delivers_every_row_once_in_order(kuiper: KuiperREST) -> None:
    """flaky fails twice per message; its retry policy delivers each row once, in order,
    and eKuiper sees only ok acks."""
    out = kuiper.out_path(uid("flaky-"))
    rule = _counter_rule(kuiper, "n",
                         [{"flaky": {"requireAck": True, "sendSingle": True,
                                     "events_dir": out}}])
    status = kuiper.wait_status(
        rule, lambda s: s.get(f"{FLAKY}_records_out_total", 0) >= 5, timeout=30)
    stop_rule(kuiper, rule)
    kept = [e["data"] for e in _flaky_events(kuiper, out, "collect")]
    assert len(kept) >= 5
    assert kept == [f'{{"n":{n}}}' for n in range(len(kept))]
    attempts: dict[str, int] = {}
    for e in _flaky_events(kuiper, out, "attempt"):
        attempts[e["data"]] = e["n"]
    assert {attempts[data] for data in kept} == {3}
    assert metric(status, f"{FLAKY}_exceptions_total") == 0


@targets(NATIVE, DOCKER)
def test_exhausted_retries_ack_the_error(kuiper: KuiperREST) -> None:
    """With collectRetries: 1 in the action (overriding the class), each message fails its
    two attempts and eKuiper counts one sink exception per message with the text."""
    out = kuiper.out_path(uid("flaky-"))
    rule = _counter_rule(kuiper, "n",
                         [{"flaky": {"requireAck": True, "sendSingle": True,
                                     "collectRetries": 1, "collectBackoff": "20ms",
                                     "events_dir": out}}])
    status = kuiper.wait_status(
        rule, lambda s: s.get(f"{FLAKY}_exceptions_total", 0) >= 3, timeout=30)
    stop_rule(kuiper, rule)
    assert metric(status, f"{FLAKY}_last_exception").endswith(
        "ConnectionError: store unavailable (attempt 2) (gave up after 2 attempts)")
    assert metric(status, f"{FLAKY}_records_out_total") == 0
    assert not _flaky_events(kuiper, out, "collect")
    attempts = _flaky_events(kuiper, out, "attempt")
    assert len(attempts) >= 6
    assert {e["n"] for e in attempts} == {1, 2}


def test_default_policy_rows_carry_the_default(metered: Metered) -> None:
    """defaultfails raises for odd n; ErrorPolicy.default(-1) gives those rows -1, the
    others their result, no exception reaches the rule, and the plugin counts each
    replaced row (as a row, not an error)."""
    kuiper, conf, rows = metered.kuiper, uid("c"), 10
    # A counter that stops at `rows` makes every count exact.
    write_source_conf(metered, conf, f"limit: {rows}")
    out = kuiper.out_path(uid("defaultfails-") + ".jsonl")
    rule = _counter_rule(kuiper, "n, defaultfails(n) AS x", [file_action(out)],
                         extra=f', CONF_KEY="{conf}"')
    status = kuiper.wait_status(
        rule, lambda s: s.get("sink_file_0_0_records_in_total", 0) >= rows)
    labels = {"symbol": "defaultfails", "rule": rule}
    wait_for(lambda: value(metered, "ekuiper_plugin_calls_total", **labels) == rows,
             what="every call counted")
    assert value(metered, "ekuiper_plugin_errors_replaced_total", **labels) == rows // 2
    assert value(metered, "ekuiper_plugin_rows_total", **labels) == rows
    assert value(metered, "ekuiper_plugin_errors_total", **labels) == 0
    stop_rule(kuiper, rule)
    got = [(row["n"], row["x"]) for row in read_lines(kuiper, out)]
    assert got == [(n, -1 if n % 2 else n * 10) for n in range(rows)]
    assert metric(status, "op_2_project_0_exceptions_total") == 0


@targets(NATIVE)
def test_bad_retry_property_fails_the_rule_start(kuiper: Kuiperd) -> None:
    """A collect* value the SDK cannot use stops the rule by error; eKuiper logs the reason
    (field, value, what is expected) as the rule's error (its status message stays empty)."""
    rule = _counter_rule(kuiper, "n",
                         [{"flaky": {"collectRetries": 2, "collectBackoff": "soon"}}])
    status = kuiper.wait_status(rule, lambda s: s.get("status") != "running")
    assert status["status"] == "stopped by error"
    assert "closing Rule for error: receive error: sink 'flaky': action property " \
           "collectBackoff is 'soon'; expected a duration" in kuiper.log()
