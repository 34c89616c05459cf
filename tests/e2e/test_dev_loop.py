"""`ekuiper-plugin dev` against a real kuiperd: save a change, a running rule computes
with the new code within seconds; a broken save is not sent; Ctrl-C leaves nothing
running but the plugin's newest version."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import PYSAM, TESTPLUG, BootKuiperd
from tests.e2e.kuiper import Kuiperd
from tests.e2e.scenarios import uid
from tests.protocol.events import wait_for

# Generous for a loaded machine; a reinstall takes about a second here.
PICKUP_S = 30.0


def _outputs(events: Path, rule: str) -> list[str]:
    """Columns ``t`` and ``u`` of the rows testplug's recorder got from ``rule``, in order,
    as ``t/u``."""
    if not events.exists():
        return []
    found = []
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "collect" and event.get("rule") == rule:
            found.extend(f"{row.get('t')}/{row.get('u')}" for row in json.loads(event["data"]))
    return found


def _own_processes(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def _scaffold(tmp_path: Path) -> Path:
    created = subprocess.run([sys.executable, "-m", "ekuiper._cli", "new", "devplug",
                              "--function", "tag", "--function", "tag2",
                              "--dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    folder = tmp_path / "devplug"
    symbols = folder / "symbols.py"
    symbols.write_text(symbols.read_text().replace("return str(args[0]).upper()",
                                                   "return 'v1-' + str(args[0])"))
    return folder


def _start_rule(kuiperd: Kuiperd) -> tuple[str, str]:
    stream, rule = uid("s_"), uid("r_")
    kuiperd.create_stream(stream, "pyjson", uid("ds-"))
    resp = kuiperd.create_rule(rule, f"SELECT tag(name) AS t, tag2(name) AS u FROM {stream}",
                               [{"recorder": {}}])
    assert resp.status in (200, 201), resp
    return stream, rule


def test_dev_reinstalls_on_save_and_the_running_rule_uses_the_new_code(
        boot_kuiperd: BootKuiperd, tmp_path: Path) -> None:
    """A saved change reaches a running rule's functions within seconds, no rule restart.

    Two functions: eKuiper replays the start of only one into the new process; the SDK
    serves the other because eKuiper has its channel open.
    """
    out = tmp_path / "out"
    out.mkdir()
    kuiperd = boot_kuiperd(drop_in=(PYSAM, TESTPLUG), env={"TESTPLUG_OUT": str(out)})
    folder = _scaffold(tmp_path)
    symbols = folder / "symbols.py"
    log = tmp_path / "dev.log"
    marker = f"ekuiper._cli dev {folder}"
    with open(log, "wb") as sink:
        dev = subprocess.Popen([sys.executable, "-m", "ekuiper._cli", "dev", str(folder),
                                "--server", kuiperd.base_url, "--interval", "0.2"],
                               stdout=sink, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    events = out / "events.jsonl"
    try:
        wait_for(lambda: "watching" in log.read_text(), timeout=60, what="first install")
        assert "installed devplug in" in log.read_text(), log.read_text()
        stream, rule = _start_rule(kuiperd)
        wait_for(lambda: "v1-pyjson/v1-pyjson" in _outputs(events, rule), timeout=30,
                 what="v1 rows")
        [old_pid] = kuiperd.plugin_pids("devplug")

        # A save that does not even compile is reported and not sent.
        good = symbols.read_text()
        symbols.write_text(good + "\ndef broken(:\n")
        wait_for(lambda: "not sent" in log.read_text(), timeout=PICKUP_S, what="refusal")
        assert "SyntaxError" in log.read_text()
        seen = len(_outputs(events, rule))
        wait_for(lambda: len(_outputs(events, rule)) > seen + 2, timeout=10,
                 what="rows after the refused save")
        assert set(_outputs(events, rule)[seen:]) == {"v1-pyjson/v1-pyjson"}
        assert kuiperd.plugin_pids("devplug") == [old_pid]

        saved = time.monotonic()
        symbols.write_text(good.replace("'v1-'", "'v2-'"))
        wait_for(lambda: "v2-pyjson/v2-pyjson" in _outputs(events, rule), timeout=PICKUP_S,
                 what="the rule's rows from the new code")
        took = time.monotonic() - saved
        print(f"save -> first row from the new code: {took:.1f} s")
        after = _outputs(events, rule)
        first_new = after.index("v2-pyjson/v2-pyjson")
        assert set(after[first_new:]) == {"v2-pyjson/v2-pyjson"}, after[first_new:]
        # The rule may compute with the new code before eKuiper answers the PUT.
        wait_for(lambda: "reinstalled devplug in" in log.read_text(), timeout=PICKUP_S,
                 what="dev's report")
        [new_pid] = kuiperd.plugin_pids("devplug")
        assert new_pid != old_pid
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(30)
        print(f"--- ekuiper-plugin dev output ---\n{log.read_text()}")
    text = log.read_text()
    assert code == 0, text
    assert f"devplug stays installed on {kuiperd.base_url}" in text
    assert _own_processes(marker) == [], "the dev process (or a child) is left running"
    assert kuiperd.plugin_pids("devplug") == [new_pid], "an old plugin process is left"
    assert kuiperd.get("/plugins/portables/devplug").status == 200
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
        assert kuiperd.plugin_pids("devplug")
    finally:
        dev.send_signal(signal.SIGTERM)
        code = dev.wait(30)
    assert code == 0, log.read_text()
    assert f"devplug: removed from {kuiperd.base_url}" in log.read_text()
    assert "devplug" not in {p["name"] for p in kuiperd.get("/plugins/portables").body}
    wait_for(lambda: not kuiperd.plugin_pids("devplug"), timeout=10, what="plugin exit")
