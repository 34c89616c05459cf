"""Per-symbol metrics and health of a real plugin process (testplug, metrics on)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ekuiper._cli.health import fetch
from ekuiper._runtime.function import KEEPALIVE_MS
from ekuiper.testing import ProtocolHost
from tests.conftest import TEST_PLUGINS
from tests.protocol.events import wait_for

SCRIPT = TEST_PLUGINS / "testplug" / "testplug.py"


@pytest.fixture
def metrics_dir(short_dir: Path) -> Path:
    return short_dir


@pytest.fixture
def plug(ipc_dir: str, out_dir: Path, metrics_dir: Path,
         request: pytest.FixtureRequest) -> Iterator[ProtocolHost]:
    """testplug with metrics on; a 1 s threshold for stuck and blocked symbols."""
    host = ProtocolHost(ipc_dir, "testplug")
    host.launch(SCRIPT, env={"TESTPLUG_OUT": str(out_dir),
                             "EKUIPER_PLUGIN_METRICS_DIR": str(metrics_dir),
                             "EKUIPER_PLUGIN_HEALTH_STUCK_S": "1",
                             "EKUIPER_PLUGIN_HEALTH_BLOCKED_S": "1",
                             "EKUIPER_PLUGIN_METRICS_INTERVAL_S": "0.5",
                             "EKUIPER_PLUGIN_LATENCY_SAMPLE": "1"})
    yield host
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- plugin log ---\n{host.log()}")
    host.close()


def scrape(metrics_dir: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, body = fetch(metrics_dir / "testplug.sock", "/metrics")
    assert status == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def eventually(metrics_dir: Path, name: str, expected: float, **labels: str) -> None:
    """The metric reaches ``expected``: a count lags the frame it counts by microseconds."""
    wait_for(lambda: value(scrape(metrics_dir), name, **labels) == expected,
             what=f"{name}{labels} == {expected}")


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def health(metrics_dir: Path) -> tuple[int, dict[str, Any]]:
    status, body = fetch(metrics_dir / "testplug.sock", "/health")
    return status, json.loads(body)


def symbol_state(metrics_dir: Path, symbol: str, state: str,
                 with_error: bool = False) -> dict[str, Any] | None:
    """The symbol's /health entry once it is in ``state`` (and has a last_error)."""
    _, document = health(metrics_dir)
    for item in document["symbols"]:
        if item["symbol"] == symbol and item["state"] == state and \
                (not with_error or "last_error" in item):
            return dict(item)
    return None


def test_source_rows_and_bytes_equal_what_was_sent(plug: ProtocolHost, metrics_dir: Path) -> None:
    """A source's rows_total and bytes_total are exactly the frames eKuiper received."""
    _, source = plug.start_source("counter", datasource="d", rule="rm",
                                  config={"interval": 0.001, "limit": 40})
    frames = source.frames(40)
    eventually(metrics_dir, "ekuiper_plugin_rows_total", 40, symbol="counter", rule="rm")
    samples = scrape(metrics_dir)
    assert value(samples, "ekuiper_plugin_rows_total", symbol="counter", rule="rm") == 40
    assert value(samples, "ekuiper_plugin_bytes_total", symbol="counter",
                 rule="rm") == sum(map(len, frames))
    assert value(samples, "ekuiper_plugin_errors_total", symbol="counter", rule="rm") == 0


def test_sink_counts_calls_acks_and_latency(plug: ProtocolHost, metrics_dir: Path) -> None:
    """A sink counts each message, ok and error acks, and one latency sample per collect."""
    _, sink = plug.start_sink("recorder", rule="rk",
                              config={"requireAck": True, "nack_on": "bad", "fail_on": "boom"})
    assert sink is not None
    for payload in (b'[{"a":1}]', b'[{"a":"bad"}]', b'[{"a":"boom"}]', b'[{"a":2}]'):
        sink.send(payload)
        sink.ack()
    labels = {"symbol": "recorder", "rule": "rk"}
    eventually(metrics_dir, "ekuiper_plugin_latency_seconds_count", 4, **labels)
    samples = scrape(metrics_dir)
    assert value(samples, "ekuiper_plugin_rows_total", **labels) == 4
    assert value(samples, "ekuiper_plugin_acks_total", result="ok", **labels) == 2
    assert value(samples, "ekuiper_plugin_acks_total", result="error", **labels) == 2
    assert value(samples, "ekuiper_plugin_errors_total", **labels) == 1  # the raise
    assert value(samples, "ekuiper_plugin_latency_seconds_count", **labels) == 4
    assert value(samples, "ekuiper_plugin_latency_seconds_bucket", le="+Inf", **labels) == 4


