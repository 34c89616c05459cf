"""The linux/arm64 image, built here and run under qemu-user-static: the compose stack
boots healthy, the demo rule's reversed strings appear, and a drop-in plugin loads and
answers a rule."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator

import docker
import pytest

from tests.conftest import PLUGINS, REPO, skip_or_fail
from tests.e2e.conftest import _docker_ready
from tests.e2e.docker_target import DockerKuiperd
from tests.e2e.kuiper import free_port
from tests.e2e.scenarios import file_action, read_lines, stop_rule, uid
from tests.e2e.test_docker import HELLO_PY
from tests.protocol.events import wait_for

PLATFORM = "linux/arm64"
# Everything runs emulated, several times slower than native: generous deadlines.
EMULATED_S = 300


def _compose(project: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "compose", "-f", str(REPO / "compose.yaml"), "-p", project,
                           *args], capture_output=True, text=True, timeout=EMULATED_S)


@pytest.fixture(scope="module")
def arm64_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerKuiperd]:
    """`make image PLATFORM=linux/arm64`, then the compose stack on it with pysam + hello."""
    _docker_ready()
    emulation = subprocess.run([str(REPO / "scripts" / "emulation.sh"), PLATFORM],
                               capture_output=True, text=True)
    if emulation.returncode != 0:
        skip_or_fail(f"cannot run {PLATFORM} binaries here: {emulation.stderr.strip()}")
    plugins = tmp_path_factory.mktemp("arm64-plugins")
    shutil.copytree(PLUGINS / "pysam", plugins / "pysam",
                    ignore=shutil.ignore_patterns("__pycache__"))
    hello = plugins / "hello"
    hello.mkdir()
    (hello / "hello.py").write_text(HELLO_PY)
    (hello / "hello.json").write_text(json.dumps(
        {"version": "v1", "language": "python", "executable": "hello.py",
         "sources": [], "sinks": [], "functions": ["hello"]}))
    for path in [plugins, *plugins.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    image = f"ekuiper-slim-python:test-arm64-{os.getpid()}"
    build = subprocess.run(["make", "--no-print-directory", "image", f"PLATFORM={PLATFORM}",
                            f"IMAGE={image}"], cwd=REPO, capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"make image PLATFORM={PLATFORM} failed:\n{build.stdout[-3000:]}\n"
                    f"{build.stderr[-3000:]}")
    project, port = f"ekuipersdkarm{os.getpid()}", free_port()
    env = {**os.environ, "EKUIPER_REST_PORT": str(port), "EKUIPER_PLUGINS_DIR": str(plugins),
           "SLIM_PYTHON_IMAGE": image}
    try:
        up = subprocess.run(["docker", "compose", "-f", str(REPO / "compose.yaml"), "-p",
                             project, "up", "-d"], capture_output=True, text=True, env=env,
                            timeout=EMULATED_S)
        assert up.returncode == 0, up.stderr
        [container] = docker.from_env().containers.list(filters={"label": [
            f"com.docker.compose.project={project}", "com.docker.compose.service=ekuiper"]})
        stack = DockerKuiperd(container=container, rest_port=port, plugins_dir=plugins)
        stack.wait_healthy(timeout=EMULATED_S)
        yield stack
    finally:
        _compose(project, "down", "-v")
        subprocess.run(["docker", "image", "rm", image], capture_output=True)


def test_image_is_arm64_and_runs_aarch64(arm64_stack: DockerKuiperd) -> None:
    """The image says arm64 and its processes run as aarch64 (under emulation here)."""
    assert arm64_stack.container.image.attrs["Architecture"] == "arm64"
    code, out = arm64_stack.container.exec_run(["uname", "-m"])
    assert (code, out.decode().strip()) == (0, "aarch64")
    code, out = arm64_stack.container.exec_run(
        ["/opt/venv/bin/python", "-c", "import pynng, ekuiper; print(ekuiper.__version__)"])
    assert code == 0, out


def test_demo_rule_prints_reversed_strings_on_arm64(arm64_stack: DockerKuiperd) -> None:
    """The demo rule (pyjson -> revert -> print) shows reversed strings in the log."""
    wait_for(lambda: '"reversed":"nosjyp"' in arm64_stack.log(), timeout=EMULATED_S,
             what="reversed strings in the arm64 container log")


def test_dropin_plugin_loads_and_answers_on_arm64(arm64_stack: DockerKuiperd) -> None:
    """The drop-in plugin `hello` is installed at boot and its function feeds a rule."""
    assert "dropin: installed plugin 'hello'" in arm64_stack.log()
    stream, rule = uid("s_"), uid("r_")
    arm64_stack.create_stream(stream, "pyjson", uid("ds-"))
    out = arm64_stack.out_path(f"{rule}.txt")
    resp = arm64_stack.create_rule(rule, f"SELECT hello(name) AS h FROM {stream}",
                                   [file_action(out)])
    assert resp.status in (200, 201), resp
    arm64_stack.wait_status(
        rule, lambda s: s.get(f"source_{stream}_0_records_in_total", 0) >= 2,
        timeout=EMULATED_S)
    stop_rule(arm64_stack, rule)
    assert {row["h"] for row in read_lines(arm64_stack, out, timeout=60)} == {"hello pyjson"}
