"""The rendered pods, run with Docker as a kubelet would run them (tests/deploy/pod.py), with
the derived image of deploy/Dockerfile.plugins built on this checkout's slim-python image:
the baked-in plugin is installed into an empty plugins volume, as uid 1001, and runs.

Needs a Docker engine (skipped without one, a failure under CI); `make image` and the
derived build are cached layers after the first run, each pod boots in a few seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, skip_or_fail
from tests.deploy import manifests as m
from tests.deploy.conftest import Helm
from tests.deploy.pod import DockerPod

pytestmark = pytest.mark.e2e

TAG = f"deploy-test-{os.getpid()}"


@pytest.fixture(scope="module")
def plugins_image(request: pytest.FixtureRequest) -> str:
    """deploy/Dockerfile.plugins (plugins/ baked in) on the slim-python image of this checkout."""
    if not shutil.which("docker"):
        skip_or_fail("no docker CLI; install Docker to run the pod tests")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        skip_or_fail("no Docker engine answers (is dockerd running?)")
    base, derived = f"ekuiper-slim-python:{TAG}", f"ekuiper-slim-python-plugins:{TAG}"
    # Only the tags go; the layers stay cached for the next run.
    request.addfinalizer(lambda: subprocess.run(["docker", "image", "rm", derived, base],
                                                capture_output=True))
    for command in (["make", "--no-print-directory", "image", f"IMAGE={base}"],
                    ["docker", "build", "-q", "-f", str(m.PLUGINS_DOCKERFILE),
                     "--build-arg", f"BASE_IMAGE={base}", "-t", derived, "."]):
        built = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800,
                               env={**os.environ, "DOCKER_BUILDKIT": "0"})
        if built.returncode != 0:
            pytest.fail(f"{' '.join(command[:3])} failed:\n{built.stdout[-3000:]}"
                        f"\n{built.stderr[-3000:]}")
    return derived


def _run(objects: list[m.Obj], image: str, name: str, workdir: Path,
         request: pytest.FixtureRequest) -> DockerPod:
    pod = DockerPod(objects, m.one(objects, "StatefulSet"), image, f"{name}-{os.getpid()}",
                    workdir)
    request.addfinalizer(pod.remove)
    try:
        pod.start()
        pod.wait_ready()
    except BaseException:
        print(f"--- {name} log ---\n{pod.logs()[-20000:]}")
        raise
    return pod


@pytest.fixture(scope="module")
def manifest_pod(plugins_image: str, request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerPod]:
    """deploy/kubernetes's pod (init container, read-only root, empty volumes) with the image."""
    yield _run(m.manifests(), plugins_image, "ekp-k8s", tmp_path_factory.mktemp("k8s"), request)


def _portables(pod: DockerPod) -> list[str]:
    return sorted(p["name"] for p in pod.rest("GET", "/plugins/portables"))


def _baked() -> list[str]:
    return sorted(p.name for p in (REPO / "plugins").iterdir() if (p / f"{p.name}.json").is_file())


def test_manifest_pod_installs_the_baked_plugins(manifest_pod: DockerPod) -> None:
    """Every plugin folder baked into the image is an installed portable plugin."""
    assert _portables(manifest_pod) == _baked()


def test_manifest_pod_runs_a_plugin_rule(manifest_pod: DockerPod) -> None:
    """A rule through the plugin's source, function and sink works on the read-only root."""
    prefix = f"deploytest{os.getpid()}"
    manifest_pod.rest("POST", "/streams", {"sql": (
        'CREATE STREAM k8s () WITH (TYPE="pyjson", DATASOURCE="k8s", FORMAT="json")')})
    manifest_pod.rest("POST", "/rules", {
        "id": "k8s", "sql": "SELECT revert(name) AS reversed FROM k8s",
        "actions": [{"print": {"prefix": prefix}}]})
    deadline = time.monotonic() + 30
    while f'{prefix}: [{{"reversed":"nosjyp"}}]' not in manifest_pod.logs():
        assert time.monotonic() < deadline, manifest_pod.logs()[-5000:]
        time.sleep(0.3)


def test_manifest_pod_stops_on_sigterm(plugins_image: str, request: pytest.FixtureRequest,
                                       tmp_path: Path) -> None:
    """SIGTERM reaches kuiperd (process 1 through the entrypoint): it ends cleanly, at once."""
    pod = _run(m.manifests(), plugins_image, "ekp-k8s-stop", tmp_path, request)
    code, took = pod.stop()
    assert (code, took < 10) == (0, True), f"exit {code} after {took:.1f} s\n{pod.logs()[-3000:]}"


def test_chart_pod_installs_the_baked_plugins(plugins_image: str, helm: Helm,
                                              ekuiper_chart: Path, request: pytest.FixtureRequest,
                                              tmp_path: Path) -> None:
    """eKuiper's chart with our values: its own command still installs the baked plugins."""
    repository, tag = plugins_image.rsplit(":", 1)
    objects = m.load_documents(helm.template(
        ekuiper_chart, "-f", str(m.VALUES), "--set", f"image.repository={repository}",
        "--set", f"image.tag={tag}"))
    pod = _run(objects, plugins_image, "ekp-chart", tmp_path, request)
    assert _portables(pod) == _baked()
