"""The metrics exporter: its socket's lifecycle, its HTTP answers, its textfile."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from ekuiper import PluginConfig
from ekuiper._cli.health import HealthUnavailable, fetch
from ekuiper._metrics import MetricsSettings, SymbolStats
from ekuiper._runtime.exporter import MetricsExporter, start_exporter
from ekuiper._runtime.plugin import PluginRuntime
from ekuiper.errors import MetricsError
from ekuiper.testing import MemoryTransport
from tests.conftest import loaded_after

LOG = logging.getLogger("test-exporter")


@pytest.fixture
def directory() -> Iterator[Path]:
    # Short: a unix socket path holds at most 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="ekx-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def exporter(directory: Path, interval: float = 5.0) -> MetricsExporter:
    runtime = PluginRuntime(PluginConfig("p"), MemoryTransport())
    return MetricsExporter(runtime, MetricsSettings(str(directory), interval_s=interval), LOG)


def test_start_serves_a_0660_socket_and_stop_removes_it(directory: Path) -> None:
    """start binds p.sock (mode 0660) and writes p.prom; stop removes both."""
    ex = exporter(directory)
    ex.start()
    try:
        mode = os.lstat(directory / "p.sock").st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
        assert fetch(directory / "p.sock", "/metrics")[0] == 200
    finally:
        ex.stop()
    assert os.listdir(directory) == []


def test_a_stale_socket_is_replaced(directory: Path) -> None:
    """A socket file nobody answers on (a killed plugin's) is replaced."""
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(directory / "p.sock"))
    stale.close()
    ex = exporter(directory)
    ex.start()
    try:
        assert fetch(directory / "p.sock", "/ready")[0] == 503  # served by the new one
    finally:
        ex.stop()


def test_a_file_that_is_not_a_socket_is_refused(directory: Path) -> None:
    """A regular file at the socket's path is refused and left as it is."""
    (directory / "p.sock").write_text("mine")
    with pytest.raises(MetricsError, match="exists and is not a socket"):
        exporter(directory).start()
    assert (directory / "p.sock").read_text() == "mine"


def test_a_live_socket_is_refused(directory: Path) -> None:
    """A socket another live process serves is not taken over."""
    first = exporter(directory)
    first.start()
    try:
        with pytest.raises(MetricsError, match="served by a running process"):
            exporter(directory).start()
        assert fetch(directory / "p.sock", "/metrics")[0] == 200
    finally:
        first.stop()


def test_a_too_long_path_is_refused(directory: Path) -> None:
    """A directory whose socket path exceeds 107 bytes is refused, naming the limit."""
    deep = directory / ("d" * 110)
    with pytest.raises(MetricsError, match="longer than the 107 bytes"):
        exporter(deep).start()


def test_stop_leaves_a_socket_that_is_no_longer_its_own(directory: Path) -> None:
    """stop removes the socket only if it is still the one this exporter bound."""
    ex = exporter(directory)
    ex.start()
    (directory / "p.sock").unlink()
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(directory / "p.sock"))
    try:
        ex.stop()
        assert (directory / "p.sock").exists()
    finally:
        other.close()


@pytest.mark.parametrize(("line", "status"), [
    (b"GET /metrics HTTP/1.1", 200), (b"GET /health HTTP/1.0", 503),
    (b"GET /ready HTTP/1.1", 503), (b"GET /x HTTP/1.1", 404),
    (b"POST /metrics HTTP/1.1", 405), (b"nonsense", 400), (b"", 400),
])
def test_respond_answers_each_request_line(directory: Path, line: bytes, status: int) -> None:
    """Each request line gets its status (health is 503: no control channel here)."""
    reply = exporter(directory).respond(line)
    assert reply.startswith(f"HTTP/1.1 {status} ".encode())


def test_head_has_no_body(directory: Path) -> None:
    """HEAD answers the headers alone."""
    reply = exporter(directory).respond(b"HEAD /metrics HTTP/1.1")
    assert reply.endswith(b"\r\n\r\n") and b"# HELP" not in reply


