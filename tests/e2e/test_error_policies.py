"""Per-record error policies in a real kuiperd: testplug's nullfails function (on_error =
ErrorPolicy.null()) and flaky sink (ErrorPolicy.retry, overridable per action)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import DOCKER, NATIVE, targets
from tests.e2e.kuiper import Kuiperd, KuiperREST
from tests.e2e.scenarios import file_action, metric, read_lines, stop_rule, uid
from tests.protocol.events import events

FLAKY = "sink_flaky_0_0"


def _counter_rule(kuiper: KuiperREST, select: str, actions: list[dict]) -> str:
    stream, rule = uid("s_"), uid("r_")
    kuiper.create_stream(stream, "counter", uid("ds-"))
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


@targets(NATIVE)
def test_retried_sink_delivers_every_row_once_in_order(kuiper: KuiperREST,
                                                       tmp_path: Path) -> None:
    """flaky fails twice per message; its retry policy delivers each row once, in order,
    and eKuiper sees only ok acks."""
    rule = _counter_rule(kuiper, "n",
                         [{"flaky": {"requireAck": True, "sendSingle": True}}])
    status = kuiper.wait_status(
        rule, lambda s: s.get(f"{FLAKY}_records_out_total", 0) >= 5, timeout=30)
    stop_rule(kuiper, rule)
    kept = [e["data"] for e in events(tmp_path, "collect") if e["symbol"] == "flaky"]
    assert kept == [f'{{"n":{n}}}' for n in range(len(kept))]
    attempts: dict[str, int] = {}
    for e in events(tmp_path, "attempt"):
        attempts[e["data"]] = e["n"]
    assert {attempts[data] for data in kept} == {3}
    assert metric(status, f"{FLAKY}_exceptions_total") == 0


@targets(NATIVE)
def test_exhausted_retries_ack_the_error(kuiper: KuiperREST, tmp_path: Path) -> None:
    """With collectRetries: 1 in the action (overriding the class), each message fails its
    two attempts and eKuiper counts one sink exception per message with the text."""
    rule = _counter_rule(kuiper, "n",
                         [{"flaky": {"requireAck": True, "sendSingle": True,
                                     "collectRetries": 1, "collectBackoff": "20ms"}}])
    status = kuiper.wait_status(
        rule, lambda s: s.get(f"{FLAKY}_exceptions_total", 0) >= 3, timeout=30)
    stop_rule(kuiper, rule)
    assert metric(status, f"{FLAKY}_last_exception").endswith(
        "ConnectionError: store unavailable (attempt 2) (gave up after 2 attempts)")
    assert metric(status, f"{FLAKY}_records_out_total") == 0
    assert not [e for e in events(tmp_path, "collect") if e["symbol"] == "flaky"]
    assert {e["n"] for e in events(tmp_path, "attempt")} == {1, 2}


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
