"""SqliteStore and DictStore against a plain dict, on random put/get/delete sequences."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ekuiper._state.rules import Scope
from ekuiper._state.store import DictStore, SqliteStore

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
KEYS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               min_size=1, max_size=12)
MISSING = object()
SCOPES = st.sampled_from([Scope("source", "s", "r1", "o", 0), Scope("source", "s", "r2", "o", 0),
                          Scope("function", "f", "r1", "", 0)])
OPS = st.lists(st.tuples(st.sampled_from(["put", "get", "delete"]), SCOPES, KEYS, JSON),
               max_size=25)


def _replay(ops: list[tuple[str, Scope, str, Any]], store: Any, one_scope: bool) -> list[Any]:
    model: dict[tuple[Any, str], Any] = {}
    seen: list[Any] = []
    for op, scope, key, value in ops:
        if one_scope:
            scope = Scope("source", "s", "r1", "o", 0)
        where = (scope, key)
        if op == "put":
            store.put(scope, key, value)
            model[where] = json.loads(json.dumps(value))
        elif op == "get":
            seen.append(store.get(scope, key, MISSING))
            assert seen[-1] == model.get(where, MISSING)
        else:
            assert store.delete(scope, key) is (model.pop(where, MISSING) is not MISSING)
    return seen


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_sqlite_store_behaves_as_a_dict_of_json_values(ops: list[Any]) -> None:
    """Whatever the sequence, SQLite gives back what a dict of JSON round trips holds."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "state.sqlite3")
        try:
            _replay(ops, store, one_scope=False)
        finally:
            store.close()


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_dict_store_behaves_as_the_sqlite_store(ops: list[Any]) -> None:
    """The testing store answers every sequence of one scope as SQLite does."""
    _replay(ops, DictStore(), one_scope=True)