def test_textfile_parses_and_no_temp_file_is_left(directory: Path) -> None:
    """The .prom file is complete Prometheus text, written through a temp file."""
    ex = exporter(directory, interval=0.1)
    ex.start()
    try:
        text = (directory / "p.prom").read_text()
        names = {f.name for f in text_string_to_metric_families(text)}
        assert "ekuiper_plugin_control_connected" in names
        assert sorted(os.listdir(directory)) == ["p.prom", "p.sock"]
    finally:
        ex.stop()


def test_start_exporter_with_a_relative_directory_is_off(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A relative directory logs why and leaves metrics off; the plugin runs on."""
    monkeypatch.setenv("EKUIPER_PLUGIN_METRICS_DIR", "relative/dir")
    runtime = PluginRuntime(PluginConfig("p"), MemoryTransport())
    with caplog.at_level(logging.ERROR):
        assert start_exporter(runtime, LOG) is None
    assert "must be an absolute path" in caplog.text and not runtime.metrics_on


def test_start_exporter_on_a_file_is_off(monkeypatch: pytest.MonkeyPatch, directory: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """A directory path that is a file logs why and leaves metrics off."""
    (directory / "file").write_text("")
    monkeypatch.setenv("EKUIPER_PLUGIN_METRICS_DIR", str(directory / "file"))
    runtime = PluginRuntime(PluginConfig("p"), MemoryTransport())
    with caplog.at_level(logging.ERROR):
        assert start_exporter(runtime, LOG) is None
    assert "metrics off" in caplog.text and not runtime.metrics_on


def test_start_exporter_turns_metrics_on(monkeypatch: pytest.MonkeyPatch,
                                         directory: Path) -> None:
    """A usable directory turns metrics on for the runtime."""
    monkeypatch.setenv("EKUIPER_PLUGIN_METRICS_DIR", str(directory))
    runtime = PluginRuntime(PluginConfig("p"), MemoryTransport())
    ex = start_exporter(runtime, LOG)
    assert ex is not None and runtime.metrics_on
    ex.stop()


def test_fetch_on_a_stale_socket_says_stale(directory: Path) -> None:
    """The client calls a socket nobody answers on stale."""
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(directory / "p.sock"))
    stale.close()
    with pytest.raises(HealthUnavailable, match="is stale"):
        fetch(directory / "p.sock", "/health")


def test_plugin_without_metrics_imports_none_of_them() -> None:
    """The runtime modules a plugin loads import no metrics module when metrics are off."""
    code = "import ekuiper; from ekuiper._runtime import lifecycle, plugin, source, sink, function"
    watched = ("ekuiper._metrics", "ekuiper._runtime.instrument", "ekuiper._runtime.exporter",
               "prometheus_client")
    assert loaded_after(code, watched) == []


@given(st.binary(max_size=300))
def test_any_request_line_gets_an_http_answer(line: bytes) -> None:
    """Whatever a client sends as its request line, the answer is a whole HTTP reply."""
    reply = _FUZZED.respond(line)
    assert reply.startswith(b"HTTP/1.1 ") and b"\r\n\r\n" in reply


_FUZZED = MetricsExporter(PluginRuntime(PluginConfig("p"), MemoryTransport()),
                          MetricsSettings("/nonexistent"), LOG)


def _function(rules: dict[str, SymbolStats]) -> Any:
    """A function runtime as entries() reads it: its thread alive, per-rule counters."""
    alive = types.SimpleNamespace(is_alive=lambda: True)
    return types.SimpleNamespace(stats=rules[""], thread=alive, stopping=False,
                                 control=types.SimpleNamespace(noun="function"),
                                 metrics_rules=rules)


def test_function_called_steadily_stays_running(directory: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A function a rule calls every second stays running well past the lost threshold."""
    labels = {"plugin": "p", "kind": "function", "symbol": "f", "rule": ""}
    base = SymbolStats(labels, 0.0)
    rule = SymbolStats({**labels, "rule": "r1"}, 0.0)
    ex = MetricsExporter(PluginRuntime(PluginConfig("p"), MemoryTransport()),
                         MetricsSettings(str(directory), blocked_s=1.0), LOG)
    monkeypatch.setattr(ex.runtime, "running", lambda: [_function({"": base, "r1": rule})])
    for second in range(1, 20):
        base.heard += 1  # what each request does (instrument.counted_serve)
        rule.calls += 1
        rule.rows += 1
        ex.sample(float(second))
    assert [h.state for _, h in ex.entries(20.0)] == ["running"]


def test_sink_collect_after_a_long_idle_spell_is_not_stuck(
        directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A collect() that began after a long idle spell is running at once, not stuck."""
    sink = SymbolStats({"plugin": "p", "kind": "sink", "symbol": "s"}, 0.0)
    sink.rows = 1
    sink.sample(0.0)
    sink.last_taken = 0
    runtime = types.SimpleNamespace(stats=sink, thread=types.SimpleNamespace(is_alive=lambda: True),
                                    stopping=False, control=types.SimpleNamespace(noun="sink"),
                                    delivered=1)
    ex = exporter(directory)
    monkeypatch.setattr(ex.runtime, "running", lambda: [runtime])
    ex.sample(1000.0)
    sink.last_taken = 1  # collect() of the second message begins; no tick has seen it
    assert [h.state for _, h in ex.entries(1000.5)] == ["running"]


def test_a_trickling_client_does_not_hold_the_exporter(directory: Path) -> None:
    """A client sending a byte at a time is dropped after the request deadline."""
    ex = exporter(directory)
    ex.start()
    slow = socket.socket(socket.AF_UNIX)
    try:
        slow.connect(str(directory / "p.sock"))
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(0.3):
                try:
                    slow.send(b"G")
                except OSError:
                    return

        threading.Thread(target=trickle, daemon=True).start()
        time.sleep(0.2)
        assert fetch(directory / "p.sock", "/ready", timeout=4.0)[0] == 503
        stop.set()
    finally:
        slow.close()
        ex.stop()


def test_a_request_that_raises_does_not_end_the_thread(
        directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception while answering one request is logged and the next is answered."""
    ex = exporter(directory)
    ex.start()
    try:
        answer = ex.respond
        calls = []

        def once_broken(line: bytes) -> bytes:
            calls.append(line)
            if len(calls) == 1:
                raise RuntimeError("boom")
            return answer(line)

        monkeypatch.setattr(ex, "respond", once_broken)
        with pytest.raises(HealthUnavailable):
            fetch(directory / "p.sock", "/ready")
        assert fetch(directory / "p.sock", "/ready")[0] == 503
    finally:
        ex.stop()


def test_the_thread_removes_socket_and_textfile_on_its_way_out(directory: Path) -> None:
    """The exporter's thread closes and removes its socket and textfile when it ends."""
    ex = exporter(directory)
    ex.start()
    ex._stop.set()
    assert ex._thread is not None
    ex._thread.join(5)
    assert os.listdir(directory) == []


def test_no_textfile_is_written_after_stop(directory: Path) -> None:
    """A write that runs after stop began leaves no textfile (stop removed it)."""
    ex = exporter(directory)
    ex._stop.set()
    ex._write_textfile()
    assert os.listdir(directory) == []


def test_a_socket_whose_process_is_going_is_replaced(directory: Path) -> None:
    """A socket still served for a moment (a SIGKILLed plugin) is replaced once it goes."""
    old = socket.socket(socket.AF_UNIX)
    old.bind(str(directory / "p.sock"))
    old.listen(1)
    threading.Timer(0.5, old.close).start()
    ex = exporter(directory)
    ex.start()
    try:
        assert fetch(directory / "p.sock", "/ready")[0] == 503
    finally:
        ex.stop()
