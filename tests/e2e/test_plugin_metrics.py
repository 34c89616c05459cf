"""Per-symbol metrics and health of a plugin under a real kuiperd (native and compose).

Native: kuiperd runs with EKUIPER_PLUGIN_METRICS_DIR, testplug inherits it. Compose:
compose.yaml sets it; the test reads the socket and runs `ekuiper-plugin status` inside
the container, as an operator would.
"""

from __future__ import annotations

import os
import signal
import subprocess

from tests.e2e.metered import Metered, health, in_state, state_of, value, write_source_conf
from tests.e2e.scenarios import uid
from tests.protocol.events import wait_for

ROWS = 200


def test_counts_equal_the_rows_ekuiper_saw(metered: Metered) -> None:
    """Source rows, function calls, sink rows and acks all equal the rows of the rule."""
    kuiper = metered.kuiper
    stream, rule = uid("s_"), uid("r_")
    conf = uid("c")
    # The counter takes its limit from its yaml: put it where kuiperd reads it.
    write_source_conf(metered, conf, f"interval: 0.002\n  limit: {ROWS}")
    kuiper.create_stream(stream, "counter", uid("ds-"), extra=f', CONF_KEY="{conf}"')
    resp = kuiper.create_rule(rule, f"SELECT n, sleepy(0) AS z FROM {stream}",
                              [{"recorder": {"requireAck": True, "sendSingle": True,
                                             "quiet": True}}])
    assert resp.status in (200, 201), resp
    sink_in = "sink_recorder_0_0_records_in_total"
    status = kuiper.wait_status(rule, lambda s: s.get(sink_in, 0) >= ROWS, timeout=60)
    wait_for(lambda: value(metered, "ekuiper_plugin_acks_total", symbol="recorder",
                           rule=rule, result="ok") == ROWS, what="all acks counted")
    assert value(metered, "ekuiper_plugin_rows_total", symbol="counter", rule=rule) == ROWS
    assert status[f"source_{stream}_0_records_in_total"] == ROWS
    assert value(metered, "ekuiper_plugin_calls_total", symbol="sleepy", rule=rule) == ROWS
    assert value(metered, "ekuiper_plugin_rows_total", symbol="recorder", rule=rule) == ROWS
    # One collect in 32 is timed (EKUIPER_PLUGIN_LATENCY_SAMPLE's default).
    assert value(metered, "ekuiper_plugin_latency_seconds_count", symbol="recorder",
                 rule=rule) == ROWS // 32
    status_code, document = health(metered)
    mine = {s["symbol"]: s["healthy"] for s in document["symbols"] if s.get("rule") == rule}
    assert mine == {"counter": True, "sleepy": True, "recorder": True}, document
    shown = metered.status_cli()
    assert f"sink recorder rule={rule} op=" in shown.stdout
    if metered.container is None:
        # Its own kuiperd runs nothing else; the shared compose stack may hold symbols
        # other tests left unhealthy on purpose, which make the whole plugin's answer 503.
        assert status_code == 200
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "plugin health: healthy" in shown.stdout


def test_unhealthy_symbols_are_seen(metered: Metered) -> None:
    """A failed source, a failed sink and a stuck sink each show in /health and status."""
    kuiper = metered.kuiper
    broken_stream, stream = uid("s_"), uid("s_")
    kuiper.create_stream(broken_stream, "broken", uid("ds-"))
    kuiper.create_stream(stream, "counter", uid("ds-"))
    broken, badopen, slow = uid("r_"), uid("r_"), uid("r_")
    for rule, sql, action in (
            (broken, f"SELECT * FROM {broken_stream}", {"log": {}}),
            (badopen, f"SELECT n FROM {stream}", {"badopen": {}}),
            (slow, f"SELECT n FROM {stream}", {"recorder": {"sleep": 8, "quiet": True}})):
        assert kuiper.create_rule(rule, sql, [action]).status in (200, 201)
    wait_for(lambda: state_of(metered, "broken", broken) == "failed", timeout=30,
             what="the broken source failed")
    wait_for(lambda: state_of(metered, "badopen", badopen) == "failed", timeout=30,
             what="the badopen sink failed")
    wait_for(lambda: state_of(metered, "recorder", slow) == "stuck", timeout=30,
             what="the slow sink stuck")
    status, document = health(metered)
    assert status == 503 and document["healthy"] is False
    shown = metered.status_cli()
    assert shown.returncode == 1
    assert "plugin health: UNHEALTHY" in shown.stdout
    assert f"source broken rule={broken}" in shown.stdout
    assert "failed (open() raised RuntimeError: device unplugged)" in shown.stdout
    check = metered.healthcheck()
    assert check.returncode == 1 and "plugin testplug is unhealthy" in check.stderr
    for rule in (broken, badopen, slow):
        kuiper.delete(f"/rules/{rule}")
    # eKuiper stops a deleted rule after its DELETE has answered, and the slow sink's
    # stop waits for its collect; kuiperd SIGKILLs its plugins when it exits, so the
    # teardown must not stop it before the plugin has seen these stops.
    deleted = (("broken", broken), ("badopen", badopen), ("recorder", slow))
    wait_for(lambda: all(state_of(metered, s, r) is None for s, r in deleted), timeout=30,
             what="the plugin stopped the deleted rules' symbols")


