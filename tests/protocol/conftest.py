"""Fixtures for protocol tests: a ProtocolHost in a private IPC directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ekuiper.testing import ProtocolHost
from tests.conftest import PLUGINS, TEST_PLUGINS


def _launch(ipc_dir: str, name: str, script: Path, env: dict[str, str],
            v1: bool = False) -> ProtocolHost:
    host = ProtocolHost(ipc_dir, name, v1=v1)
    host.launch(script, env=env)
    return host


@pytest.fixture
def testplug(ipc_dir: str, out_dir: Path, request: pytest.FixtureRequest) -> Iterator[ProtocolHost]:
    """testplug running under the ProtocolHost (eKuiper 2.x behaviour)."""
    host = _launch(ipc_dir, "testplug", TEST_PLUGINS / "testplug" / "testplug.py",
                   {"TESTPLUG_OUT": str(out_dir)})
    yield host
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- plugin log ---\n{host.log()}")
    host.close()


@pytest.fixture
def pysam(ipc_dir: str) -> Iterator[ProtocolHost]:
    """The reference plugin running under the ProtocolHost."""
    host = _launch(ipc_dir, "pysam", PLUGINS / "pysam" / "pysam.py", {})
    yield host
    host.close()
