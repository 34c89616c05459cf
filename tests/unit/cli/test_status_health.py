"""`ekuiper-plugin status`: the plugin's own health beside eKuiper's view."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ekuiper import PluginConfig
from ekuiper._cli import main
from ekuiper._cli.health import NotAnswering, aggregate_health, fetch
from ekuiper._metrics import MetricsSettings
from ekuiper._runtime.exporter import MetricsExporter
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper.testing import MemoryTransport
from tests.conftest import loaded_after
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


@pytest.fixture
def frozen(directory: Path) -> Iterator[Path]:
    """A plugin socket that takes connections and never answers (a frozen exporter)."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(directory / "frozen.sock"))
    listener.listen(8)
    yield directory / "frozen.sock"
    listener.close()


def test_a_socket_that_does_not_answer_in_time_is_not_answering(frozen: Path) -> None:
    """fetch on a live socket that never answers raises NotAnswering within its timeout."""
    began = time.monotonic()
    with pytest.raises(NotAnswering, match="no answer within"):
        fetch(frozen, "/health", timeout=0.3)
    assert time.monotonic() - began < 1.5


def test_aggregate_health_counts_a_frozen_plugin_unhealthy(directory: Path,
                                                           frozen: Path) -> None:
    """A plugin that does not answer in time makes the aggregate unhealthy."""
    document = aggregate_health(directory, timeout=0.3)
    assert document["healthy"] is False
    assert document["plugins"]["frozen"]["healthy"] is False


def test_aggregate_health_skips_a_stale_socket(directory: Path) -> None:
    """A socket whose process is gone is listed as unknown and does not count."""
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(directory / "gone.sock"))
    stale.close()
    document = aggregate_health(directory, timeout=0.3)
    assert document["healthy"] is True and document["plugins"]["gone"]["healthy"] is None


def test_importing_the_health_client_does_not_import_the_commands() -> None:
    """ekuiper._cli.health loads none of the command line (the healthcheck imports it)."""
    assert loaded_after("import ekuiper._cli.health",
                        ("ekuiper._cli.commands", "argparse")) == []


def test_status_of_a_frozen_plugin_exits_1(running: FakeServer, directory: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin whose socket takes the connection and never answers is UNHEALTHY."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(directory / "p.sock"))
    listener.listen(8)
    with listener:
        assert main(["status", "p", "--server", running.url, "--metrics-dir",
                     str(directory)]) == 1
    assert "plugin health: UNHEALTHY: " in capsys.readouterr().out
