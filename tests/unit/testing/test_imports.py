"""Importing the SDK or its test harness does not load nng.

The pytest plugin is registered as a pytest11 entry point, so every pytest session of
every project with the SDK installed imports ``ekuiper.testing``: nng must wait until a
ProtocolHost or PluginHost is actually used.
"""

from __future__ import annotations

import subprocess
import sys


def _failure_of(modules: str) -> str:
    """Import ``modules`` in a fresh interpreter; what it printed if pynng got loaded."""
    check = f"import {modules}, sys; assert 'pynng' not in sys.modules, 'pynng was loaded'"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          timeout=60)
    return done.stdout + done.stderr if done.returncode else ""


def test_testing_and_its_pytest_plugin_do_not_load_pynng() -> None:
    """ekuiper.testing and the pytest plugin import without loading pynng."""
    assert _failure_of("ekuiper.testing, ekuiper.testing.pytest_plugin") == ""


def test_ekuiper_does_not_load_pynng() -> None:
    """import ekuiper leaves pynng unloaded (the default transport needs no nng)."""
    assert _failure_of("ekuiper") == ""
