"""Fixtures that run a real kuiperd (built from the pinned eKuiper version, cached)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import PLUGINS, REPO, TEST_PLUGINS, skip_or_fail
from tests.e2e.docker_target import DockerKuiperd
from tests.e2e.kuiper import (
    DEFAULT_VERSION,
    Kuiperd,
    KuiperdUnavailable,
    KuiperREST,
    free_port,
    kuiperd_dist,
)
from tests.e2e.metered import CONTAINER_DIR, HEALTH_LIMIT_S, Metered

_dists: dict[str, Path] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


def dist_for(version: str) -> Path:
    """The kuiperd build for ``version``; skip (fail under CI) if none can be had."""
    if version not in _dists:
        if not shutil.which("go") and not shutil.which("docker"):
            cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            if not (cache / "ekuiper-sdk" / "kuiperd" / version / "bin" / "kuiperd").exists():
                skip_or_fail(f"no kuiperd {version}: install Go (or Docker) so "
                             "scripts/kuiperd.sh can build it")
        try:
            _dists[version] = kuiperd_dist(version)
        except KuiperdUnavailable as exc:
            skip_or_fail(str(exc))
    return _dists[version]


BootKuiperd = Callable[..., Kuiperd]


@pytest.fixture
def boot_kuiperd(request: pytest.FixtureRequest) -> Iterator[BootKuiperd]:
    """Boot a kuiperd in a fresh home; on teardown stop it and check nothing is left.

    ``boot_kuiperd(version=..., drop_in=[plugin dirs], env={...})`` returns a running
    Kuiperd. Teardown asserts that no plugin process of its home survives and that no
    socket file a plugin sink listened on remains in /tmp (the source and ack sockets are
    eKuiper's own; 1.x leaves them behind); kuiperd's log is printed when the test failed.
    """
    started: list[Kuiperd] = []
    homes: list[str] = []

    def boot(version: str = DEFAULT_VERSION, drop_in: tuple[Path, ...] = (),
             env: dict[str, str] | None = None, wrapper: list[str] | None = None,
             home_parent: str | None = None) -> Kuiperd:
        dist = dist_for(version)
        home = tempfile.mkdtemp(prefix="kuiper-home-", dir=home_parent)
        homes.append(home)
        kuiperd = Kuiperd(version, Path(home), dist, env=dict(env or {}),
                          wrapper=list(wrapper or []))
        kuiperd.lay_out()
        for plugin_dir in drop_in:
            kuiperd.drop_in(plugin_dir)
        started.append(kuiperd)
        kuiperd.start()
        return kuiperd

    yield boot

    failures = []
    for kuiperd in started:
        kuiperd.stop()
        deadline = time.monotonic() + 3
        while kuiperd.plugin_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        if kuiperd.plugin_pids():
            failures.append(f"plugin processes left behind: {kuiperd.plugin_pids()}")
        left = [p.name for p in kuiperd.sink_sockets if p.exists()]
        if left:
            failures.append(f"sink socket files left behind: {left}")
    report = getattr(request.node, "rep_call", None)
    if (report is not None and report.failed) or failures:
        for kuiperd in started:
            print(f"--- kuiperd {kuiperd.version} log ({kuiperd.log_path}) ---")
            print(kuiperd.log()[-20000:])
    for kuiperd in started:
        for pid in kuiperd.plugin_pids():
            os.kill(pid, 9)
    for home in homes:
        shutil.rmtree(home, ignore_errors=True)
    assert not failures, failures


# -- targets: the same scenarios natively and in the compose stack --------------------

PYSAM = PLUGINS / "pysam"
TESTPLUG = TEST_PLUGINS / "testplug"
V1_VERSION = "v" + os.environ.get("EKUIPER_V1_VERSION", "v1.14.7").lstrip("v")
NATIVE = ("native", DEFAULT_VERSION)
NATIVE_V1 = ("native", V1_VERSION)
DOCKER = ("docker", DEFAULT_VERSION)


def targets(*which: tuple[str, str]) -> pytest.MarkDecorator:
    """Parametrize a test's ``kuiper`` fixture over targets (native/docker, version)."""
    return pytest.mark.parametrize("kuiper", which, indirect=True,
                                   ids=[f"{t}-{v}" for t, v in which])


@pytest.fixture
def kuiper(request: pytest.FixtureRequest, boot_kuiperd: BootKuiperd,
           tmp_path: Path) -> Iterator[KuiperREST]:
    """An eKuiper with pysam and testplug installed, on the target the test asks for."""
    target, version = request.param
    if target == "docker":
        stack: DockerKuiperd = request.getfixturevalue("docker_stack")
        yield stack
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"--- container log ---\n{stack.log()[-20000:]}")
        return
    yield boot_kuiperd(version, drop_in=(PYSAM, TESTPLUG), env={"TESTPLUG_OUT": str(tmp_path)})


