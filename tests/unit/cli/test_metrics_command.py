"""`ekuiper-plugin metrics`: every plugin of a directory on one TCP port."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ekuiper import PluginConfig
from ekuiper._cli import main
from ekuiper._cli.commands import METRICS_CLIENT_TIMEOUT_S
from ekuiper._metrics import MetricsSettings
from ekuiper._runtime.exporter import MetricsExporter
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper.testing import MemoryTransport
from tests.e2e.kuiper import free_port


@pytest.fixture
def directory(short_dir: Path) -> Path:
    return short_dir


@pytest.fixture
def two_plugins(directory: Path) -> Iterator[list[PluginRuntime]]:
    """Plugins 'a' (connected) and 'b' (control channel down) serving in ``directory``."""
    runtimes, exporters = [], []
    for name, connected in (("a", True), ("b", False)):
        runtime = PluginRuntime(PluginConfig(name), MemoryTransport())
        runtime.connected = connected
        exporter = MetricsExporter(runtime, MetricsSettings(str(directory)),
                                   logging.getLogger("t"))
        exporter.start()
        runtimes.append(runtime)
        exporters.append(exporter)
    yield runtimes
    for exporter in exporters:
        exporter.stop()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serves_every_plugin_on_one_port(directory: Path,
                                         two_plugins: list[PluginRuntime]) -> None:
    """/metrics holds both plugins' series; /health is 503 while one is unhealthy."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ekuiper._cli", "metrics", "--dir",
                               str(directory), "--listen", f"127.0.0.1:{port}"],
                              stderr=subprocess.PIPE, env={**os.environ})
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/metrics")
                break
            except OSError:
                assert time.monotonic() < deadline, "the aggregator never answered"
                time.sleep(0.1)
        assert status == 200
        connected = {s.labels["plugin"]: s.value
                     for family in text_string_to_metric_families(body.decode())
                     for s in family.samples if s.name == "ekuiper_plugin_control_connected"}
        assert connected == {"a": 1, "b": 0}
        status, body = _get(f"http://127.0.0.1:{port}/health")
        document = json.loads(body)
        assert status == 503 and document["plugins"]["a"]["healthy"] is True
        assert document["plugins"]["b"]["healthy"] is False
    finally:
        server.terminate()
        server.wait(10)


def test_bad_listen_value_is_explained(directory: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """--listen without a port exits 1 saying the form it takes."""
    assert main(["metrics", "--dir", str(directory), "--listen", "localhost"]) == 1
    assert "must be [HOST]:PORT" in capsys.readouterr().err


def test_missing_directory_is_explained(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """No --dir and no variable exits 1 naming the variable."""
    monkeypatch.delenv("EKUIPER_PLUGIN_METRICS_DIR", raising=False)
    assert main(["metrics"]) == 1
    assert "EKUIPER_PLUGIN_METRICS_DIR" in capsys.readouterr().err


def test_a_silent_client_is_dropped(directory: Path) -> None:
    """A client that connects and sends nothing is disconnected after the client timeout."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ekuiper._cli", "metrics", "--dir",
                               str(directory), "--listen", f"127.0.0.1:{port}"],
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                silent = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "the aggregator never listened"
                time.sleep(0.1)
        with silent:
            silent.settimeout(METRICS_CLIENT_TIMEOUT_S + 5)
            began = time.monotonic()
            assert silent.recv(1) == b""
            assert time.monotonic() - began < METRICS_CLIENT_TIMEOUT_S + 3
    finally:
        server.terminate()
        server.wait(10)
