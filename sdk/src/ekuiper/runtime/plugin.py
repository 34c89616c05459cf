"""The plugin entry point: ``plugin.start(PluginConfig(...))`` from the main program.

Kept at the official SDK's import path (``from ekuiper import plugin`` gives this module).
"""

from __future__ import annotations

from ekuiper._runtime.config import PluginConfig
from ekuiper._runtime.lifecycle import exit_process, run

__all__ = ["PluginConfig", "start"]


def start(c: PluginConfig) -> None:
    """Serve the plugin's symbols to eKuiper; returns only by ending the process.

    Call it from the main program's ``if __name__ == "__main__":`` block. The process
    exits 0 after SIGTERM/SIGINT or when eKuiper goes away, having closed every running
    symbol once; it exits 1 if the control channel cannot be used.
    """
    exit_process(run(c))
