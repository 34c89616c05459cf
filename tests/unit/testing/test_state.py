"""ekuiper.testing with state: pre-seeded, inspected after, carried between calls."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ekuiper import Context, Function, Sink, Source
from ekuiper._state import SqliteStore
from ekuiper.testing import PluginHost, call_function, run_sink, run_source
from tests.conftest import TEST_PLUGINS, loaded_after


class Tally(Source):
    def configure(self, datasource: str, conf: dict[str, Any]) -> None:
        self.stop = threading.Event()

    def open(self, ctx: Context) -> None:
        n = ctx.get_state("n", 0)
        while not self.stop.is_set():
            ctx.emit({"n": n})
            n += 1
            ctx.put_state("n", n)
            self.stop.wait(0.001)

    def close(self, ctx: Context) -> None:
        self.stop.set()


class Seen(Sink):
    decode_rows = True

    def collect(self, ctx: Context, data: Any) -> None:
        ctx.put_state("seen", ctx.get_state("seen", 0) + len(data))


class Calls(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        calls = ctx.get_state("calls", 0) + 1
        ctx.put_state("calls", calls)
        return calls


def test_run_source_starts_from_the_seeded_state_and_leaves_the_last() -> None:
    """A source reads the state dict it is given and writes its updates into it."""
    state = {"n": 40}
    run = run_source(Tally(), count=3, state=state)
    assert [r["n"] for r in run.rows[:3]] == [40, 41, 42]
    assert state["n"] >= 43


def test_run_source_without_state_starts_empty_each_run() -> None:
    """Without state=, every run gets a fresh empty state (nothing on disk)."""
    assert run_source(Tally(), count=1).rows[0] == {"n": 0}
    assert run_source(Tally(), count=1).rows[0] == {"n": 0}


def test_run_sink_state_is_inspectable_after() -> None:
    """The sink's puts land in the dict given."""
    state: dict[str, Any] = {}
    run_sink(Seen(), [[{"a": 1}, {"a": 2}], {"a": 3}], state=state)
    assert state == {"seen": 3}


def test_call_function_carries_state_in_the_dict_from_call_to_call() -> None:
    """Passing the same dict to successive calls is one rule's state."""
    state: dict[str, Any] = {}
    assert [call_function(Calls(), state=state) for _ in range(3)] == [1, 2, 3]
    assert call_function(Calls()) == 1


def test_plugin_host_keeps_state_in_a_temporary_folder_it_removes(tmp_path: Path) -> None:
    """A PluginHost's default state folder is private and gone after close."""
    with PluginHost(TEST_PLUGINS / "stateplug") as host:
        assert host.function("calls") == 1
        folder = host.state_dir
        assert folder is not None and (folder / "stateplug" / "state.sqlite3").is_file()
    assert not folder.exists()


def test_plugin_host_state_dir_outlives_the_process(tmp_path: Path) -> None:
    """With state_dir=, a second plugin process starts from what the first one kept."""
    def first_row() -> int:
        with PluginHost(TEST_PLUGINS / "stateplug", state_dir=tmp_path,
                        env={"STATEPLUG_OUT": str(tmp_path)}) as host:
            return int(host.source("tally", conf={"interval": 0.001}, count=1)[0]["n"])

    assert first_row() == 0
    store = SqliteStore(tmp_path / "stateplug" / "state.sqlite3", create=False)
    kept = {e.key: int(e.value) for e in store.entries()}
    store.close()
    assert kept["n"] >= 1
    assert first_row() == kept["n"]


def test_importing_the_harness_loads_no_state_module() -> None:
    """ekuiper.testing (loaded by every pytest session) leaves ekuiper._state and sqlite3
    unloaded until a run keeps state."""
    assert loaded_after("import ekuiper.testing, ekuiper.testing.pytest_plugin",
                        ("ekuiper._state", "sqlite3")) == []
