"""Shared test configuration: repository paths and the CI rule that skips are failures."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from ekuiper import _encoding

# Fixtures shared across suites: `trap` (pip's index and proxies on a counting port).
pytest_plugins = ["tests.pip_trap"]

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "plugins"
TEST_PLUGINS = Path(__file__).resolve().parent / "plugins"


def skip_or_fail(reason: str) -> None:
    """Skip on a developer machine that lacks a tool; fail under CI, which must run all."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run this test, but: {reason}", pytrace=False)
    pytest.skip(reason)


def loaded_after(code: str, watched: Iterable[str]) -> list[str]:
    """Run ``code`` in a fresh interpreter; which of the ``watched`` modules it left
    imported, sorted. Fails the test, with its stderr, when ``code`` raises."""
    probe = (f"{code}\nimport sys as _sys\n"
             f"print(sorted(m for m in {sorted(watched)!r} if m in _sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return loaded


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Expose each phase's report on the item, so fixtures can attach logs on failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(params=_encoding.ENCODERS)
def encoder(request: pytest.FixtureRequest) -> Iterator[str]:
    """The SDK switched to one encoder for the test, then back to its own choice."""
    name: str = request.param
    try:
        _encoding.use(name)
    except ImportError:
        skip_or_fail(f"{name} is not installed (the dev extra installs it)")
    yield name
    _encoding.use()


@pytest.fixture
def ipc_dir() -> Iterator[str]:
    """A short private directory for socket files (unix socket paths are limited)."""
    path = tempfile.mkdtemp(prefix="ekp-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """Where test plugins record what their symbols did."""
    return tmp_path


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A fresh directory with a short path: a unix socket path holds at most 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ek-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
