"""Scenario steps shared by the e2e tests (and later by other targets)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tests.e2e.kuiper import KuiperREST


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