def test_function_counts_per_rule(plug: ProtocolHost, metrics_dir: Path) -> None:
    """A function's calls, rows and errors are counted under the rule that called it."""
    _, upper = plug.start_function("upper")
    _, fails = plug.start_function("fails")
    for _ in range(3):
        assert upper.exec("a", rule="ra")["state"] is True
    assert upper.exec("b", rule="rb")["state"] is True
    assert fails.exec(1, rule="ra")["state"] is False
    samples = scrape(metrics_dir)
    assert value(samples, "ekuiper_plugin_calls_total", symbol="upper", rule="ra") == 3
    assert value(samples, "ekuiper_plugin_rows_total", symbol="upper", rule="rb") == 1
    assert value(samples, "ekuiper_plugin_errors_total", symbol="fails", rule="ra") == 1
    assert value(samples, "ekuiper_plugin_rows_total", symbol="fails", rule="ra") == 0
    _, document = health(metrics_dir)
    failing = [s for s in document["symbols"] if s["symbol"] == "fails"]
    assert failing[0]["last_error"] == "ZeroDivisionError: cannot divide by zero"


def test_function_rows_replaced_by_its_policy_are_counted(plug: ProtocolHost,
                                                           metrics_dir: Path) -> None:
    """A row the on_error policy turned into null counts as replaced and as a row."""
    _, nullfails = plug.start_function("nullfails")
    for n in (1, 2, 3):
        assert nullfails.exec(n, rule="rn")["state"] is True
    samples = scrape(metrics_dir)
    labels = {"symbol": "nullfails", "rule": "rn"}
    assert value(samples, "ekuiper_plugin_errors_replaced_total", **labels) == 2
    assert value(samples, "ekuiper_plugin_rows_total", **labels) == 3
    assert value(samples, "ekuiper_plugin_errors_total", **labels) == 0


def test_sink_retries_and_exhausted_messages_are_counted(plug: ProtocolHost,
                                                         metrics_dir: Path) -> None:
    """Retries made and messages given up on count per sink; the giving up is an error."""
    _, sink = plug.start_sink("flaky", rule="rr", config={
        "requireAck": True, "fail_times": 2, "collectRetries": 1, "collectBackoff": 1})
    assert sink is not None
    sink.send(b'[{"a":1}]')
    assert "gave up after 2 attempts" in json.dumps(sink.ack())
    labels = {"symbol": "flaky", "rule": "rr"}
    eventually(metrics_dir, "ekuiper_plugin_retries_exhausted_total", 1, **labels)
    samples = scrape(metrics_dir)
    assert value(samples, "ekuiper_plugin_retries_total", **labels) == 1
    assert value(samples, "ekuiper_plugin_errors_total", **labels) == 1


def test_healthy_plugin_answers_200(plug: ProtocolHost, metrics_dir: Path) -> None:
    """With the control channel up and every symbol running, /health is 200 and healthy."""
    plug.start_source("counter", datasource="d")
    status, document = health(metrics_dir)
    assert status == 200
    assert document["healthy"] is True and document["control"] == "connected"
    assert document["pid"] == plug.process.pid  # type: ignore[union-attr]
    assert fetch(metrics_dir / "testplug.sock", "/ready")[0] == 200


def test_source_whose_open_raised_is_failed(plug: ProtocolHost, metrics_dir: Path) -> None:
    """A source whose open() raised is 'failed', with the error, and /health is 503."""
    plug.start_source("broken")
    item = wait_for(lambda: symbol_state(metrics_dir, "broken", "failed", True), what="failed")
    assert item["healthy"] is False
    assert "RuntimeError: device unplugged" in item["last_error"]
    assert health(metrics_dir)[0] == 503


def test_source_whose_open_returned_is_returned(plug: ProtocolHost, metrics_dir: Path) -> None:
    """A source whose open() returned and then stays quiet becomes 'returned'."""
    _, source = plug.start_source("reporter")
    source.frames(2)
    item = wait_for(lambda: symbol_state(metrics_dir, "reporter", "returned", True),
                    what="returned")
    assert item["last_error"] == "sensor offline"  # its emit_error, counted as an error


def test_source_blocked_by_backpressure_is_blocked(plug: ProtocolHost, metrics_dir: Path) -> None:
    """A source whose rows eKuiper stops taking becomes 'blocked' after the threshold."""
    plug.start_source("counter", datasource="d", config={"interval": 0})
    item = wait_for(lambda: symbol_state(metrics_dir, "counter", "blocked"), timeout=30,
                    what="blocked")
    assert "emit() has waited" in item["detail"]


