"""Fixtures for the deploy tests: PyYAML, helm and eKuiper's chart (both from the Go module
proxy through scripts/helm.sh, cached), helm isolated from the user's own configuration."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, skip_or_fail
from tests.deploy.manifests import compose_image

HELM_SCRIPT = REPO / "scripts" / "helm.sh"
# The chart shipped with the eKuiper the image runs (compose.yaml's default tag), unless
# EKUIPER_CHART_VERSION names another eKuiper release.
CHART_VERSION = "v" + os.environ.get(
    "EKUIPER_CHART_VERSION", compose_image().rsplit(":", 1)[1]).lstrip("v")


@pytest.fixture(autouse=True, scope="session")
def _pyyaml() -> None:
    if importlib.util.find_spec("yaml") is None:
        skip_or_fail("PyYAML is missing: add pyyaml to the dev extras (sdk[dev]) or "
                     "pip install pyyaml into the venv")


def _script(*args: str) -> Path:
    """The path scripts/helm.sh prints last; a missing Go is a skip (a failure under CI)."""
    result = subprocess.run(["bash", str(HELM_SCRIPT), *args], capture_output=True, text=True,
                            timeout=1800)
    if result.returncode != 0:
        command = " ".join(["scripts/helm.sh", *args])
        if shutil.which("go") is None:
            skip_or_fail(f"{command} needs Go: {result.stderr.strip()}")
        pytest.fail(f"{command} failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Helm:
    """The helm binary with homes of its own, so no user's repositories or plugins count."""

    binary: Path
    home: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        homes = {f"HELM_{kind}_HOME": str(self.home / kind.lower())
                 for kind in ("CACHE", "CONFIG", "DATA")}
        return subprocess.run([str(self.binary), *args], capture_output=True, text=True,
                              timeout=60, env={**os.environ, **homes})

    def template(self, chart: Path, *args: str) -> str:
        result = self.run("template", "ekuiper", str(chart), "--namespace", "default", *args)
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        return result.stdout


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    """helm v3, built once from the Go module proxy into the ekuiper-sdk cache."""
    yield Helm(_script(), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def ekuiper_chart() -> Path:
    """eKuiper's own chart, read from the eKuiper Go module (Go's module cache)."""
    return _script("chart", CHART_VERSION)