def test_source_whose_open_returned_is_returned(metered: Metered) -> None:
    """reporter's open() reports an error, emits a row and returns: once quiet past the
    stuck limit it is 'returned', unhealthy, with its reported error as the last one."""
    kuiper = metered.kuiper
    stream, rule = uid("s_"), uid("r_")
    kuiper.create_stream(stream, "reporter", uid("ds-"))
    assert kuiper.create_rule(rule, f"SELECT * FROM {stream}", [{"log": {}}]).status \
        in (200, 201)
    item = wait_for(lambda: in_state(metered, "reporter", rule, "returned"), timeout=30,
                    what="the reporter source returned")
    assert item["healthy"] is False and item["kind"] == "source"
    assert item["detail"].startswith("open() returned; nothing emitted for ")
    assert item["last_error"] == "sensor offline"
    shown = metered.status_cli()
    assert shown.returncode == 1, shown.stdout
    assert f"source reporter rule={rule}" in shown.stdout
    assert "returned (open() returned; nothing emitted for" in shown.stdout
    kuiper.delete(f"/rules/{rule}")
    wait_for(lambda: state_of(metered, "reporter", rule) is None, timeout=30,
             what="the plugin stopped the deleted rule's source")


def test_function_whose_exec_runs_too_long_is_stuck(metered: Metered) -> None:
    """sleepy(4) runs each call past the 2 s stuck limit (within eKuiper's 5 s request
    deadline): the function shows 'stuck' for the calling rule, and recovers."""
    kuiper = metered.kuiper
    stream, rule = uid("s_"), uid("r_")
    kuiper.create_stream(stream, "counter", uid("ds-"))
    assert kuiper.create_rule(rule, f"SELECT sleepy(4) AS z FROM {stream}",
                              [{"log": {}}]).status in (200, 201)
    item = wait_for(lambda: in_state(metered, "sleepy", rule, "stuck"), timeout=30,
                    what="the sleepy function stuck")
    assert item["healthy"] is False and item["kind"] == "function"
    assert item["detail"].startswith("a request has been running for about ")
    assert item["detail"].endswith("(limit 2 s, EKUIPER_PLUGIN_HEALTH_STUCK_S)")
    # Each call is stuck for its last 2 s only, and the CLI may start slower than that.
    shown = wait_for(lambda: _status_showing(metered, "stuck (a request has been running "
                                                      "for about"),
                     timeout=30, what="ekuiper-plugin status showing sleepy stuck")
    assert shown.returncode == 1, shown.stdout
    assert f"function sleepy rule={rule}" in shown.stdout
    kuiper.delete(f"/rules/{rule}")
    # The call under way ends within its 4 s; the next test's functions are not stuck.
    wait_for(lambda: state_of(metered, "sleepy", rule) != "stuck", timeout=30,
             what="the sleepy function's last call ended")


def test_source_ekuiper_stops_reading_is_blocked(metered: Metered) -> None:
    """While kuiperd is paused (SIGSTOP) it takes no rows: a source emitting as fast as it
    can waits past the 2 s limit and its health, read from the plugin's own socket, says
    'blocked'; resumed, it is running again."""
    # Why a paused kuiperd, not a slow sink: eKuiper 2.x drops rows when a rule's
    # buffers are full ("buffer full, drop message"), so no slow rule pushes back on the
    # source; only eKuiper not reading its source channel does.
    kuiper = metered.kuiper
    stream, rule, conf = uid("s_"), uid("r_"), uid("c")
    write_source_conf(metered, conf, "threads: 1\n  rows: 100000000", source="threaded")
    kuiper.create_stream(stream, "threaded", uid("ds-"), extra=f', CONF_KEY="{conf}"')
    assert kuiper.create_rule(rule, f"SELECT * FROM {stream}", [{"nop": {}}]).status \
        in (200, 201)
    wait_for(lambda: state_of(metered, "threaded", rule) == "running", timeout=30,
             what="the threaded source running")
    pid = _kuiperd_pid(metered)
    os.kill(pid, signal.SIGSTOP)
    try:
        item = wait_for(lambda: in_state(metered, "threaded", rule, "blocked"), timeout=30,
                        what="the threaded source blocked")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert item["healthy"] is False and item["kind"] == "source"
    assert item["detail"].startswith("emit() has waited ")
    assert item["detail"].endswith(" s for eKuiper to take a row (limit 2 s, "
                                   "EKUIPER_PLUGIN_HEALTH_BLOCKED_S)")
    item = wait_for(lambda: in_state(metered, "threaded", rule, "running"), timeout=30,
                    what="the threaded source running again")
    assert item["healthy"] is True
    kuiper.delete(f"/rules/{rule}")
    wait_for(lambda: state_of(metered, "threaded", rule) is None, timeout=30,
             what="the plugin stopped the deleted rule's source")


def _kuiperd_pid(metered: Metered) -> int:
    """kuiperd's process id as this machine sees it (the container's, from the host)."""
    if metered.container is None:
        pid: int = metered.kuiper.proc.pid  # type: ignore[attr-defined]
        return pid
    top = metered.container.top(ps_args="-eo pid,args")
    pid_col, args_col = top["Titles"].index("PID"), top["Titles"].index("COMMAND")
    [found] = [int(row[pid_col]) for row in top["Processes"]
               if row[args_col].split()[0].endswith("/kuiperd")
               or row[args_col].split()[0] == "kuiperd"]
    return found


def _status_showing(metered: Metered, text: str) -> subprocess.CompletedProcess[str] | None:
    """``ekuiper-plugin status``'s run, if its output holds ``text``."""
    shown = metered.status_cli()
    return shown if text in shown.stdout else None
