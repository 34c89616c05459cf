"""deploy/helm/values-slim-python.yaml: eKuiper's own chart, rendered and linted by helm with
these values, runs the derived image as the image expects (user, Python, plugin path, probe).

The chart is read from the eKuiper Go module (scripts/helm.sh chart), as eKuiper ships it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy import manifests as m
from tests.deploy.conftest import Helm


@pytest.fixture(scope="module")
def rendered(helm: Helm, ekuiper_chart: Path) -> list[m.Obj]:
    return m.load_documents(helm.template(ekuiper_chart, "-f", str(m.VALUES)))


@pytest.fixture(scope="module")
def values() -> m.Obj:
    [loaded] = m.load_file(m.VALUES)
    return loaded


def _container(rendered: list[m.Obj]) -> m.Obj:
    return m.main_container(m.pod_spec(m.one(rendered, "StatefulSet")))


def _slim() -> str:
    return m.SLIM_DOCKERFILE.read_text()


def test_chart_lints_clean_with_the_values(helm: Helm, ekuiper_chart: Path) -> None:
    """`helm lint` with the values reports no error and no warning."""
    result = helm.run("lint", str(ekuiper_chart), "-f", str(m.VALUES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"\[(ERROR|WARNING)\]", result.stdout), result.stdout


def test_chart_runs_the_derived_image(rendered: list[m.Obj], values: m.Obj) -> None:
    """The pod runs the image of deploy/Dockerfile.plugins, at the eKuiper version we ship."""
    image = _container(rendered)["image"]
    assert image == f"{values['image']['repository']}:{values['image']['tag']}"
    documented = re.findall(r"-t (\S+) \.", m.PLUGINS_DOCKERFILE.read_text())
    assert documented == [image]
    assert image.rsplit(":", 1)[1] == m.compose_image().rsplit(":", 1)[1]


def test_chart_command_runs_the_shim(rendered: list[m.Obj]) -> None:
    """The chart's own command ends by running the path the derived image's shim holds."""
    command = _container(rendered)["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    started = [line for line in command[2].splitlines() if line.strip()][-1].split()
    [installed] = re.findall(r"install\b[^&]*kuiperd-dropin\.sh\s+(\S+)",
                             m.PLUGINS_DOCKERFILE.read_text())
    assert started == [installed]


def test_chart_plugins_volume_leaves_the_dropin_folder(rendered: list[m.Obj]) -> None:
    """plugins/ is the chart's volume; the folder installed from is the image's, outside it."""
    container = _container(rendered)
    source = m.image_env(_slim())["EKUIPER_DROPIN_PLUGINS"]
    assert m.env(container)["EKUIPER_DROPIN_PLUGINS"] == source
    assert "/kuiper/plugins" in m.mounts(container)
    assert not [path for path in m.mounts(container) if m.under(source, path)]


def test_chart_probe_requests_the_image_healthcheck(rendered: list[m.Obj]) -> None:
    """The chart's readiness probe asks what the image's HEALTHCHECK asks."""
    container = _container(rendered)
    path, port = m.healthcheck(_slim())
    request = container["readinessProbe"]["httpGet"]
    assert (request.get("path", "/"), m.port_number(container, request["port"])) == (path, port)


def test_chart_runs_as_the_image_user(rendered: list[m.Obj]) -> None:
    """uid, gid and fsGroup are the image's kuiper user; no capabilities or escalation."""
    spec = m.pod_spec(m.one(rendered, "StatefulSet"))
    container = m.main_container(spec)
    uid = m.image_uid(_slim())
    assert spec["securityContext"]["fsGroup"] == uid
    for key in ("runAsUser", "runAsGroup"):
        assert m.effective(spec, container, key) == uid, key
    assert m.effective(spec, container, "runAsNonRoot") is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_chart_config_runs_plugins_with_the_image_python(rendered: list[m.Obj]) -> None:
    """The chart's kuiper.yaml names the image's Python, logs to stdout and serves REST."""
    [config] = m.load_documents(m.one(rendered, "ConfigMap")["data"]["kuiper.yaml"])
    python = m.image_env(_slim())["KUIPER__PORTABLE__PYTHONBIN"]
    _, port = m.healthcheck(_slim())
    assert config["portable"]["pythonBin"] == python
    assert config["basic"]["consoleLog"] is True
    assert (config["basic"]["restIp"], config["basic"]["restPort"]) == ("0.0.0.0", port)


def test_chart_sets_requests_and_limits(rendered: list[m.Obj]) -> None:
    """The container states the CPU and memory it requests and may use."""
    resources = _container(rendered)["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}, kind
