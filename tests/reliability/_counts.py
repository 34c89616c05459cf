"""How many fuzz cases each channel ran in this session (printed in the summary)."""

from __future__ import annotations

from collections import Counter

CASES: Counter[str] = Counter()

LABELS = {
    "pure": "pure protocol layer",
    "control": "live control channel",
    "function": "live function channel",
}
