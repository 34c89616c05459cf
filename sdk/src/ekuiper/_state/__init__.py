"""State that survives a restart: what ``ctx.get_state``/``put_state``/``delete_state`` use.

``rules``: pure (keys, values, scopes); ``store``: where the file lives, the SQLite store
and the process's one store (its docstring draws the lifecycle). The runtime imports
this package on a symbol's first state call, never before.
"""

from ekuiper._state.rules import MAX_KEY_CHARS, Scope, scope_for
from ekuiper._state.store import (
    FILE_NAME,
    STATE_DIR_ENV,
    STATE_SYNC_ENV,
    DictStore,
    Entry,
    SqliteStore,
    Store,
    close_default,
    default_store,
    state_dir,
)

__all__ = [
    "FILE_NAME",
    "MAX_KEY_CHARS",
    "STATE_DIR_ENV",
    "STATE_SYNC_ENV",
    "DictStore",
    "Entry",
    "Scope",
    "SqliteStore",
    "Store",
    "close_default",
    "default_store",
    "scope_for",
    "state_dir",
]
