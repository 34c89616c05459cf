"""State in a real plugin process: kept across a SIGTERM, the file closed on the way out."""

from __future__ import annotations

import signal
from pathlib import Path

from ekuiper._state import SqliteStore
from ekuiper.testing import PluginHost
from tests.conftest import TEST_PLUGINS


def test_sigterm_closes_the_state_file_and_keeps_every_value(tmp_path: Path) -> None:
    """After SIGTERM the plugin exits 0 with its state file closed (no WAL left) and the
    function's per-rule count in it."""
    host = PluginHost(TEST_PLUGINS / "stateplug", state_dir=tmp_path)
    try:
        reply, handle = host.host.start_function("calls")
        assert reply == b"ok"
        assert [handle.exec(rule="r1")["result"] for _ in range(3)] == [1, 2, 3]
        assert handle.exec(rule="r2")["result"] == 1
        process = host.host.process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        host.close()
    path = tmp_path / "stateplug" / "state.sqlite3"
    assert not path.with_name("state.sqlite3-wal").exists()
    store = SqliteStore(path, create=False)
    kept = {(e.scope.rule, e.key): e.value for e in store.entries()}
    store.close()
    assert kept == {("r1", "calls"): "3", ("r2", "calls"): "1"}
