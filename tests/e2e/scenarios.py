"""Scenario steps shared by the e2e tests (and later by other targets)."""

from __future__ import annotations

import functools
import json
import time
import uuid
from typing import Any

from tests.e2e.kuiper import KuiperREST
from tests.protocol.events import wait_for


def uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def metric(status: dict[str, Any], key: str) -> Any:
    assert key in status, f"{key} not in rule status: {sorted(status)}"
    return status[key]


def file_action(path: str) -> dict[str, Any]:
    return {"file": {"path": path, "fileType": "lines", "format": "json",
                     "sendSingle": True}}


def read_lines(kuiperd: KuiperREST, path: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Rows the file sink wrote (it flushes when the rule stops)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = kuiperd.read_text(path)
        if text:
            # Not json_lines: the file sink ends its last line without a newline.
            return [json.loads(line) for line in text.splitlines() if line]
        time.sleep(0.2)
    raise AssertionError(f"file sink wrote nothing to {path}")


def stop_rule(kuiperd: KuiperREST, rule_id: str) -> None:
    resp = kuiperd.post(f"/rules/{rule_id}/stop", {})
    assert resp.status == 200, resp


def run_pysam_rule(kuiperd: KuiperREST, out: str, datasource: str | None = None,
                   min_rows: int = 3) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """pyjson -> revert -> print(requireAck) + file; returns (rule id, status, file rows)."""
    stream, rule = uid("s_"), uid("r_")
    datasource = datasource or uid("ds-")
    kuiperd.create_stream(stream, "pyjson", datasource)
    resp = kuiperd.create_rule(
        rule, f"SELECT revert(name) AS r, value, datasource FROM {stream}",
        [{"print": {"requireAck": True}}, file_action(out)])
    assert resp.status in (200, 201), resp
    status = kuiperd.wait_status(
        rule, lambda s: s.get(f"source_{stream}_0_records_in_total", 0) >= min_rows
        and s.get("sink_print_0_0_records_in_total", 0) >= min_rows)
    stop_rule(kuiperd, rule)
    return rule, {"stream": stream, "datasource": datasource, **status}, read_lines(kuiperd, out)


def start_rules_lost_at_boot(kuiperd: KuiperREST, *rule_ids: str,
                             timeout: float = 30.0) -> list[str]:
    """Start again each of ``rule_ids`` that a booting kuiperd could not restore.

    eKuiper 2.x restores its rules as it boots, while it registers portable plugins in
    goroutines of their own (portable/manager.go, syncRegistry): a rule whose plugin is
    not registered yet fails (``source type <name> not found``) and, with the shipped
    restartStrategy (no attempts), stays ``stopped by error``. An operator starts it
    again, as this does once the plugin is there. Returns the ids it started.
    """
    def settled(status: dict[str, Any]) -> bool:
        return status.get("status") in ("running", "stopped by error")

    lost = [rule_id for rule_id in rule_ids
            if "not found" in (kuiperd.wait_status(rule_id, settled, timeout)
                               .get("message") or "")]

    def started(rule_id: str) -> bool:
        kuiperd.post(f"/rules/{rule_id}/start", {})
        if kuiperd.rule_status(rule_id).get("status") == "running":
            return True
        time.sleep(0.5)  # the plugin is not registered yet
        return False

    for rule_id in lost:
        wait_for(functools.partial(started, rule_id), timeout,
                 what=f"rule {rule_id} to start again")
    if lost:
        print(f"\nkuiperd restored {lost} before it had registered their plugin; "
              "started them again")
    return lost
