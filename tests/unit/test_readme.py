"""The README's code that claims to run does run."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from tests.conftest import REPO

README = REPO / "README.md"
# What the README's blocks use without importing it: a reader's module would import these.
PRELUDE = """\
import asyncio
import threading
from dataclasses import dataclass
from typing import Annotated
from ekuiper import Context, Source
from ekuiper.testing import run_source
"""


def _block_after(heading: str) -> str:
    """The first ```python block under ``heading``."""
    text = README.read_text()
    section = text[text.index(heading):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, f"no python block under {heading!r}"
    return match.group(1)


def test_typed_async_stateful_ticks_runs_as_shown(tmp_path: Path) -> None:
    """The "All three at once" block runs: converted conf, async open, state going on."""
    script = tmp_path / "readme_ticks.py"
    script.write_text(PRELUDE + _block_after("### All three at once"))
    # As a module of its own (dataclasses look their module up); its assert checks.
    runpy.run_path(str(script), run_name="readme_ticks")
