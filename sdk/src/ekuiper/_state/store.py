"""Where plugin state lives and the SQLite store that keeps it.

Lifecycle, one store per plugin process::

    first get/put/delete_state (any symbol thread)
        -> default_store(): under _default_lock, build the SqliteStore for state_dir()
        -> SqliteStore._conn(): under its lock, mkdir, connect, WAL, busy_timeout, table
    every later call (any thread): one statement under the store's lock; a put or a
        delete is its own transaction, committed before the call returns
    plugin shutdown (main thread, after every symbol has stopped): close_default()
        -> the connection is closed (SQLite checkpoints the WAL into the file)

Nothing here runs unless a symbol uses state: the runtime imports this package on the
first state call, and sqlite3 is imported when the store first connects.

Durability: WAL journal, ``synchronous=NORMAL`` by default. A put that has returned
is in the WAL file, so it survives the plugin process being killed (SIGKILL, OOM) and
kuiperd being killed; an OS crash or power loss may lose the puts since the last
checkpoint, never corrupt the file. ``EKUIPER_PLUGIN_STATE_SYNC=full`` makes every put
wait for fsync too (slower, see the README).

Several processes may open the same file (a plugin under eKuiper and
``ekuiper-plugin state`` beside it): SQLite's locks serialise them, and a writer waits
up to BUSY_TIMEOUT_MS for another's lock before the call fails with StateError.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, Final, NamedTuple

from ekuiper._state.rules import Scope, check_key, decode_value, encode_value
from ekuiper.errors import StateError

__all__ = [
    "BUSY_TIMEOUT_MS",
    "FILE_NAME",
    "STATE_DIR_ENV",
    "STATE_SYNC_ENV",
    "DictStore",
    "Entry",
    "SqliteStore",
    "Store",
    "close_default",
    "default_store",
    "main_folder",
    "state_dir",
]

STATE_DIR_ENV: Final = "EKUIPER_PLUGIN_STATE_DIR"
STATE_SYNC_ENV: Final = "EKUIPER_PLUGIN_STATE_SYNC"
FILE_NAME: Final = "state.sqlite3"
# eKuiper's data folder holds one folder per plugin under this name.
DATA_SUBDIR: Final = "plugin_state"
BUSY_TIMEOUT_MS: Final = 5000
_SYNC_MODES: Final = {"normal": "NORMAL", "full": "FULL"}
_SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS state (
    rule TEXT NOT NULL, kind TEXT NOT NULL, symbol TEXT NOT NULL, op TEXT NOT NULL,
    instance INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (rule, kind, symbol, op, instance, key)
) WITHOUT ROWID
"""
_WHERE: Final = "rule = ? AND kind = ? AND symbol = ? AND op = ? AND instance = ?"


def _where_args(scope: Scope) -> tuple[str, str, str, str, int]:
    return (scope.rule, scope.kind, scope.symbol, scope.op, scope.instance)


class Entry(NamedTuple):
    """One kept value, as ``ekuiper-plugin state`` lists it."""

    scope: Scope
    key: str
    value: str  # the JSON text
    updated: float  # seconds since the epoch


# -- where ------------------------------------------------------------------------------


def main_folder() -> Path:
    """The folder of the plugin's main program (eKuiper's working directory for it)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if isinstance(path, str) and path:
        return Path(path).resolve().parent
    return Path.cwd()


def _plugin_folder(main: Path) -> tuple[Path, Path | None]:
    """(the plugin's folder, eKuiper's data folder if it runs from an eKuiper home)."""
    for folder in (main, *main.parents):
        if folder.parent.name == "portable" and folder.parent.parent.name == "plugins":
            data = folder.parent.parent.parent / "data"
            return folder, (data if data.is_dir() else None)
    return main, None


def state_dir(main: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The folder that holds a plugin's state file, most specific rule first.

    1. ``$EKUIPER_PLUGIN_STATE_DIR/<plugin>``;
    2. eKuiper's data folder, ``<home>/data/plugin_state/<plugin>``, when the plugin runs
       from ``<home>/plugins/portable/<plugin>/`` (as eKuiper runs it, relative or
       absolute layout, and in the images): it outlives a reinstall of the plugin, which
       replaces the plugin's folder, and it is the folder deployments keep on a volume;
    3. ``<plugin folder>/.state`` otherwise (a plugin run outside an eKuiper home).
    """
    env = os.environ if environ is None else environ
    folder, data = _plugin_folder(main or main_folder())
    override = env.get(STATE_DIR_ENV)
    if override is not None:
        if not override.strip():
            raise StateError(f"{STATE_DIR_ENV} is set but empty; set it to a writable folder "
                             "or unset it")
        return Path(override).expanduser().absolute() / folder.name
    if data is not None:
        return data / DATA_SUBDIR / folder.name
    return folder / ".state"


