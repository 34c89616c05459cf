"""images/healthcheck.py: eKuiper's REST, and opted in, every plugin's own health."""

from __future__ import annotations

import http.server
import importlib.util
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ekuiper import PluginConfig
from ekuiper._metrics import MetricsSettings
from ekuiper._runtime.exporter import MetricsExporter
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper.testing import MemoryTransport
from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("healthcheck", REPO / "images" / "healthcheck.py")
assert _spec is not None and _spec.loader is not None
healthcheck: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(healthcheck)


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def rest() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def directory(short_dir: Path) -> Path:
    return short_dir


@pytest.fixture
def disconnected_plugin(directory: Path) -> Iterator[MetricsExporter]:
    """A plugin whose /health is 503: its control channel is not connected."""
    runtime = PluginRuntime(PluginConfig("sick"), MemoryTransport())
    exporter = MetricsExporter(runtime, MetricsSettings(str(directory)),
                               logging.getLogger("test"))
    exporter.start()
    yield exporter
    exporter.stop()


def test_rest_answering_is_healthy(rest: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without plugin checks, a REST root that answers is enough."""
    monkeypatch.delenv("EKUIPER_PLUGIN_METRICS_DIR", raising=False)
    assert healthcheck.main(["healthcheck.py", rest]) == 0


def test_rest_not_answering_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    """A REST root nobody answers on is unhealthy, saying which URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert healthcheck.main(["healthcheck.py", f"http://127.0.0.1:{port}/"]) == 1
    assert f"http://127.0.0.1:{port}/ does not answer" in capsys.readouterr().err


def test_unhealthy_plugin_counts_when_opted_in(
        rest: str, directory: Path, disconnected_plugin: MetricsExporter,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """With EKUIPER_HEALTHCHECK_PLUGINS=1 an unhealthy plugin fails the check, named."""
    monkeypatch.setenv("EKUIPER_PLUGIN_METRICS_DIR", str(directory))
    monkeypatch.setenv("EKUIPER_HEALTHCHECK_PLUGINS", "1")
    assert healthcheck.main(["healthcheck.py", rest]) == 1
    assert "plugin sick is unhealthy" in capsys.readouterr().err


def test_unhealthy_plugin_is_ignored_unless_opted_in(
        rest: str, directory: Path, disconnected_plugin: MetricsExporter,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without EKUIPER_HEALTHCHECK_PLUGINS=1 plugins do not count."""
    monkeypatch.setenv("EKUIPER_PLUGIN_METRICS_DIR", str(directory))
    monkeypatch.delenv("EKUIPER_HEALTHCHECK_PLUGINS", raising=False)
    assert healthcheck.main(["healthcheck.py", rest]) == 0


def test_stale_socket_is_skipped(rest: str, directory: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A socket left by a killed plugin does not fail the check."""
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(directory / "gone.sock"))
    stale.close()
    monkeypatch.setenv("EKUIPER_PLUGIN_METRICS_DIR", str(directory))
    monkeypatch.setenv("EKUIPER_HEALTHCHECK_PLUGINS", "1")
    assert healthcheck.main(["healthcheck.py", rest]) == 0


def test_bad_opt_in_value_is_reported(rest: str, directory: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A value other than 0/1 is named, and eKuiper alone is checked."""
    monkeypatch.setenv("EKUIPER_PLUGIN_METRICS_DIR", str(directory))
    monkeypatch.setenv("EKUIPER_HEALTHCHECK_PLUGINS", "yes please")
    assert healthcheck.main(["healthcheck.py", rest]) == 0
    assert "must be 0 or 1" in capsys.readouterr().err


def _frozen(path: Path) -> socket.socket:
    """A socket that takes connections and never answers (a frozen plugin)."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(8)
    return listener


def test_frozen_plugin_fails_the_check(directory: Path) -> None:
    """A plugin whose socket takes the connection but never answers is a failure."""
    with _frozen(directory / "frozen.sock"):
        failures = healthcheck.plugin_failures(directory, time.monotonic() + 0.5)
    assert len(failures) == 1 and "plugin frozen is unhealthy" in failures[0]


def test_all_plugin_checks_share_one_deadline(directory: Path) -> None:
    """Several frozen plugins together take no longer than the one deadline."""
    listeners = [_frozen(directory / f"f{i}.sock") for i in range(3)]
    began = time.monotonic()
    try:
        failures = healthcheck.plugin_failures(directory, began + 0.6)
    finally:
        for listener in listeners:
            listener.close()
    assert time.monotonic() - began < 1.2
    assert len(failures) == 3
