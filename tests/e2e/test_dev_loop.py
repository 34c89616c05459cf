"""`ekuiper-plugin dev` against a real kuiperd: save a change, a running rule computes
with the new code within seconds; a broken save is not sent; Ctrl-C leaves nothing
running but the plugin's newest version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.dap import DapClient, free_port, need_debugpy
from tests.e2e.conftest import V1_VERSION, BootKuiperd
from tests.e2e.kuiper import Kuiperd, live_pids
from tests.e2e.scenarios import uid
from tests.protocol.events import json_lines, wait_for

# Generous for a loaded machine; a reinstall takes about a second here.
PICKUP_S = 30.0


def _outputs(out: Path) -> list[str]:
    """Columns ``t`` and ``u`` of the rows the plugin's own sink wrote, as ``t/u``."""
    if not out.exists():
        return []
    rows = json_lines(out.read_text())
    return [f"{row.get('t')}/{row.get('u')}" for row in rows]


# Names of its own: eKuiper's socket files are fixed paths in /tmp, shared by every
# kuiperd on the machine.
SYMBOLS = '''
import json, threading

from ekuiper import Function, Sink, Source


class DlRowsSource(Source):
    def configure(self, datasource, conf):
        self.stopped = threading.Event()

    def open(self, ctx):
        while not self.stopped.wait(0.1):
            ctx.emit({"name": "row"})

    def close(self, ctx):
        self.stopped.set()


class DlOutSink(Sink):
    decode_rows = True

    def configure(self, conf):
        self.path = conf["path"]

    def collect(self, ctx, data):
        with open(self.path, "a") as out:
            out.writelines(json.dumps(row) + "\\n" for row in data)


class DlTagFunction(Function):
    def exec(self, args, ctx):
        return "v1-" + str(args[0])


class DlTag2Function(DlTagFunction):
    pass
'''


