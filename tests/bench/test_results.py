"""Recorded benchmark results name no host: no URL in any file under bench/results."""

from __future__ import annotations

import re

import pytest

from bench.report import without_urls
from tests.conftest import REPO

RESULTS = REPO / "bench" / "results"
URL = re.compile(rb"[a-zA-Z][a-zA-Z0-9+.-]*://")


@pytest.mark.parametrize("path", sorted(p for p in RESULTS.rglob("*") if p.is_file()),
                         ids=lambda p: str(p.relative_to(RESULTS)))
def test_recorded_result_holds_no_url(path) -> None:  # type: ignore[no-untyped-def]
    """A results file (JSON, profile, plot) holds no scheme://, so it names no host."""
    found = URL.search(path.read_bytes())
    assert found is None, f"{path.name} holds a URL at byte {found.start()}"


def test_results_exist() -> None:
    """There are recorded results to check (the test above is not vacuous)."""
    assert any(RESULTS.glob("*.json"))


def test_error_texts_lose_their_urls() -> None:
    """Nested strings have each URL cut to <url>; other values are kept."""
    recorded = {"go": {"reason": "reading https://example.org/a/@v/x.info: 403"},
                "errors": ["GET http://10.0.0.1:9/x failed", 3], "n": 1.5}
    assert without_urls(recorded) == {"go": {"reason": "reading <url> 403"},
                                      "errors": ["GET <url> failed", 3], "n": 1.5}
