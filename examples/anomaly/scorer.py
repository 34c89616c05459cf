"""anomaly_score(value[, window]): how far a reading is from the ones before it.

The z-score of ``value`` against the previous ``window`` values (default 30) that the
same SQL expression saw: (value - mean) / standard deviation, computed with numpy. It is
null (None) until 5 values have been seen, and for a null value, which is not counted.
A rule flags anomalies with e.g. ``WHERE abs(anomaly_score(temperature)) > 4``.

Each calling expression of each rule keeps its own history: this SDK hands the same
context object to every call from one expression and drops it when the rule stops, so
the history goes with it. Calls arrive one at a time (no lock needed).
"""

from __future__ import annotations

import weakref
from collections import deque
from typing import Any

import numpy as np

from ekuiper import Context, Function

WINDOW = 30
MIN_HISTORY = 5


def zscore(history: np.ndarray, value: float) -> float:
    """(value - mean) / std of ``history``; a flat history still scores a jump from it."""
    mean = float(history.mean())
    # A constant history has std 0: a floor keeps the score finite (JSON has no inf)
    # and large for any departure from the constant.
    scale = max(float(history.std()), 1e-9 * max(1.0, abs(mean)))
    return (value - mean) / scale


class AnomalyScore(Function):
    def __init__(self) -> None:
        self.histories: weakref.WeakKeyDictionary[Context, deque[float]] = (
            weakref.WeakKeyDictionary())

    def validate(self, args: list[Any]) -> str:
        if len(args) not in (1, 2):
            return "anomaly_score takes a value and, optionally, a window size"
        return ""

    def exec(self, args: list[Any], ctx: Context) -> float | None:
        value = args[0]
        window = args[1] if len(args) > 1 else WINDOW
        if isinstance(window, bool) or not isinstance(window, (int, float)) \
                or window != int(window) or window < MIN_HISTORY:
            raise ValueError(f"anomaly_score: window must be a whole number of at least "
                             f"{MIN_HISTORY}, got {window!r}")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"anomaly_score needs a number, got {type(value).__name__}")
        history = self.histories.get(ctx)
        if history is None or history.maxlen != int(window):
            history = deque(history or (), maxlen=int(window))
            self.histories[ctx] = history
        score = (zscore(np.asarray(history, dtype=float), float(value))
                 if len(history) >= MIN_HISTORY else None)
        history.append(float(value))
        return score
