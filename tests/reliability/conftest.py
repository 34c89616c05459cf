"""Fixtures for reliability tests: real plugin processes under a ProtocolHost.

Same approach as tests/protocol/conftest.py; the host here never caps the size of what it
receives, so megabyte frames and replies reach the test whatever nng's default is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ekuiper.testing import ProtocolHost
from tests.conftest import TEST_PLUGINS
from tests.reliability._counts import CASES, LABELS

ODDPLUG = Path(__file__).resolve().parent / "oddplug" / "oddplug.py"
TESTPLUG = TEST_PLUGINS / "testplug" / "testplug.py"


class UncappedHost(ProtocolHost):
    """A ProtocolHost whose sockets accept messages of any size."""

    def _sock(self, sock: Any) -> Any:
        sock.recv_max_size = 0  # before listen/dial: pipes take it when they are made
        return super()._sock(sock)


def launch(ipc_dir: str, name: str, script: Path, env: dict[str, str]) -> UncappedHost:
    """Start ``script`` as eKuiper 2.x does and wait for its handshake."""
    host = UncappedHost(ipc_dir, name)
    host.launch(script, env=env)
    return host


def _close(host: ProtocolHost, request: pytest.FixtureRequest) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- plugin log (last 5000 chars) ---\n{host.log()[-5000:]}")
    host.close()


@pytest.fixture
def testplug(ipc_dir: str, out_dir: Path, request: pytest.FixtureRequest,
             ) -> Iterator[UncappedHost]:
    """testplug running under the host (eKuiper 2.x behaviour)."""
    host = launch(ipc_dir, "testplug", TESTPLUG, {"TESTPLUG_OUT": str(out_dir)})
    yield host
    _close(host, request)


@pytest.fixture
def oddplug(ipc_dir: str, out_dir: Path, request: pytest.FixtureRequest,
            ) -> Iterator[UncappedHost]:
    """oddplug (odd and large data) running under the host."""
    host = launch(ipc_dir, "oddplug", ODDPLUG, {"ODDPLUG_OUT": str(out_dir)})
    yield host
    _close(host, request)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many fuzz cases each channel ran."""
    if not CASES:
        return
    parts = ", ".join(f"{LABELS[key]} {CASES[key]}" for key in LABELS if key in CASES)
    terminalreporter.write_line(f"reliability fuzz cases run: {parts} "
                                f"(total {sum(CASES.values())})")