def _docker_ready() -> None:
    if not shutil.which("docker"):
        skip_or_fail("no docker CLI; install Docker to run the container tests")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        skip_or_fail("no Docker engine answers (is dockerd running?)")
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        skip_or_fail("`docker compose` (Compose v2) is missing; scripts/compose.sh installs it")


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(REPO / "compose.yaml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"ekuipersdktest{os.getpid()}"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # The image is built by `make image` first (the wheelhouse must exist), so no --build.
    return ["up -d"]


@pytest.fixture(scope="session")
def docker_stack(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerKuiperd]:
    """`make image`, then `docker compose up` with pysam, testplug and a broken folder."""
    _docker_ready()
    plugins = tmp_path_factory.mktemp("dropin-plugins")
    for plugin in (PYSAM, TESTPLUG):
        shutil.copytree(plugin, plugins / plugin.name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (plugins / "notaplugin").mkdir()
    (plugins / "notaplugin" / "README").write_text("no descriptor here\n")
    # pytest's temp dirs are private; the container reads them as uid 1001.
    for path in [plugins, *plugins.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    image = f"ekuiper-slim-python:test-{os.getpid()}"
    build = subprocess.run(["make", "--no-print-directory", "image", f"IMAGE={image}"],
                           cwd=REPO, capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"make image failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}")
    port = free_port()
    saved = {k: os.environ.get(k) for k in
             ("EKUIPER_REST_PORT", "EKUIPER_PLUGINS_DIR", "SLIM_PYTHON_IMAGE",
              "EKUIPER_PLUGIN_HEALTH_STUCK_S", "EKUIPER_PLUGIN_HEALTH_BLOCKED_S")}
    # Short stuck and blocked limits let test_plugin_metrics see a slow sink or function
    # stuck and a source blocked (health only).
    os.environ.update(EKUIPER_REST_PORT=str(port), EKUIPER_PLUGINS_DIR=str(plugins),
                      SLIM_PYTHON_IMAGE=image, EKUIPER_PLUGIN_HEALTH_STUCK_S=HEALTH_LIMIT_S,
                      EKUIPER_PLUGIN_HEALTH_BLOCKED_S=HEALTH_LIMIT_S)
    project = request.getfixturevalue("docker_compose_project_name")
    # At the very end of the session, after pytest-docker's `compose down`: remove the
    # per-session tag only (its layers stay cached for the next build).
    request.config.add_cleanup(lambda: subprocess.run(["docker", "image", "rm", image],
                                                      capture_output=True))
    try:
        try:
            request.getfixturevalue("docker_services")
        except BaseException:
            # pytest-docker only cleans up after a successful `up`; leave nothing behind.
            subprocess.run(["docker", "compose", "-f", str(REPO / "compose.yaml"), "-p", project,
                            "down", "-v"], capture_output=True)
            raise
        client = docker.from_env()
        [container] = client.containers.list(filters={"label": [
            f"com.docker.compose.project={project}", "com.docker.compose.service=ekuiper"]})
        stack = DockerKuiperd(container=container, rest_port=port, plugins_dir=plugins)
        stack.wait_healthy()
        yield stack
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(params=["native", "docker"])
def metered(request: pytest.FixtureRequest, boot_kuiperd: BootKuiperd,
            tmp_path: Path) -> Iterator[Metered]:
    """An eKuiper with testplug whose plugins export metrics, native and in compose."""
    if request.param == "docker":
        stack: DockerKuiperd = request.getfixturevalue("docker_stack")
        yield Metered(stack, CONTAINER_DIR, stack.container)
        return
    directory = tempfile.mkdtemp(prefix="ekm-")  # short: socket paths hold 107 bytes
    kuiperd = boot_kuiperd(drop_in=(TESTPLUG,), env={
        "TESTPLUG_OUT": str(tmp_path), "EKUIPER_PLUGIN_METRICS_DIR": directory,
        "EKUIPER_PLUGIN_HEALTH_STUCK_S": HEALTH_LIMIT_S,
        "EKUIPER_PLUGIN_HEALTH_BLOCKED_S": HEALTH_LIMIT_S})
    yield Metered(kuiperd, directory)
    kuiperd.stop()
    shutil.rmtree(directory, ignore_errors=True)
