"""Process lifecycle: signals, parent death, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ekuiper.testing import ProtocolHost
from ekuiper.testing._host import PLUGIN_ARG
from tests.conftest import TEST_PLUGINS
from tests.protocol.events import events, wait_for


def test_sigterm_closes_every_symbol_and_exits_0(testplug: ProtocolHost, out_dir: Path) -> None:
    """SIGTERM closes each running source and sink once, then the process exits 0."""
    testplug.start_source("counter", rule="a")[1].rows(1)
    testplug.start_sink("recorder", rule="b")
    assert testplug.process is not None
    testplug.process.send_signal(signal.SIGTERM)
    assert testplug.process.wait(10) == 0
    closes = sorted((e["symbol"], e["rule"]) for e in events(out_dir, "close"))
    assert closes == [("counter", "a"), ("recorder", "b")]


def test_sigterm_during_a_start_still_closes_the_symbol(testplug: ProtocolHost,
                                                       out_dir: Path) -> None:
    """SIGTERM while a sink's configure() runs: the start is refused, and the process
    closes the sink that start made before exiting 0."""
    assert testplug.process is not None
    testplug.control.recv_timeout = 5000
    replies: list[object] = []

    def start() -> None:
        try:
            replies.append(testplug.start_sink("recorder", rule="late",
                                               config={"configure_wait": 1})[0])
        except Exception as exc:  # a lost reply fails the test below, not this thread
            replies.append(exc)

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    wait_for(lambda: events(out_dir, "configure"), what="configure() to begin")
    testplug.process.send_signal(signal.SIGTERM)
    assert testplug.process.wait(10) == 0
    starter.join(10)
    assert [(e["symbol"], e["rule"]) for e in events(out_dir, "close")] == [("recorder", "late")]
    assert replies == [b"cannot start sink 'recorder' (rule 'late', op 'op1', instance 0): "
                       b"the plugin is shutting down"]


def test_sigint_exits_0(testplug: ProtocolHost) -> None:
    """SIGINT (Ctrl-C) is an orderly stop too, not a KeyboardInterrupt traceback."""
    assert testplug.process is not None
    testplug.process.send_signal(signal.SIGINT)
    assert testplug.process.wait(10) == 0
    assert "Traceback" not in testplug.log()


def test_sigterm_while_idle_exits_promptly(testplug: ProtocolHost) -> None:
    """An idle plugin blocked on the control channel still reacts to SIGTERM at once."""
    assert testplug.process is not None
    started = time.monotonic()
    testplug.process.send_signal(signal.SIGTERM)
    testplug.process.wait(10)
    assert time.monotonic() - started < 2.0


_LAUNCHER = """
import subprocess, sys, time
p = subprocess.Popen([sys.executable, "-u", sys.argv[1], sys.argv[2]])
print(p.pid, flush=True)
time.sleep(600)
"""


def test_plugin_exits_within_2s_when_parent_dies(ipc_dir: str, out_dir: Path) -> None:
    """When the process that started the plugin is SIGKILLed, the plugin exits within 2 s."""
    host = ProtocolHost(ipc_dir, "testplug")
    import pynng
    host.control = pynng.Rep0(recv_timeout=20000)
    host.control.listen(f"ipc://{ipc_dir}/plugin_testplug.ipc")
    env = {**os.environ, "EKUIPER_IPC_DIR": ipc_dir, "TESTPLUG_OUT": str(out_dir)}
    launcher = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(TEST_PLUGINS / "testplug" / "testplug.py"),
         PLUGIN_ARG], env=env, stdout=subprocess.PIPE)
    try:
        assert launcher.stdout is not None
        plugin_pid = int(launcher.stdout.readline())
        assert host.control.recv() == b"handshake"
        host.start_source("counter", rule="orphan")[1].rows(1)
        launcher.kill()
        launcher.wait()
        killed = time.monotonic()
        wait_for(lambda: not _alive(plugin_pid), timeout=5, what="plugin exit")
        assert time.monotonic() - killed < 2.0
        assert [e["rule"] for e in events(out_dir, "close")] == ["orphan"]
    finally:
        launcher.kill()
        host.close()
        if _alive(plugin_pid):
            os.kill(plugin_pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_no_socket_files_left_after_stop(testplug: ProtocolHost, ipc_dir: str) -> None:
    """After a sink stops, the plugin's listening socket file is gone."""
    testplug.start_sink("recorder", rule="sock")
    assert Path(ipc_dir, "sock_op1_0.ipc").exists()
    testplug.stop("sink", "recorder", rule="sock")
    wait_for(lambda: not Path(ipc_dir, "sock_op1_0.ipc").exists(), timeout=3,
             what="socket file removal")


def test_no_symbol_threads_left_after_stop(testplug: ProtocolHost) -> None:
    """After stopping a source and a sink, the plugin logs no thread left running."""
    testplug.start_source("counter", rule="t")[1].rows(1)
    testplug.start_sink("recorder", rule="t")
    testplug.stop("source", "counter", rule="t")
    testplug.stop("sink", "recorder", rule="t")
    assert "left running" not in testplug.log()
    assert "did not return" not in testplug.log()


def test_log_level_env_var_silences_info(ipc_dir: str, out_dir: Path) -> None:
    """EKUIPER_PLUGIN_LOG_LEVEL=WARNING keeps the SDK's INFO lines out of the log."""
    host = ProtocolHost(ipc_dir, "testplug")
    host.launch(TEST_PLUGINS / "testplug" / "testplug.py",
                env={"TESTPLUG_OUT": str(out_dir), "EKUIPER_PLUGIN_LOG_LEVEL": "WARNING"})
    try:
        host.start_source("nosuch")
        host.start_source("counter")[1].rows(1)
        log = host.log()
        assert "ERROR [testplug] plugin 'testplug' has no source named 'nosuch'" in log
        assert "INFO" not in log
    finally:
        host.close()


def test_symbol_log_level_config_enables_debug(testplug: ProtocolHost) -> None:
    """A symbol's logLevel config property lowers the level for that symbol only."""
    _, sink = testplug.start_sink("recorder", rule="dbg", config={"logLevel": "debug",
                                                                  "manual_ack": True})
    assert sink is not None
    sink.send(b'{"v":1}')
    wait_for(lambda: "ack ignored" in testplug.log(), what="debug line")
    assert "DEBUG [testplug/recorder rule=dbg op=op1/0] ack ignored" in testplug.log()
