"""Go's duration text (``1h2m3.5s``, ``-500ms``), as eKuiper's properties write it.

Pure: one parser for every place a property may be a duration (typed config, the sink
error policy). eKuiper reads such properties with Go's ``time.ParseDuration``; a bare
number is milliseconds there, and callers decide that case themselves.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["go_duration_seconds"]

_PART: Final = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNIT_S: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                  "h": 3600.0}


def go_duration_seconds(text: str) -> float | None:
    """Seconds of a Go duration such as ``1h2m3.5s`` or ``-500ms``; None if it is not one."""
    s = text.strip()
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        match = _PART.match(s, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    return sign * total if pos else None