def test_sink_whose_open_raised_is_failed(plug: ProtocolHost, metrics_dir: Path) -> None:
    """A sink whose open() raised is 'failed' before any message arrives."""
    plug.start_sink("badopen")
    item = wait_for(lambda: symbol_state(metrics_dir, "badopen", "failed", True), what="failed")
    assert "ConnectionError: database down" in item["last_error"]


def test_sink_collect_running_too_long_is_stuck(plug: ProtocolHost, metrics_dir: Path) -> None:
    """A collect() running past the threshold makes the sink 'stuck', then it recovers."""
    _, sink = plug.start_sink("recorder", config={"sleep": 3})
    assert sink is not None
    sink.send(b'[{"a":1}]')
    item = wait_for(lambda: symbol_state(metrics_dir, "recorder", "stuck"), what="stuck")
    assert "collect() has been running" in item["detail"]
    wait_for(lambda: symbol_state(metrics_dir, "recorder", "running"), what="recovered")


def test_function_exec_running_too_long_is_stuck(plug: ProtocolHost, metrics_dir: Path) -> None:
    """A request running past the threshold makes the function 'stuck'."""
    _, sleepy = plug.start_function("sleepy")
    call = threading.Thread(target=sleepy.exec, args=(3,), daemon=True)
    call.start()
    item = wait_for(lambda: symbol_state(metrics_dir, "sleepy", "stuck"), what="stuck")
    assert "a request has been running" in item["detail"]
    call.join(10)


def test_function_channel_lost_is_lost(plug: ProtocolHost, metrics_dir: Path) -> None:
    """A function whose channel to eKuiper is gone for good becomes 'lost'."""
    _, upper = plug.start_function("upper")
    # Called steadily for longer than the lost threshold (keepalive 5 s + blocked 1 s), it
    # stays running: only closing the channel makes it lost.
    until = time.monotonic() + KEEPALIVE_MS / 1000 + 3
    while time.monotonic() < until:
        assert upper.exec("a")["state"] is True
        assert symbol_state(metrics_dir, "upper", "running") is not None
        time.sleep(0.5)
    upper.sock.close()
    item = wait_for(lambda: symbol_state(metrics_dir, "upper", "lost"), timeout=30,
                    what="lost")
    assert item["healthy"] is False


def test_control_channel_not_connected_is_not_ready(out_dir: Path, metrics_dir: Path) -> None:
    """Until the control channel is up, /ready and /health answer 503 'disconnected'."""
    no_ekuiper = tempfile.mkdtemp(prefix="ekm-ipc-")
    env = {**os.environ, "EKUIPER_IPC_DIR": no_ekuiper,
           "EKUIPER_PLUGIN_METRICS_DIR": str(metrics_dir)}
    process = subprocess.Popen([sys.executable, str(SCRIPT), '{"sendTimeout":1000}'],
                               cwd=SCRIPT.parent, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        sock = metrics_dir / "testplug.sock"
        wait_for(sock.exists, what="the plugin's socket")
        assert fetch(sock, "/ready")[0] == 503
        status, body = fetch(sock, "/health")
        assert status == 503
        assert json.loads(body)["control"] == "disconnected"
    finally:
        process.kill()
        process.wait(10)
        shutil.rmtree(no_ekuiper, ignore_errors=True)


def test_unknown_path_is_404_naming_the_endpoints(plug: ProtocolHost, metrics_dir: Path) -> None:
    """A path the exporter does not serve is a 404 that names the ones it does."""
    status, body = fetch(metrics_dir / "testplug.sock", "/nothing")
    assert status == 404 and b"/health" in body


def test_textfile_is_written_and_removed_at_exit(plug: ProtocolHost, metrics_dir: Path) -> None:
    """The .prom textfile appears, parses, and goes away with the socket on SIGTERM."""
    plug.start_source("counter", datasource="d", config={"limit": 5})
    textfile = metrics_dir / "testplug.prom"
    wait_for(lambda: textfile.exists() and "kind=\"source\"" in textfile.read_text(),
             what="textfile with the source")
    names = {f.name for f in text_string_to_metric_families(textfile.read_text())}
    assert "ekuiper_plugin_rows" in names
    assert plug.process is not None
    plug.process.send_signal(signal.SIGTERM)
    assert plug.process.wait(15) == 0
    assert sorted(os.listdir(metrics_dir)) == []
