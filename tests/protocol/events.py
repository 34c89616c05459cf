"""Reading what testplug recorded."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable


def json_lines(text: str) -> list[Any]:
    """The records of a JSON-lines text a plugin may still be appending to.

    A reader can catch a writer mid-line, so a last line without its newline is not yet
    a record and is left for the next read.
    """
    complete = text[:text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def events(out_dir: Path, event: str | None = None) -> list[dict[str, Any]]:
    path = out_dir / "events.jsonl"
    if not path.exists():
        return []
    rows = json_lines(path.read_text())
    return [r for r in rows if event is None or r["event"] == event]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
