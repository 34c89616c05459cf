"""scripts/image.sh (`make image`) and `make up` say what is missing and how to get it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

TOOLS = ("bash", "dirname", "uname", "sed", "grep", "id", "timeout", "cat", "env", "make")
IMAGE_ENV = {"IMAGE": "t:1", "EKUIPER_IMAGE": "lfedge/ekuiper:2.4.2-slim",
             "PYTHON_IMAGE": "python:3.11-slim-bookworm", "EKUIPER_VERSION": "v2.4.2"}


def _bin(tmp_path: Path, docker: str | None) -> Path:
    """A PATH folder with the basic tools and, if given, a fake `docker` script."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (folder / tool).symlink_to(found)
    if docker is not None:
        (folder / "docker").write_text("#!/bin/bash\n" + docker)
        (folder / "docker").chmod(0o755)
    return folder


def _run(command: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**IMAGE_ENV, "PATH": str(folder), "HOME": str(folder)})


def test_missing_docker_says_how_to_install_it(tmp_path: Path) -> None:
    """Without a docker command, image.sh names it and how to install Docker Engine."""
    result = _run(["scripts/image.sh"], _bin(tmp_path, None))
    assert result.returncode == 1
    assert "the docker command is missing: install Docker Engine" in result.stderr


@pytest.mark.parametrize(("info_error", "advice"), [
    ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock",
     "no Docker engine answers: start it"),
    ("permission denied while trying to connect to the Docker daemon socket",
     "add yourself to the docker group"),
])
def test_engine_that_does_not_answer_is_named(tmp_path: Path, info_error: str,
                                              advice: str) -> None:
    """A docker whose engine does not answer gets the matching advice, nothing built."""
    fake = (f'[ "$1" = info ] && {{ echo "{info_error}" >&2; exit 1; }}\n'
            'echo "$@" >> "$HOME/calls"\n')
    folder = _bin(tmp_path, fake)
    result = _run(["scripts/image.sh"], folder)
    assert result.returncode == 1
    assert advice in result.stderr
    assert not (folder / "calls").exists()


def test_unpullable_override_is_named(tmp_path: Path) -> None:
    """A base image set by the user that is neither here nor pullable stops with its name."""
    fake = 'case "$1" in info) exit 0 ;; *) exit 1 ;; esac\n'
    folder = _bin(tmp_path, fake)
    result = subprocess.run(["scripts/image.sh"], cwd=REPO, capture_output=True, text=True,
                            env={**IMAGE_ENV, "EKUIPER_IMAGE": "registry.invalid/mine:1",
                                 "PATH": str(folder), "HOME": str(folder)}, timeout=60)
    assert result.returncode == 1
    assert "base image registry.invalid/mine:1 is neither here nor pullable" in result.stderr


def test_make_up_without_compose_says_how_to_get_it(tmp_path: Path) -> None:
    """`make up` where `docker compose` is missing names Compose v2 and scripts/compose.sh."""
    fake = '[ "$1" = compose ] && { echo "unknown command: compose" >&2; exit 1; }\nexit 0\n'
    result = _run(["make", "--no-print-directory", "up"], _bin(tmp_path, fake))
    assert result.returncode != 0
    assert "Compose v2 ('docker compose') is missing" in result.stderr
    assert "scripts/compose.sh" in result.stderr


def test_unknown_platform_is_refused_with_the_choices(tmp_path: Path) -> None:
    """PLATFORM=linux/arm/v7 is refused naming the platforms that work, and why not v7."""
    fake = "exit 0\n"
    result = subprocess.run(["scripts/image.sh"], cwd=REPO, capture_output=True, text=True,
                            env={**IMAGE_ENV, "PLATFORM": "linux/arm/v7",
                                 "PATH": str(_bin(tmp_path, fake)), "HOME": str(tmp_path)},
                            timeout=60)
    assert result.returncode == 1
    assert "use linux/amd64 or linux/arm64" in result.stderr
