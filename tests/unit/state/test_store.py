"""ekuiper._state.store: where state lives, the SQLite store, the process's store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from ekuiper._state import store as state_store
from ekuiper._state.rules import Scope
from ekuiper._state.store import (
    STATE_DIR_ENV,
    STATE_SYNC_ENV,
    DictStore,
    SqliteStore,
    close_default,
    default_store,
    state_dir,
)
from ekuiper.errors import StateError

SRC = Scope("source", "tally", "r1", "s1", 0)


@pytest.fixture
def db(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "st" / "state.sqlite3")
    yield store
    store.close()


# -- where ------------------------------------------------------------------------------

def test_under_an_ekuiper_home_state_goes_to_its_data_folder(tmp_path: Path) -> None:
    """A plugin in <home>/plugins/portable/<name> keeps state in <home>/data/plugin_state."""
    main = tmp_path / "plugins" / "portable" / "myplug"
    main.mkdir(parents=True)
    (tmp_path / "data").mkdir()
    assert state_dir(main, {}) == tmp_path / "data" / "plugin_state" / "myplug"


def test_an_executable_in_a_subfolder_still_finds_the_plugin_folder(tmp_path: Path) -> None:
    """The plugin's name comes from its folder under portable/, not the executable's."""
    main = tmp_path / "plugins" / "portable" / "myplug" / "bin"
    main.mkdir(parents=True)
    (tmp_path / "data").mkdir()
    assert state_dir(main, {}) == tmp_path / "data" / "plugin_state" / "myplug"


def test_outside_an_ekuiper_home_state_goes_to_the_plugin_folder(tmp_path: Path) -> None:
    """A plugin folder anywhere else keeps its state in its own .state folder."""
    assert state_dir(tmp_path / "myplug", {}) == tmp_path / "myplug" / ".state"


def test_a_home_without_data_folder_falls_back_to_the_plugin_folder(tmp_path: Path) -> None:
    """plugins/portable without a data/ beside it is not an eKuiper home."""
    main = tmp_path / "plugins" / "portable" / "myplug"
    assert state_dir(main, {}) == main / ".state"


def test_the_env_var_moves_state_to_a_folder_per_plugin(tmp_path: Path) -> None:
    """EKUIPER_PLUGIN_STATE_DIR wins, with one folder per plugin inside it."""
    main = tmp_path / "plugins" / "portable" / "myplug"
    (tmp_path / "data").mkdir()
    env = {STATE_DIR_ENV: str(tmp_path / "elsewhere")}
    assert state_dir(main, env) == tmp_path / "elsewhere" / "myplug"


def test_an_empty_env_var_is_an_error_naming_it(tmp_path: Path) -> None:
    """EKUIPER_PLUGIN_STATE_DIR set to blanks is refused, not taken as the cwd."""
    with pytest.raises(StateError, match=STATE_DIR_ENV):
        state_dir(tmp_path, {STATE_DIR_ENV: " "})


# -- SqliteStore --------------------------------------------------------------------------

def test_a_put_value_is_read_back_after_reopening(tmp_path: Path) -> None:
    """What one store wrote, a new store on the same file reads."""
    path = tmp_path / "state.sqlite3"
    first = SqliteStore(path)
    first.put(SRC, "n", {"count": 3, "last": [1.5, None]})
    first.close()
    second = SqliteStore(path)
    assert second.get(SRC, "n") == {"count": 3, "last": [1.5, None]}
    second.close()


def test_a_missing_key_gives_the_default(db: SqliteStore) -> None:
    """get of a key never put returns the default given."""
    assert db.get(SRC, "nothing", 42) == 42


def test_scopes_do_not_see_each_other(db: SqliteStore) -> None:
    """The same key in another rule, op, instance, symbol or kind is another value."""
    others = [SRC._replace(rule="r2"), SRC._replace(op="s2"), SRC._replace(instance=1),
              SRC._replace(symbol="other"), SRC._replace(kind="sink")]
    db.put(SRC, "n", 1)
    for i, scope in enumerate(others):
        db.put(scope, "n", 100 + i)
    assert db.get(SRC, "n") == 1
    assert [db.get(s, "n") for s in others] == [100, 101, 102, 103, 104]


def test_delete_says_whether_there_was_a_value(db: SqliteStore) -> None:
    """delete is True for a kept key, False after, and the key reads as missing."""
    db.put(SRC, "n", 1)
    assert db.delete(SRC, "n") is True
    assert db.delete(SRC, "n") is False
    assert db.get(SRC, "n") is None


def test_a_refused_value_leaves_the_kept_one(db: SqliteStore) -> None:
    """A put that fails on its value changes nothing."""
    db.put(SRC, "n", 1)
    with pytest.raises(TypeError, match="'n'"):
        db.put(SRC, "n", object())
    assert db.get(SRC, "n") == 1


def test_the_file_is_in_wal_mode(db: SqliteStore) -> None:
    """The store's journal is WAL, so readers in other processes do not block a put."""
    db.put(SRC, "n", 1)
    other = sqlite3.connect(db.path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_a_folder_that_cannot_be_made_names_it_and_the_env_var(tmp_path: Path) -> None:
    """A state folder that cannot be created fails the first call naming both."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = SqliteStore(blocker / "sub" / "state.sqlite3")
    with pytest.raises(StateError, match=f"{blocker / 'sub'}.*{STATE_DIR_ENV}"):
        store.put(SRC, "n", 1)


def test_a_file_that_is_not_a_database_is_a_state_error(tmp_path: Path) -> None:
    """Garbage where the state file should be fails with the path, not a crash."""
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"not sqlite" * 200)
    with pytest.raises(StateError, match=str(path)):
        SqliteStore(path).get(SRC, "n")


def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file whose schema is newer than this SDK's says to upgrade."""
    path = tmp_path / "state.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StateError, match="newer SDK"):
        SqliteStore(path).get(SRC, "n")


def test_a_bad_sync_setting_names_the_env_var(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """EKUIPER_PLUGIN_STATE_SYNC other than normal/full fails naming both choices."""
    monkeypatch.setenv(STATE_SYNC_ENV, "sometimes")
    with pytest.raises(StateError, match=f"{STATE_SYNC_ENV}='sometimes'.*full, normal"):
        SqliteStore(tmp_path / "s.sqlite3").get(SRC, "n")


def test_full_sync_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EKUIPER_PLUGIN_STATE_SYNC=full opens the file with synchronous=FULL."""
    monkeypatch.setenv(STATE_SYNC_ENV, "FULL")
    store = SqliteStore(tmp_path / "s.sqlite3")
    store.put(SRC, "n", 1)
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2
    store.close()


def test_create_false_refuses_a_missing_file(tmp_path: Path) -> None:
    """The CLI's read-only opening never makes a file."""
    with pytest.raises(StateError, match="no plugin state file"):
        SqliteStore(tmp_path / "none.sqlite3", create=False).get(SRC, "n")
    assert not (tmp_path / "none.sqlite3").exists()


def test_threads_putting_at_once_lose_nothing(db: SqliteStore) -> None:
    """Eight threads each putting 100 keys through one store all land."""
    def work(t: int) -> None:
        for i in range(100):
            db.put(SRC, f"{t}-{i}", i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(list(db.entries())) == 800


def test_two_stores_on_one_file_see_each_others_puts(tmp_path: Path) -> None:
    """Two connections (as two processes would have) read what the other committed."""
    path = tmp_path / "state.sqlite3"
    a, b = SqliteStore(path), SqliteStore(path)
    a.put(SRC, "n", 1)
    assert b.get(SRC, "n") == 1
    b.put(SRC, "n", 2)
    assert a.get(SRC, "n") == 2
    a.close()
    b.close()


def test_a_put_survives_sigkill_of_the_process_right_after(tmp_path: Path) -> None:
    """A process killed with SIGKILL straight after put returns loses nothing."""
    path = tmp_path / "state.sqlite3"
    script = textwrap.dedent(f"""
        import os, signal
        from ekuiper._state.rules import Scope
        from ekuiper._state.store import SqliteStore
        store = SqliteStore({str(path)!r})
        for i in range(50):
            store.put(Scope("source", "s", "r", "o", 0), "n", i)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert done.returncode == -9
    store = SqliteStore(path)
    assert store.get(Scope("source", "s", "r", "o", 0), "n") == 49
    store.close()


def test_entries_drop_rule_and_drop_older(db: SqliteStore) -> None:
    """entries lists by rule; drop_rule and drop_older delete and count."""
    db.put(SRC, "a", 1)
    db.put(SRC._replace(rule="r2"), "b", 2)
    assert [(e.scope.rule, e.key, e.value) for e in db.entries()] == [("r1", "a", "1"),
                                                                     ("r2", "b", "2")]
    assert [e.key for e in db.entries("r2")] == ["b"]
    assert db.drop_rule("r2") == 1
    assert db.drop_older(3600) == 0
    assert db.drop_older(-1) == 1
    assert list(db.entries()) == []


def test_a_forked_child_opens_its_own_connection(db: SqliteStore) -> None:
    """After fork() the child does not reuse the parent's connection."""
    db.put(SRC, "n", 1)
    pid = os.fork()
    if pid == 0:  # the child: exit code says whether it read through a new connection
        parent_conn = db._db
        ok = db.get(SRC, "n") == 1 and db._db is not parent_conn
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert db.get(SRC, "n") == 1


# -- DictStore and the process's store ----------------------------------------------------

def test_dict_store_keeps_values_after_the_json_round_trip() -> None:
    """A DictStore holds what SQLite would give back: a tuple becomes a list."""
    values: dict[str, object] = {"seed": 1}
    store = DictStore(values)
    store.put(SRC, "t", (1, 2))
    assert store.get(SRC, "seed") == 1
    assert values == {"seed": 1, "t": [1, 2]}
    assert store.delete(SRC, "seed") is True
    assert store.delete(SRC, "seed") is False


def test_the_default_store_is_one_per_process_and_closes(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """default_store is built once from the env var; close_default lets a new one open."""
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    close_default()
    first = default_store()
    assert first is default_store()
    assert first.path.parent.parent == tmp_path
    first.put(SRC, "n", 1)
    close_default()
    assert state_store._default is None
    second = default_store()
    assert second is not first and second.get(SRC, "n") == 1
    close_default()


def test_two_processes_writing_one_file_at_once_lose_nothing(tmp_path: Path) -> None:
    """Two processes putting 300 keys each into one file at the same time: all land
    (SQLite's locks and the busy timeout serialise them)."""
    path = tmp_path / "state.sqlite3"
    script = textwrap.dedent(f"""
        import sys
        from ekuiper._state.rules import Scope
        from ekuiper._state.store import SqliteStore
        store = SqliteStore({str(path)!r})
        for i in range(300):
            store.put(Scope("source", "s", sys.argv[1], "o", 0), str(i), i)
        store.close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, rule]) for rule in ("a", "b")]
    assert [p.wait(120) for p in procs] == [0, 0]
    store = SqliteStore(path)
    counts = {rule: len(list(store.entries(rule))) for rule in ("a", "b")}
    store.close()
    assert counts == {"a": 300, "b": 300}
