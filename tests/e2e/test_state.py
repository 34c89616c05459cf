"""ctx.put_state against a real kuiperd: counts go on after the plugin or kuiperd is
killed and after a reinstall, per rule, in eKuiper's data folder; deleting a rule leaves
its state until `ekuiper-plugin state --prune` drops it.

The plugin (tests/plugins/stateplug) emits ``n`` from its kept count and keeps the next
one after each emit; ``calls()`` counts its calls per rule; the ``jot`` sink writes
each row it gets to a file at once. The tests read the state file while the plugin is
dead and check that the new process starts exactly from what it holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ekuiper._state import SqliteStore
from tests.conftest import TEST_PLUGINS
from tests.e2e.conftest import BootKuiperd
from tests.e2e.kuiper import Kuiperd, make_plugin_zip
from tests.e2e.scenarios import start_rules_lost_at_boot, stop_rule, uid
from tests.protocol.events import json_lines, wait_for

STATEPLUG = TEST_PLUGINS / "stateplug"


@pytest.fixture
def kuiperd(boot_kuiperd: BootKuiperd, tmp_path: Path) -> Kuiperd:
    return boot_kuiperd(drop_in=(STATEPLUG,), env={"STATEPLUG_OUT": str(tmp_path)})


def _state_file(kuiperd: Kuiperd) -> Path:
    return kuiperd.home / "data" / "plugin_state" / "stateplug" / "state.sqlite3"


def _kept(kuiperd: Kuiperd) -> dict[tuple[str, str, str], Any]:
    """(rule, symbol, key) -> value, read from the state file by another process."""
    store = SqliteStore(_state_file(kuiperd), create=False)
    try:
        return {(e.scope.rule, e.scope.symbol, e.key): json.loads(e.value)
                for e in store.entries()}
    finally:
        store.close()


def _rows(out: Path, rule: str) -> list[dict[str, Any]]:
    path = out / f"{rule}.jsonl"
    if not path.exists():
        return []
    return json_lines(path.read_text())


def _rule(kuiperd: Kuiperd, select: str = "n, pid") -> str:
    stream, rule = uid("s_"), uid("r_")
    kuiperd.create_stream(stream, "tally", uid("ds-"))
    resp = kuiperd.create_rule(rule, f"SELECT {select} FROM {stream}", [{"jot": {}}])
    assert resp.status in (200, 201), resp
    return rule


def _pid(kuiperd: Kuiperd) -> int:
    return int(wait_for(lambda: kuiperd.plugin_pids("stateplug"), what="stateplug process")[0])


def _consecutive(values: list[int]) -> bool:
    return values == list(range(values[0], values[0] + len(values)))


def test_plugin_sigkill_count_goes_on_from_the_kept_value(kuiperd: Kuiperd,
                                                          tmp_path: Path) -> None:
    """SIGKILL of the plugin mid-rule: the restarted source emits from the value its state
    file held, and a second rule's state is its own."""
    rule = _rule(kuiperd)
    wait_for(lambda: len(_rows(tmp_path, rule)) >= 20, timeout=30, what="20 rows")
    old = _pid(kuiperd)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: old not in kuiperd.plugin_pids("stateplug"), what="plugin gone")
    kept = _kept(kuiperd)[(rule, "tally", "n")]
    delivered = [r["n"] for r in _rows(tmp_path, rule) if r["pid"] == old]
    assert delivered == list(range(len(delivered)))
    # put_state follows emit: killed between the two, the last row delivered is kept as
    # the next to send (it comes again); else the state is at most a row in flight ahead.
    assert delivered[-1] <= kept <= delivered[-1] + 2
    # eKuiper restarts a dead plugin on its next use: another rule is one.
    other = _rule(kuiperd)
    new = wait_for(lambda: (p := kuiperd.plugin_pids("stateplug")) and p[0] != old and p[0],
                   timeout=30, what="restarted plugin")
    wait_for(lambda: sum(r["pid"] == new for r in _rows(tmp_path, rule)) >= 10, timeout=30,
             what="rows from the restarted plugin")
    after = [r["n"] for r in _rows(tmp_path, rule) if r["pid"] == new]
    print(f"\nplugin SIGKILL: {len(delivered)} rows before, state held {kept}, "
          f"restarted at {after[0]}")
    assert after[0] == kept
    assert _consecutive(after)
    wait_for(lambda: len(_rows(tmp_path, other)) >= 3, timeout=30, what="rows of the other rule")
    assert [r["n"] for r in _rows(tmp_path, other)][:3] == [0, 1, 2]
    assert _state_file(kuiperd).is_file()
    stop_rule(kuiperd, rule)
    stop_rule(kuiperd, other)