def _scaffold(tmp_path: Path) -> Path:
    created = subprocess.run([sys.executable, "-m", "ekuiper._cli", "new", "devloop",
                              "--source", "dl_rows", "--sink", "dl_out", "--function",
                              "dl_tag", "--function", "dl_tag2", "--dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    folder = tmp_path / "devloop"
    (folder / "symbols.py").write_text(SYMBOLS)
    return folder


def _start_rule(kuiperd: Kuiperd, out: Path) -> tuple[str, str]:
    stream, rule = uid("s_"), uid("r_")
    kuiperd.create_stream(stream, "dl_rows", "d")
    resp = kuiperd.create_rule(
        rule, f"SELECT dl_tag(name) AS t, dl_tag2(name) AS u FROM {stream}",
        [{"dl_out": {"path": str(out)}}])
    assert resp.status in (200, 201), resp
    return stream, rule


def test_dev_reinstalls_on_save_and_the_running_rule_uses_the_new_code(
        boot_kuiperd: BootKuiperd, tmp_path: Path) -> None:
    """A saved change reaches a running rule within seconds, with no rule restart.

    The rule reads the plugin's source, calls two of its functions and writes through its
    sink: eKuiper replays the source, the sink and one function start into the new
    process; the SDK serves the other function because eKuiper has its channel open.
    """
    kuiperd = boot_kuiperd()
    folder = _scaffold(tmp_path)
    symbols = folder / "symbols.py"
    log = tmp_path / "dev.log"
    marker = f"ekuiper._cli dev {folder}"
    with open(log, "wb") as sink:
        dev = subprocess.Popen([sys.executable, "-m", "ekuiper._cli", "dev", str(folder),
                                "--server", kuiperd.base_url, "--interval", "0.2"],
                               stdout=sink, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out = tmp_path / "rows.jsonl"
    try:
        wait_for(lambda: "watching" in log.read_text(), timeout=60, what="first install")
        assert "installed devloop in" in log.read_text(), log.read_text()
        stream, rule = _start_rule(kuiperd, out)
        wait_for(lambda: "v1-row/v1-row" in _outputs(out), timeout=30,
                 what="v1 rows")
        [old_pid] = kuiperd.plugin_pids("devloop")

        # A save that does not even compile is reported and not sent.
        good = symbols.read_text()
        symbols.write_text(good + "\ndef broken(:\n")
        wait_for(lambda: "not sent" in log.read_text(), timeout=PICKUP_S, what="refusal")
        assert "SyntaxError" in log.read_text()
        seen = len(_outputs(out))
        wait_for(lambda: len(_outputs(out)) > seen + 2, timeout=10,
                 what="rows after the refused save")
        assert set(_outputs(out)[seen:]) == {"v1-row/v1-row"}
        assert kuiperd.plugin_pids("devloop") == [old_pid]

        saved = time.monotonic()
        symbols.write_text(good.replace('"v1-"', '"v2-"'))
        wait_for(lambda: "v2-row/v2-row" in _outputs(out), timeout=PICKUP_S,
                 what="the rule's rows from the new code")
        took = time.monotonic() - saved
        print(f"save -> first row from the new code: {took:.1f} s")
        after = _outputs(out)
        first_new = after.index("v2-row/v2-row")
        assert set(after[first_new:]) == {"v2-row/v2-row"}, after[first_new:]
        # The rule may compute with the new code before eKuiper answers the PUT.
        wait_for(lambda: "reinstalled devloop in" in log.read_text(), timeout=PICKUP_S,
                 what="dev's report")
        [new_pid] = kuiperd.plugin_pids("devloop")
        assert new_pid != old_pid
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(30)
        print(f"--- ekuiper-plugin dev output ---\n{log.read_text()}")
    text = log.read_text()
    assert code == 0, text
    assert f"devloop stays installed on {kuiperd.base_url}" in text
    assert live_pids(marker) == [], "the dev process (or a child) is left running"
    assert kuiperd.plugin_pids("devloop") == [new_pid], "an old plugin process is left"
    assert kuiperd.get("/plugins/portables/devloop").status == 200
    assert kuiperd.delete(f"/rules/{rule}").status == 200
    assert kuiperd.delete(f"/streams/{stream}").status == 200


def test_dev_removes_the_plugin_on_exit_when_asked(boot_kuiperd: BootKuiperd,
                                                   tmp_path: Path) -> None:
    """--remove-on-exit uninstalls on Ctrl-C; no plugin process is left."""
    kuiperd = boot_kuiperd()
    folder = _scaffold(tmp_path)
    log = tmp_path / "dev.log"
    with open(log, "wb") as sink:
        dev = subprocess.Popen([sys.executable, "-m", "ekuiper._cli", "dev", str(folder),
                                "--server", kuiperd.base_url, "--remove-on-exit"],
                               stdout=sink, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: "watching" in log.read_text(), timeout=60, what="first install")
        assert kuiperd.plugin_pids("devloop")
    finally:
        dev.send_signal(signal.SIGTERM)
        code = dev.wait(30)
    assert code == 0, log.read_text()
    assert f"devloop: removed from {kuiperd.base_url}" in log.read_text()
    assert "devloop" not in {p["name"] for p in kuiperd.get("/plugins/portables").body}
    wait_for(lambda: not kuiperd.plugin_pids("devloop"), timeout=10, what="plugin exit")


def test_plugin_started_by_kuiperd_waits_for_a_debugger(boot_kuiperd: BootKuiperd,
                                                        tmp_path: Path) -> None:
    """With EKUIPER_PLUGIN_DEBUG on kuiperd, the plugin it starts connects only after a
    real debugpy client attached; the plugin then serves a rule."""
    need_debugpy()
    port = free_port()
    kuiperd = boot_kuiperd(env={"EKUIPER_PLUGIN_DEBUG": str(port),
                                "EKUIPER_PLUGIN_DEBUG_WAIT": "40"})
    folder = _scaffold(tmp_path)
    installed: list[subprocess.CompletedProcess[str]] = []
    # eKuiper 2.x starts the process at install and waits for its handshake in the
    # install request: it returns once the debugger has attached.
    installer = threading.Thread(target=lambda: installed.append(subprocess.run(
        [sys.executable, "-m", "ekuiper._cli", "install", str(folder),
         "--server", kuiperd.base_url], capture_output=True, text=True, timeout=120)))
    installer.start()
    client = DapClient(port, timeout=60)
    try:
        time.sleep(1.0)
        assert not installed, "the install finished before a debugger attached"
        assert "waiting up to 40 s for a debugger" in kuiperd.log()
        client.attach()
        installer.join(60)
        assert installed and installed[0].returncode == 0, installed
        assert "devloop: running" in installed[0].stdout
        assert f"debugger attached on 127.0.0.1:{port}" in kuiperd.log()
        out = tmp_path / "rows.jsonl"
        stream, rule = _start_rule(kuiperd, out)
        wait_for(lambda: "v1-row/v1-row" in _outputs(out), timeout=30, what="rows")
    finally:
        client.close()
        installer.join(60)
    assert kuiperd.delete(f"/rules/{rule}").status == 200
    assert kuiperd.delete(f"/streams/{stream}").status == 200


def test_dev_on_1x_says_running_rules_need_a_kuiperd_restart(boot_kuiperd: BootKuiperd,
                                                             tmp_path: Path) -> None:
    """eKuiper 1.14 does not start the new version for running rules; dev says so."""
    kuiperd = boot_kuiperd(version=V1_VERSION)
    folder = _scaffold(tmp_path)
    log = tmp_path / "dev.log"
    with open(log, "wb") as sink:
        dev = subprocess.Popen([sys.executable, "-m", "ekuiper._cli", "dev", str(folder),
                                "--server", kuiperd.base_url, "--interval", "0.2"],
                               stdout=sink, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: "watching" in log.read_text(), timeout=60, what="first install")
        assert "devloop: installed (this eKuiper starts plugins on first use)" in \
            log.read_text()
        symbols = folder / "symbols.py"
        symbols.write_text(symbols.read_text().replace('"v1-"', '"v2-"'))
        wait_for(lambda: "restart kuiperd to run the new code" in log.read_text(),
                 timeout=PICKUP_S, what="the 1.x note")
        assert "reinstalled devloop in" in log.read_text()
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(30)
    assert code == 0, log.read_text()
