"""`ekuiper-plugin status`: the plugin's own health beside eKuiper's view."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ekuiper import PluginConfig
from ekuiper._cli import main
from ekuiper._metrics import MetricsSettings
from ekuiper._runtime.exporter import MetricsExporter
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper.testing import MemoryTransport
from tests.unit.cli.conftest import FakeServer


@pytest.fixture
def running(fake: FakeServer) -> FakeServer:
    """eKuiper's REST for a plugin 'p' that eKuiper reports running."""
    fake.routes[("GET", "/plugins/portables")] = (200, '[{"name": "p", "version": "v1", '
                                                       '"sources": ["s"]}]')
    fake.routes[("GET", "/plugins/portables/p/status")] = (200, '{"status": "running"}')
    return fake


@pytest.fixture
def directory(short_dir: Path) -> Path:
    return short_dir


@pytest.fixture
def exporter(directory: Path) -> Iterator[PluginRuntime]:
    """Plugin 'p' serving its health in ``directory``; connected unless a test says not."""
    runtime = PluginRuntime(PluginConfig("p"), MemoryTransport())
    runtime.connected = True
    served = MetricsExporter(runtime, MetricsSettings(str(directory)), logging.getLogger("t"))
    served.start()
    yield runtime
    served.stop()


def test_without_a_metrics_dir_says_not_enabled(running: FakeServer,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """No --metrics-dir and no variable: eKuiper's view, and how to turn health on."""
    monkeypatch.delenv("EKUIPER_PLUGIN_METRICS_DIR", raising=False)
    assert main(["status", "p", "--server", running.url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("p v1: running\n")
    assert "plugin health: not enabled (set EKUIPER_PLUGIN_METRICS_DIR" in out


def test_healthy_plugin_is_shown_beside_ekuipers_view(
        running: FakeServer, directory: Path, exporter: PluginRuntime,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin answering healthy is shown with its pid and control channel; exit 0."""
    assert main(["status", "p", "--server", running.url, "--metrics-dir",
                 str(directory)]) == 0
    assert "plugin health: healthy, pid " in capsys.readouterr().out


def test_unhealthy_plugin_exits_1(running: FakeServer, directory: Path,
                                  exporter: PluginRuntime,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """eKuiper says running but the plugin's control channel is down: exit 1, UNHEALTHY."""
    exporter.connected = False
    assert main(["status", "p", "--server", running.url, "--metrics-dir",
                 str(directory)]) == 1
    assert "plugin health: UNHEALTHY" in capsys.readouterr().out


def test_no_socket_is_unavailable(running: FakeServer, directory: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A metrics dir without the plugin's socket says so; eKuiper's view still decides."""
    assert main(["status", "p", "--server", running.url, "--metrics-dir",
                 str(directory)]) == 0
    assert f"plugin health: unavailable: no socket {directory / 'p.sock'}" in \
        capsys.readouterr().out
