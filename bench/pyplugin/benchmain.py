"""Main program of a Python bench plugin; installed as ``<plugin name>.py``.

The plugin name is this file's name (``benchpy`` or ``benchofficial``), and each symbol
name ends with the part after ``bench`` (``benchsrc_py``, ``benchsrc_official``, ...), so
the plugins of every SDK can be installed side by side without sharing an IPC path.
"""

from __future__ import annotations

from pathlib import Path

from benchsyms import BenchSink, BenchSource, IdleSource, RevertFunc

from ekuiper import PluginConfig, plugin

NAME = Path(__file__).stem
TAG = NAME[len("bench"):]

if __name__ == "__main__":
    plugin.start(PluginConfig(
        NAME,
        {f"benchsrc_{TAG}": BenchSource, f"benchidle_{TAG}": IdleSource},
        {f"benchsink_{TAG}": BenchSink},
        {f"benchrevert_{TAG}": RevertFunc},
    ))