# -- stores -----------------------------------------------------------------------------


class Store:
    """What a context needs: get, put and delete a key of one scope.

    Subclasses supply the three ``_..._text`` methods; keys are checked and values
    encoded here, so every store refuses the same keys and values.
    """

    def get(self, scope: Scope, key: Any, default: Any = None) -> Any:
        text = self._get_text(scope, check_key(key))
        return default if text is None else decode_value(text)

    def put(self, scope: Scope, key: Any, value: Any) -> None:
        key = check_key(key)
        self._put_text(scope, key, encode_value(key, value))

    def delete(self, scope: Scope, key: Any) -> bool:
        return self._delete(scope, check_key(key))

    def _get_text(self, scope: Scope, key: str) -> str | None:
        raise NotImplementedError

    def _put_text(self, scope: Scope, key: str, text: str) -> None:
        raise NotImplementedError

    def _delete(self, scope: Scope, key: str) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the store holds; a later call opens it again."""


class DictStore(Store):
    """One scope's state in a dict, for ``ekuiper.testing``: key -> decoded value.

    Values go through the same JSON round trip as in SQLite, so what a test reads back
    is what a plugin would. The dict is the caller's: pre-seed it, read it after.
    """

    def __init__(self, values: MutableMapping[str, Any] | None = None) -> None:
        self.values: MutableMapping[str, Any] = {} if values is None else values
        self._lock = threading.Lock()

    def _get_text(self, scope: Scope, key: str) -> str | None:
        with self._lock:
            if key not in self.values:
                return None
            return encode_value(key, self.values[key])

    def _put_text(self, scope: Scope, key: str, text: str) -> None:
        with self._lock:
            self.values[key] = decode_value(text)

    def _delete(self, scope: Scope, key: str) -> bool:
        with self._lock:
            return self.values.pop(key, _MISSING) is not _MISSING


_MISSING: Final = object()


class SqliteStore(Store):
    """State in one SQLite file; one connection per process, calls serialised by a lock.

    ``create=False`` (``ekuiper-plugin state``) refuses to make a file that is not there.
    """

    def __init__(self, path: str | os.PathLike[str], *, sync: str | None = None,
                 create: bool = True) -> None:
        self.path = Path(path)
        self.sync = sync
        self.create = create
        self._lock = threading.Lock()
        self._db: Any = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"<SqliteStore {self.path}>"

    def _fail(self, doing: str, exc: BaseException) -> StateError:
        hint = (f"another process held the file for more than {BUSY_TIMEOUT_MS} ms"
                if "locked" in str(exc) or "busy" in str(exc) else
                f"check the folder is writable, or set {STATE_DIR_ENV} to one that is")
        return StateError(f"cannot {doing} plugin state in {self.path}: {exc} ({hint})")

    def _open_once(self, sqlite3: Any, mode: str) -> Any:
        """Connect and set the file up (WAL, schema); sqlite3.Error as SQLite raised it."""
        db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000,
                             isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise StateError(f"{self.path} was written by a newer SDK (schema {version}, "
                                 f"this one knows {_SCHEMA_VERSION}); upgrade the SDK")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {mode}")
            db.execute(_SCHEMA)
            if version < _SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _conn(self) -> Any:
        """The open connection (call with the lock held); opens it on first use."""
        if self._db is not None and self._pid == os.getpid():
            return self._db
        # A connection inherited through fork() must not be used: open a new one.
        self._db = None
        mode = self._sync_mode()
        try:
            import sqlite3
        except ImportError as exc:  # a Python built without _sqlite3
            raise StateError(f"plugin state needs Python's sqlite3 module, which this "
                             f"Python ({sys.executable}) lacks: {exc}") from None
        if self.create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(
                    f"cannot create the plugin state folder {self.path.parent}: "
                    f"{exc.strerror or exc}; make it writable, or set {STATE_DIR_ENV} to a "
                    "writable folder") from None
        elif not self.path.is_file():
            raise StateError(f"no plugin state file at {self.path}")
        # While another process turns a new file into WAL, SQLite may answer "locked"
        # without waiting on the busy timeout; the open is retried until that deadline.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = 0.01
        while True:
            try:
                db = self._open_once(sqlite3, mode)
                break
            except sqlite3.Error as exc:
                if not isinstance(exc, sqlite3.OperationalError) or "locked" not in str(exc) \
                        or time.monotonic() + pause > deadline:
                    raise self._fail("open", exc) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
        self._db, self._pid = db, os.getpid()
        return db

    def _sync_mode(self) -> str:
        name = self.sync if self.sync is not None else os.environ.get(STATE_SYNC_ENV, "normal")
        mode = _SYNC_MODES.get(name.strip().lower())
        if mode is None:
            raise StateError(f"{STATE_SYNC_ENV}={name!r}: use one of "
                             f"{', '.join(sorted(_SYNC_MODES))}")
        return mode

    def _run(self, doing: str, sql: str, args: tuple[Any, ...] = ()) -> Any:
        import sqlite3

        with self._lock:
            try:
                return self._conn().execute(sql, args)
            except sqlite3.Error as exc:
                raise self._fail(doing, exc) from None

    def _get_text(self, scope: Scope, key: str) -> str | None:
        # One lock for the query and the fetch: the cursor belongs to the shared connection.
        import sqlite3

        with self._lock:
            try:
                row = self._conn().execute(f"SELECT value FROM state WHERE {_WHERE} AND key = ?",
                                           (*_where_args(scope), key)).fetchone()
            except sqlite3.Error as exc:
                raise self._fail("read", exc) from None
        return None if row is None else str(row[0])

    def _put_text(self, scope: Scope, key: str, text: str) -> None:
        self._run("write", "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (*_where_args(scope), key, text, time.time()))

    def _delete(self, scope: Scope, key: str) -> bool:
        cursor = self._run("delete", f"DELETE FROM state WHERE {_WHERE} AND key = ?",
                           (*_where_args(scope), key))
        return bool(cursor.rowcount)

    # -- for ekuiper-plugin state and ekuiper.testing -----------------------------------

    def entries(self, rule: str | None = None) -> Iterator[Entry]:
        """Every kept value (of one rule), ordered by rule, symbol and key."""
        import sqlite3

        sql = "SELECT rule, kind, symbol, op, instance, key, value, updated FROM state"
        args: tuple[str, ...] = ()
        if rule is not None:
            sql, args = sql + " WHERE rule = ?", (rule,)
        with self._lock:
            try:
                rows = self._conn().execute(sql + " ORDER BY 1, 2, 3, 4, 5, 6", args).fetchall()
            except sqlite3.Error as exc:
                raise self._fail("read", exc) from None
        for rule_id, kind, symbol, op, instance, key, value, updated in rows:
            yield Entry(Scope(kind, symbol, rule_id, op, instance), key, value, updated)

    def drop_rule(self, rule: str) -> int:
        """Delete every value kept for ``rule``; how many there were."""
        return int(self._run("delete", "DELETE FROM state WHERE rule = ?", (rule,)).rowcount)

    def drop_older(self, seconds: float) -> int:
        """Delete every value not written for ``seconds``; how many there were."""
        return int(self._run("delete", "DELETE FROM state WHERE updated < ?",
                             (time.time() - seconds,)).rowcount)

    def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None
            if db is not None and self._pid == os.getpid():
                db.close()


# -- the process's store ------------------------------------------------------------------

_default: SqliteStore | None = None
_default_lock = threading.Lock()


def default_store() -> SqliteStore:
    """The plugin process's store, built on first use (its file opens on first call)."""
    global _default
    store = _default
    if store is not None:
        return store
    with _default_lock:
        if _default is None:
            _default = SqliteStore(state_dir() / FILE_NAME)
        return _default


def close_default() -> None:
    """Close the process's store if it was used (the plugin is shutting down)."""
    global _default
    with _default_lock:
        store, _default = _default, None
    if store is not None:
        store.close()
