"""The numpy example plugin (examples/anomaly), packaged with its wheels, installed over
REST with no index reachable, scoring a series with spikes in a rule.

Natively, kuiperd (and so install.sh) runs with pip's index and every proxy pointed at a
port of this test that counts connections: the install must make none. The same
environment makes pip without --no-index reach that port (checked after, so the trap is
known to work).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.e2e.conftest import DOCKER, NATIVE, BootKuiperd
from tests.e2e.kuiper import Kuiperd, KuiperREST
from tests.e2e.scenarios import file_action, read_lines, stop_rule, uid
from tests.pip_trap import PipTrap
from tests.protocol.events import wait_for

EXAMPLE = REPO / "examples" / "anomaly"
HOST_PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
IMAGE_PY = "3.11"  # what images/Dockerfile.slim-python runs
# A slow wave, with spikes where the rule must flag them and nowhere else.
SPIKES = {17, 41}
SERIES = [30.0 if i in SPIKES else round(10 + 0.5 * math.sin(i / 2), 3) for i in range(60)]
WINDOW = 20
THRESHOLD = 6.0




@pytest.fixture
def target(request: pytest.FixtureRequest, boot_kuiperd: BootKuiperd,
           trap: PipTrap) -> Iterator[KuiperREST]:
    """kuiperd natively with the trap in its environment, or the compose stack."""
    kind, version = request.param
    if kind == "docker":
        yield request.getfixturevalue("docker_stack")
        return
    yield boot_kuiperd(version, env=trap.overrides())


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ekuiper._cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def _installed(kuiper: KuiperREST, rel: str) -> str:
    """A path inside the installed plugin folder, as the server sees it."""
    home = str(kuiper.home) if isinstance(kuiper, Kuiperd) else "/kuiper"
    return f"{home}/plugins/portable/anomaly/{rel}"


def _pip_words(script: str) -> list[str]:
    """The words of install.sh's pip command (its continued lines joined)."""
    [line] = [line for line in script.replace("\\\n", " ").splitlines()
              if " -m pip install " in line]
    return shlex.split(line.replace('"', ""))


def _scores(kuiper: KuiperREST) -> list[dict[str, Any]]:
    """The rule's rows for SERIES, fed by eKuiper's simulator source."""
    key, stream, rule = uid("spikes"), uid("s_"), uid("r_")
    rows = [{"i": i, "v": v} for i, v in enumerate(SERIES)]
    conf = kuiper.put(f"/metadata/sources/simulator/confKeys/{key}",
                      {"data": rows, "interval": "10ms", "loop": False})
    assert conf.status == 200, conf
    out = kuiper.out_path(f"{rule}.txt")
    try:
        kuiper.create_stream(stream, "simulator", uid("ds-"), f', CONF_KEY="{key}"')
        resp = kuiper.create_rule(
            rule, f"SELECT i, v, anomaly_score(v, {WINDOW}) AS score FROM {stream}",
            [file_action(out)])
        assert resp.status in (200, 201), resp
        kuiper.wait_status(rule, lambda s: s.get("sink_file_0_0_records_in_total", 0)
                           >= len(SERIES), timeout=60)
        stop_rule(kuiper, rule)
        return read_lines(kuiper, out)
    finally:
        kuiper.delete(f"/rules/{rule}")
        kuiper.delete(f"/streams/{stream}")
        kuiper.delete(f"/metadata/sources/simulator/confKeys/{key}")


@pytest.mark.parametrize("target", [NATIVE, DOCKER], indirect=True,
                         ids=[f"{t}-{v}" for t, v in (NATIVE, DOCKER)])
def test_anomaly_plugin_installs_offline_and_flags_the_spikes(target: KuiperREST, trap: PipTrap,
                                                               tmp_path: Path) -> None:
    """Packed with numpy's wheels, installed with no index reached; spikes flagged, only."""
    native = isinstance(target, Kuiperd)
    python = HOST_PY if native else IMAGE_PY
    archive = tmp_path / "anomaly.zip"
    started = time.monotonic()
    packaged = cli("package", str(EXAMPLE), "-o", str(archive), "--bundle-wheels",
                   "--python-version", python, cwd=tmp_path)
    package_s = time.monotonic() - started
    assert packaged.returncode == 0, packaged.stderr
    names = zipfile.ZipFile(archive).namelist()
    for machine in ("x86_64", "aarch64"):
        assert [n for n in names if re.fullmatch(
            rf"wheels/{machine}/numpy-2\.2\.6-cp3\d+-cp3\d+-manylinux.*_{machine}\.whl", n)]
    shell = sys.executable if native else "/opt/venv/bin/python"
    started = time.monotonic()
    installed = cli("install", str(archive), "--server", target.base_url, "--shell-para", shell,
                    cwd=tmp_path)
    install_s = time.monotonic() - started
    assert installed.returncode == 0, installed.stderr
    try:
        print(f"zip {archive.stat().st_size} bytes, package {package_s:.1f} s, "
              f"install {install_s:.1f} s")
        script = target.read_text(_installed(target, "install.sh"))
        assert script is not None
        assert {"--no-index", "--isolated"} <= set(_pip_words(script))
        assert target.read_text(_installed(target, ".deps/numpy/version.py")) is not None
        rows = _scores(target)
        assert [row["i"] for row in rows] == list(range(len(SERIES)))
        flagged = {row["i"] for row in rows
                   if row.get("score") is not None and abs(row["score"]) > THRESHOLD}
        assert flagged == SPIKES, rows
        assert all(row.get("score") is None for row in rows[:5])
    finally:
        removed = cli("remove", "anomaly", "--server", target.base_url, cwd=tmp_path)
        wait_for(lambda: not target.plugin_pids("anomaly"), timeout=10, what="anomaly exit")
    assert removed.returncode == 0, removed.stderr
    if native:
        assert "PIP_NO_INDEX" not in target.boot_env
        assert trap.hits == 0, "install.sh reached an index or proxy"
        # The trap works: pip without --no-index, in the same environment, reaches it.
        env = {**os.environ, **trap.env()}
        online = subprocess.run([sys.executable, "-m", "pip", "download", "--isolated",
                                 "--retries", "0", "--timeout", "3", "-d", str(tmp_path / "dl"),
                                 "numpy==2.2.6"], capture_output=True, text=True, env=env,
                                timeout=120)
        assert online.returncode != 0 and trap.hits > 0, online.stdout + online.stderr
