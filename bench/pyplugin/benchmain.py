"""Main program of a Python bench plugin; installed as ``<plugin name>.py``.

The plugin name is this file's name (``benchpy`` or ``benchofficial``), and each symbol
name ends with the part after ``bench`` (``benchsrc_py``, ``benchsrc_official``, ...), so
the plugins of every SDK can be installed side by side without sharing an IPC path.

bench/metrics_cost.py runs two of them in one kuiperd, metrics off and on: the one named
in BENCH_METRICS_PLUGIN turns its metrics on (EKUIPER_PLUGIN_METRICS_DIR from
BENCH_METRICS_DIR) before it starts; every other plugin of that kuiperd runs without.
"""

from __future__ import annotations

import os
from pathlib import Path

from benchsyms import BenchSink, BenchSource, IdleSource, RevertFunc

from ekuiper import PluginConfig, plugin

NAME = Path(__file__).stem
TAG = NAME[len("bench"):]

if __name__ == "__main__":
    if os.environ.get("BENCH_METRICS_PLUGIN") == NAME:
        os.environ["EKUIPER_PLUGIN_METRICS_DIR"] = os.environ["BENCH_METRICS_DIR"]
    plugin.start(PluginConfig(
        NAME,
        {f"benchsrc_{TAG}": BenchSource, f"benchidle_{TAG}": IdleSource},
        {f"benchsink_{TAG}": BenchSink},
        {f"benchrevert_{TAG}": RevertFunc},
    ))
