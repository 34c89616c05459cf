"""Per-symbol metrics and health of a plugin under a real kuiperd (native and compose).

Native: kuiperd runs with EKUIPER_PLUGIN_METRICS_DIR, testplug inherits it. Compose:
compose.yaml sets it; the test reads the socket and runs `ekuiper-plugin status` inside
the container, as an operator would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ekuiper._cli.health import HealthUnavailable, fetch
from tests.conftest import REPO, TEST_PLUGINS
from tests.e2e.conftest import BootKuiperd
from tests.e2e.docker_target import DockerKuiperd
from tests.e2e.kuiper import KuiperREST
from tests.e2e.scenarios import uid
from tests.protocol.events import wait_for

TESTPLUG = TEST_PLUGINS / "testplug"
# compose.yaml's EKUIPER_PLUGIN_METRICS_DIR inside the container.
CONTAINER_DIR = "/kuiper/metrics"
ROWS = 200


@dataclass
class Metered:
    """An eKuiper whose plugins export metrics, and how to read them where they run."""

    kuiper: KuiperREST
    directory: str
    container: Any = None

    def get(self, target: str) -> tuple[int, bytes]:
        if self.container is None:
            return fetch(Path(self.directory) / "testplug.sock", target)
        code = ("import sys; from pathlib import Path; from ekuiper._cli.health import fetch; "
                f"s, b = fetch(Path({self.directory!r}) / 'testplug.sock', {target!r}); "
                "sys.stdout.write(str(s) + '\\n' + b.decode())")
        exit_code, output = self.container.exec_run(["/opt/venv/bin/python", "-c", code])
        assert exit_code == 0, output
        status, _, body = output.decode().partition("\n")
        return int(status), body.encode()

    def status_cli(self) -> subprocess.CompletedProcess[str]:
        if self.container is None:
            return subprocess.run(
                [sys.executable, "-m", "ekuiper._cli", "status", "testplug", "--server",
                 self.kuiper.base_url, "--metrics-dir", self.directory],
                capture_output=True, text=True, timeout=60)
        exit_code, output = self.container.exec_run(["ekuiper-plugin", "status", "testplug"])
        return subprocess.CompletedProcess([], exit_code, output.decode(), "")


    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """The image's healthcheck, plugins included (EKUIPER_HEALTHCHECK_PLUGINS=1)."""
        if self.container is None:
            return subprocess.run(
                [sys.executable, str(REPO / "images" / "healthcheck.py"),
                 f"{self.kuiper.base_url}/"], capture_output=True, text=True, timeout=60,
                env={**os.environ, "EKUIPER_PLUGIN_METRICS_DIR": self.directory,
                     "EKUIPER_HEALTHCHECK_PLUGINS": "1"})
        exit_code, output = self.container.exec_run(
            ["/opt/venv/bin/python", "/usr/local/lib/ekuiper/healthcheck.py",
             "http://127.0.0.1:9081/"], environment={"EKUIPER_HEALTHCHECK_PLUGINS": "1"})
        return subprocess.CompletedProcess([], exit_code, "", output.decode())


@pytest.fixture(params=["native", "docker"])
def metered(request: pytest.FixtureRequest, boot_kuiperd: BootKuiperd,
            tmp_path: Path) -> Iterator[Metered]:
    if request.param == "docker":
        stack: DockerKuiperd = request.getfixturevalue("docker_stack")
        yield Metered(stack, CONTAINER_DIR, stack.container)
        return
    directory = tempfile.mkdtemp(prefix="ekm-")  # short: socket paths hold 107 bytes
    kuiperd = boot_kuiperd(drop_in=(TESTPLUG,), env={
        "TESTPLUG_OUT": str(tmp_path), "EKUIPER_PLUGIN_METRICS_DIR": directory,
        "EKUIPER_PLUGIN_HEALTH_STUCK_S": "2"})
    yield Metered(kuiperd, directory)
    kuiperd.stop()
    shutil.rmtree(directory, ignore_errors=True)


def samples(metered: Metered) -> list[Any]:
    status, body = metered.get("/metrics")
    assert status == 200
    return [s for family in text_string_to_metric_families(body.decode())
            for s in family.samples]


def value(metered: Metered, name: str, **labels: str) -> float:
    found = [s.value for s in samples(metered)
             if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) == 1, (name, labels, found)
    return float(found[0])


def health(metered: Metered) -> tuple[int, dict[str, Any]]:
    status, body = metered.get("/health")
    return status, json.loads(body)


def state_of(metered: Metered, symbol: str, rule: str) -> str | None:
    """The symbol's state, or None while the plugin (started on first use) has no socket."""
    try:
        document = health(metered)[1]
    except HealthUnavailable:
        return None
    for item in document["symbols"]:
        if item["symbol"] == symbol and item.get("rule") == rule:
            return str(item["state"])
    return None


def test_counts_equal_the_rows_ekuiper_saw(metered: Metered) -> None:
    """Source rows, function calls, sink rows and acks all equal the rows of the rule."""
    kuiper = metered.kuiper
    stream, rule = uid("s_"), uid("r_")
    conf = uid("c")
    # The counter takes its limit from its yaml: put it where kuiperd reads it.
    _write_source_conf(metered, conf, f"interval: 0.002\n  limit: {ROWS}")
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
    # One collect in 8 is timed (EKUIPER_PLUGIN_LATENCY_SAMPLE's default).
    assert value(metered, "ekuiper_plugin_latency_seconds_count", symbol="recorder",
                 rule=rule) == ROWS // 8
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


def _write_source_conf(metered: Metered, key: str, body: str) -> None:
    text = f"default:\n  interval: 0.05\n{key}:\n  {body}\n"
    if metered.container is None:
        home: Path = metered.kuiper.home  # type: ignore[attr-defined]
        (home / "etc" / "sources" / "counter.yaml").write_text(text)
        return
    # A running eKuiper keeps the source yaml it has read (an earlier test in the shared
    # stack may have used counter): give it the section through its REST API instead.
    # eKuiper turns an `interval` sent that way into a duration text ("0s"), which the
    # counter does not read: that one stays at the stack's default.
    conf: dict[str, Any] = {}
    for line in body.splitlines():
        name, _, raw = line.strip().partition(":")
        if name != "interval":
            conf[name] = json.loads(raw)
    resp = metered.kuiper.put(f"/metadata/sources/counter/confKeys/{key}", conf)
    assert resp.status == 200, resp