def test_kuiperd_sigkill_source_function_and_sink_state_go_on(kuiperd: Kuiperd,
                                                              tmp_path: Path) -> None:
    """SIGKILL of kuiperd mid-rule, then a new kuiperd on the same home: the source, the
    per-rule function count and the sink count each go on from the kept value."""
    rule = _rule(kuiperd, "n, calls() AS c")
    other = _rule(kuiperd, "calls() AS c")
    wait_for(lambda: len(_rows(tmp_path, rule)) >= 20 and len(_rows(tmp_path, other)) >= 5,
             timeout=30, what="rows of both rules")
    pid = _pid(kuiperd)
    kuiperd.kill()
    wait_for(lambda: pid not in kuiperd.plugin_pids("stateplug"), timeout=5,
             what="plugin exit after kuiperd died")
    kept = _kept(kuiperd)
    before = _rows(tmp_path, rule)
    assert [r["n"] for r in before] == list(range(len(before)))
    assert [r["c"] for r in before] == list(range(1, len(before) + 1))
    assert [r["c"] for r in _rows(tmp_path, other)][:5] == [1, 2, 3, 4, 5]  # its own count
    assert kept[(rule, "jot", "seen")] == len(before)
    assert kept[(rule, "calls", "calls")] >= len(before)
    kuiperd.start()
    start_rules_lost_at_boot(kuiperd, rule, other)
    wait_for(lambda: len(_rows(tmp_path, rule)) >= len(before) + 10, timeout=60,
             what="rows after the restart")
    after = _rows(tmp_path, rule)[len(before):]
    print(f"\nkuiperd SIGKILL: {len(before)} rows before; kept n={kept[(rule, 'tally', 'n')]} "
          f"calls={kept[(rule, 'calls', 'calls')]}; restarted at n={after[0]['n']} "
          f"c={after[0]['c']}")
    assert after[0]["n"] == kept[(rule, "tally", "n")]
    assert after[0]["c"] == kept[(rule, "calls", "calls")] + 1
    assert after[0]["seen"] == len(before) + 1
    assert _consecutive([r["n"] for r in after])
    assert _consecutive([r["c"] for r in after])
    stop_rule(kuiperd, rule)
    stop_rule(kuiperd, other)


def test_reinstall_replaces_the_plugin_folder_and_keeps_the_state(kuiperd: Kuiperd,
                                                                 tmp_path: Path) -> None:
    """PUT /plugins/portables (a reinstall) replaces the plugin's folder, so state kept
    there would be gone; kept in eKuiper's data folder, the count goes on."""
    rule = _rule(kuiperd)
    wait_for(lambda: len(_rows(tmp_path, rule)) >= 10, timeout=30, what="10 rows")
    folder = kuiperd.home / "plugins" / "portable" / "stateplug"
    (folder / "marker").write_text("")
    old = _pid(kuiperd)
    archive = make_plugin_zip(STATEPLUG, tmp_path / "stateplug.zip")
    resp = kuiperd.put("/plugins/portables/stateplug",
                       {"name": "stateplug", "file": f"file://{archive}"})
    assert resp.status == 200, resp
    new = wait_for(lambda: (p := kuiperd.plugin_pids("stateplug")) and p[0] != old and p[0],
                   timeout=30, what="the reinstalled plugin's process")
    assert not (folder / "marker").exists()  # the folder was replaced
    wait_for(lambda: sum(r["pid"] == new for r in _rows(tmp_path, rule)) >= 5, timeout=30,
             what="rows from the reinstalled plugin")
    rows = _rows(tmp_path, rule)
    before = [r["n"] for r in rows if r["pid"] == old]
    after = [r["n"] for r in rows if r["pid"] == new]
    print(f"\nreinstall: {len(before)} rows before, restarted at {after[0]}")
    assert before == list(range(len(before)))
    # The old process is killed wherever it is: between emit and put the last row comes
    # again; after a put, a row in flight may be lost.
    assert before[-1] <= after[0] <= before[-1] + 2
    assert _consecutive(after)
    stop_rule(kuiperd, rule)


def test_rule_restart_keeps_state_and_delete_leaves_it_for_prune(kuiperd: Kuiperd,
                                                                 tmp_path: Path) -> None:
    """A rule stopped and started goes on counting; a deleted rule's state stays (eKuiper
    sends the same stop) until `ekuiper-plugin state --prune` drops it, and only it."""
    rule, other = _rule(kuiperd), _rule(kuiperd)
    wait_for(lambda: len(_rows(tmp_path, rule)) >= 5 and len(_rows(tmp_path, other)) >= 5,
             timeout=30, what="rows of both rules")
    stop_rule(kuiperd, rule)
    time.sleep(1.0)  # the source's open() loop ends after close()
    kept = _kept(kuiperd)[(rule, "tally", "n")]
    count = len(_rows(tmp_path, rule))
    assert kuiperd.post(f"/rules/{rule}/start", {}).status == 200
    wait_for(lambda: len(_rows(tmp_path, rule)) >= count + 3, timeout=30, what="rows again")
    restarted = [r["n"] for r in _rows(tmp_path, rule)[count:]]
    assert restarted[0] == kept
    assert _consecutive(restarted)

    assert kuiperd.delete(f"/rules/{rule}").status == 200
    assert (rule, "tally", "n") in _kept(kuiperd)
    folder = kuiperd.home / "plugins" / "portable" / "stateplug"
    env = {k: v for k, v in os.environ.items() if k != "EKUIPER_PLUGIN_STATE_DIR"}
    pruned = subprocess.run([sys.executable, "-m", "ekuiper._cli", "state", str(folder),
                             "--prune", "--server", kuiperd.base_url],
                            capture_output=True, text=True, timeout=60, env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert f"dropped 2 value(s) of rule {rule}" in pruned.stdout  # tally's n, jot's seen
    left = {k[0] for k in _kept(kuiperd)}
    assert left == {other}
    listed = subprocess.run([sys.executable, "-m", "ekuiper._cli", "state", str(folder),
                             "--rule", other], capture_output=True, text=True, timeout=60,
                            env=env)
    assert listed.returncode == 0, listed.stderr
    assert {line.split("\t")[1] for line in listed.stdout.splitlines()} == {"source tally",
                                                                           "sink jot"}
    stop_rule(kuiperd, other)
