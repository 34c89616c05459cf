"""Sampling profiles of a running plugin process with py-spy, summarised as text.

py-spy attaches from outside (``--nonblocking``: it never pauses the process) and
samples every thread's Python stack, leaving out threads it sees sleeping. Two profiles
per load: all non-idle samples (where the plugin's threads are, nng calls included:
pynng releases the GIL inside ``nng_send``/``nng_recv``), and ``--gil`` samples (only
the thread holding the GIL: the Python work an SDK change can make cheaper). The raw
collapsed stacks are kept; the summary has the frames the samples are in ("self", by
source line) and the functions they are under ("inclusive").
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def record(py_spy: Path, pid: int, seconds: float, out: Path, gil: bool = False,
           rate: int = 250) -> None:
    """Sample ``pid`` for ``seconds``; with ``gil``, only stacks that hold the GIL."""
    subprocess.run([str(py_spy), "record", "--pid", str(pid), "--duration",
                    str(max(1, round(seconds))), "--rate", str(rate), "--format", "raw",
                    "--output", str(out), "--nonblocking", *(["--gil"] if gil else [])],
                   check=True, capture_output=True, text=True)


def short_path(path: str) -> str:
    for marker in ("site-packages/", "/sdk/src/", "/lib/python3."):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3." else tail
    return path.rsplit("/", 1)[-1]


def _frame_label(frame: str, with_line: bool) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    where = short_path(match["file"])
    if with_line:
        return f"{match['func']} ({where}:{match['line']})"
    return f"{match['func']} ({where})"


def summarize(raw: Path, top: int = 12) -> dict[str, Any]:
    """Top self lines and inclusive functions, as percentages of all samples."""
    self_lines: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        self_lines[_frame_label(frames[-1], True)] += count
        for func in {_frame_label(f, False) for f in frames}:
            inclusive[func] += count
    if total == 0:
        return {"samples": 0, "self": [], "inclusive": []}

    def pct(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return {"samples": total, "self": pct(self_lines), "inclusive": pct(inclusive)}
