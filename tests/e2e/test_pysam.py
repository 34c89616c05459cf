"""pysam in a real kuiperd, driven through the REST API (scenarios 1-3, 6, 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PLUGINS
from tests.e2e.conftest import DOCKER, NATIVE, NATIVE_V1, V1_VERSION, BootKuiperd, targets
from tests.e2e.kuiper import DEFAULT_VERSION, KuiperREST, make_plugin_zip
from tests.e2e.scenarios import file_action, metric, read_lines, run_pysam_rule, stop_rule, uid
from tests.protocol.events import wait_for

PYSAM = PLUGINS / "pysam"
# Scenarios 1-3 also run on eKuiper 1.x, whose protocol differs (dataSource, no -u,
# process started on first use), and in the compose stack; the rest on eKuiper 2.x.
both_majors = pytest.mark.parametrize("version", [DEFAULT_VERSION, V1_VERSION])


@targets(NATIVE, NATIVE_V1, DOCKER)
def test_drop_in_plugin_is_running_after_boot(kuiper: KuiperREST) -> None:
    """A pysam folder dropped in before boot is listed (2.x: and running)."""
    kuiperd = kuiper
    listed = {p["name"]: p for p in kuiperd.get("/plugins/portables").body}
    assert {"pysam", "testplug"} <= set(listed)
    assert listed["pysam"]["sources"] == ["pyjson"]
    if kuiperd.major < 2:
        return  # 1.x has no status endpoint and starts the process on first use
    status = wait_for(lambda: kuiperd.plugin_status("pysam")["status"] == "running"
                      and kuiperd.plugin_status("pysam"), what="pysam running")
    assert status["errMsg"] == ""
    assert len(kuiperd.plugin_pids("pysam")) == 1


@both_majors
def test_rest_install_from_zip(boot_kuiperd: BootKuiperd, tmp_path: Path, version: str) -> None:
    """POST /plugins/portables with a file:// zip installs pysam and it runs rules."""
    kuiperd = boot_kuiperd(version)
    archive = make_plugin_zip(PYSAM, tmp_path / "pysam.zip")
    resp = kuiperd.post("/plugins/portables", {"name": "pysam", "file": f"file://{archive}"})
    assert resp.status == 201, resp
    if kuiperd.major >= 2:
        wait_for(lambda: kuiperd.plugin_status("pysam")["status"] == "running",
                 what="pysam running")
    _, _, rows = run_pysam_rule(kuiperd, kuiperd.out_path("rest.txt"))
    assert {row["r"] for row in rows} == {"nosjyp"}


@targets(NATIVE, NATIVE_V1, DOCKER)
def test_rule_output_and_metrics(kuiper: KuiperREST) -> None:
    """Rows arrive reversed with the stream's datasource; metrics count them, no errors."""
    kuiperd = kuiper
    _, status, rows = run_pysam_rule(kuiperd, kuiperd.out_path("out.txt"))
    assert len(rows) >= 3
    assert all(row == {"r": "nosjyp", "value": 2021, "datasource": status["datasource"]}
               for row in rows), rows
    assert metric(status, f"source_{status['stream']}_0_records_in_total") >= 3
    assert metric(status, "sink_print_0_0_records_in_total") >= 3
    assert metric(status, "sink_print_0_0_exceptions_total") == 0
    assert metric(status, f"source_{status['stream']}_0_exceptions_total") == 0
    assert '"r":"nosjyp"' in kuiperd.log()


@targets(NATIVE, DOCKER)
def test_two_rules_share_source_and_function(kuiper: KuiperREST) -> None:
    """Two rules run pyjson and revert at once, each seeing its own datasource."""
    kuiperd = kuiper
    rules = []
    for n in range(2):
        stream, rule, ds = uid("s_"), uid("r_"), uid(f"ds{n}-")
        out = kuiperd.out_path(f"two{n}.txt")
        kuiperd.create_stream(stream, "pyjson", ds)
        resp = kuiperd.create_rule(rule, f"SELECT revert(name) AS r, datasource FROM {stream}",
                                   [file_action(out)])
        assert resp.status in (200, 201), resp
        rules.append((stream, rule, ds, out))
    for stream, rule, _, _ in rules:
        key = f"source_{stream}_0_records_in_total"
        kuiperd.wait_status(rule, lambda s, key=key: s.get(key, 0) >= 3)
    for _, rule, ds, out in rules:
        stop_rule(kuiperd, rule)
        rows = read_lines(kuiperd, out)
        assert {(row["r"], row["datasource"]) for row in rows} == {("nosjyp", ds)}


def test_plugin_update_while_rule_runs(boot_kuiperd: BootKuiperd, tmp_path: Path) -> None:
    """PUT replaces a running plugin's process; the rule keeps receiving rows."""
    kuiperd = boot_kuiperd(drop_in=(PYSAM,))
    stream, rule = uid("s_"), uid("r_")
    kuiperd.create_stream(stream, "pyjson", uid("ds-"))
    kuiperd.create_rule(rule, f"SELECT revert(name) AS r FROM {stream}",
                        [{"print": {"requireAck": True}}])
    key = f"source_{stream}_0_records_in_total"
    kuiperd.wait_status(rule, lambda s: s.get(key, 0) >= 2)
    old_pids = kuiperd.plugin_pids("pysam")
    archive = make_plugin_zip(PYSAM, tmp_path / "pysam.zip")
    resp = kuiperd.put("/plugins/portables/pysam", {"name": "pysam", "file": f"file://{archive}"})
    assert resp.status == 200, resp
    new_pids = wait_for(lambda: (p := kuiperd.plugin_pids("pysam")) and p != old_pids and p,
                        what="a new pysam process")
    assert set(new_pids).isdisjoint(old_pids)
    before = kuiperd.rule_status(rule)[key]
    after = kuiperd.wait_status(rule, lambda s: s.get(key, 0) >= before + 3)
    assert after["status"] == "running"


def test_plugin_delete_ends_its_process(boot_kuiperd: BootKuiperd) -> None:
    """DELETE /plugins/portables/pysam removes the plugin and its process exits."""
    kuiperd = boot_kuiperd(drop_in=(PYSAM,))
    # Not before it runs: a DELETE during the handshake waits for eKuiper's initTimeout.
    wait_for(lambda: kuiperd.plugin_status("pysam")["status"] == "running", what="running")
    assert kuiperd.plugin_pids("pysam")
    resp = kuiperd.delete("/plugins/portables/pysam")
    assert resp.status == 200, resp
    wait_for(lambda: not kuiperd.plugin_pids("pysam"), timeout=5, what="pysam exit")
    assert kuiperd.get("/plugins/portables").body in ([], None)
