"""`ekuiper-plugin state`: list and drop what a plugin keeps with ``ctx.put_state``.

eKuiper sends a portable plugin the same stop command when a rule is stopped, restarted,
updated or deleted, so a plugin cannot tell that a rule is gone and its state stays.
This command drops it: by rule, by age, or every rule the server no longer has.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ekuiper._state.store import FILE_NAME, Entry, SqliteStore, state_dir

__all__ = ["locate_state_file", "parse_age", "server_rule_ids", "show_entries"]

_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_AGE_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """``90s``, ``15m``, ``12h`` or ``7d`` as seconds; ValueError naming the forms."""
    match = _AGE_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an age: give a number and a unit, such as 90s, "
                         "15m, 12h or 7d")
    return float(match.group(1)) * _AGE_UNIT[match.group(2)]


def locate_state_file(target: Path) -> Path:
    """The state file for a plugin folder, a state folder or the file itself.

    A plugin folder (holding ``<name>.json``) resolves as the plugin would resolve it
    run from there, ``EKUIPER_PLUGIN_STATE_DIR`` included.
    """
    if target.is_file():
        return target
    descriptor = target / f"{target.resolve().name}.json"
    if descriptor.is_file():
        try:
            executable = str(json.loads(descriptor.read_text(encoding="utf-8"))["executable"])
        except (OSError, ValueError, KeyError, TypeError):
            executable = ""
        main = (target / executable).resolve().parent if executable else target.resolve()
        return state_dir(main) / FILE_NAME
    return target / FILE_NAME


def server_rule_ids(rules: Any) -> set[str]:
    """The rule ids in eKuiper's ``GET /rules`` answer; ValueError if it is not one."""
    if not isinstance(rules, list) or not all(
            isinstance(r, dict) and isinstance(r.get("id"), str) for r in rules):
        raise ValueError(f"GET /rules: expected a list of rules, got {str(rules)[:200]}")
    return {r["id"] for r in rules}


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def show_entries(entries: list[Entry], out: Callable[[str], None]) -> None:
    """One line per kept value: rule, symbol, operator/instance, key, value, when."""
    for entry in entries:
        scope = entry.scope
        where = f"{scope.op}/{scope.instance}" if scope.op else "-"
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(entry.updated))
        out(f"{scope.rule}\t{scope.kind} {scope.symbol}\t{where}\t{entry.key}\t"
            f"{_short(entry.value)}\t{when}")


def open_store(path: Path) -> SqliteStore:
    """The store at ``path``, never creating one."""
    return SqliteStore(path, create=False)
