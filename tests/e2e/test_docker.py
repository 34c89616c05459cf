"""What only the container distribution has: image contract, drop-in folder, demo rule."""

from __future__ import annotations

import json

from tests.e2e.docker_target import DockerKuiperd
from tests.e2e.kuiper import DEFAULT_VERSION
from tests.protocol.events import wait_for

HELLO_PY = '''
from ekuiper import Function, PluginConfig, plugin


class Hello(Function):
    def exec(self, args, ctx):
        return "hello " + str(args[0])


if __name__ == "__main__":
    plugin.start(PluginConfig("hello", {}, {}, {"hello": Hello}))
'''


def test_image_runs_as_non_root(docker_stack: DockerKuiperd) -> None:
    """eKuiper and its plugins run as the kuiper user (uid 1001), not root."""
    code, out = docker_stack.container.exec_run(["id", "-u"])
    assert (code, out.decode().strip()) == (0, "1001")


def test_image_labels_name_versions(docker_stack: DockerKuiperd) -> None:
    """OCI labels carry the eKuiper, SDK, Python and pynng versions."""
    labels = docker_stack.container.image.labels
    assert labels["io.ekuiper.version"] == DEFAULT_VERSION.lstrip("v")
    assert labels["io.ekuiper.python.version"] == "3.11"
    assert labels["io.ekuiper.pynng.version"] == "0.9.0"
    assert labels["io.ekuiper.sdk.version"] == "0.1.0"


def test_image_has_healthcheck_and_python_bin(docker_stack: DockerKuiperd) -> None:
    """The image declares a REST healthcheck and points portable.pythonBin at its venv."""
    config = docker_stack.container.image.attrs["Config"]
    assert "http://127.0.0.1:9081/" in " ".join(config["Healthcheck"]["Test"])
    assert "KUIPER__PORTABLE__PYTHONBIN=/opt/venv/bin/python" in config["Env"]
    assert set(config["Volumes"]) == {"/kuiper/etc", "/kuiper/data", "/kuiper/plugins",
                                      "/kuiper/log"}


def test_installed_packages_are_the_locked_ones(docker_stack: DockerKuiperd) -> None:
    """The venv holds exactly the hash-locked dependencies plus this SDK."""
    code, out = docker_stack.container.exec_run(
        ["/opt/venv/bin/pip", "list", "--format", "json", "--exclude", "pip",
         "--exclude", "setuptools"])
    assert code == 0, out
    installed = {p["name"].lower(): p["version"] for p in json.loads(out)}
    assert installed == {"cffi": "2.1.1", "orjson": "3.13.0", "pycparser": "3.12",
                         "pynng": "0.9.0", "sniffio": "1.3.1", "ekuiper-plugin-sdk": "0.1.0"}


def test_demo_rule_prints_reversed_strings(docker_stack: DockerKuiperd) -> None:
    """The compose demo rule (pyjson -> revert -> print) shows reversed strings in the log."""
    wait_for(lambda: '"reversed":"nosjyp"' in docker_stack.log(), timeout=60,
             what="reversed strings in the container log")
    assert docker_stack.rule_status("demo")["status"] == "running"


def test_invalid_folder_is_reported_and_skipped(docker_stack: DockerKuiperd) -> None:
    """A folder without a descriptor is named in the log and not installed."""
    assert ("dropin: skipped 'notaplugin': no notaplugin/notaplugin.json"
            in docker_stack.log())
    names = [p["name"] for p in docker_stack.get("/plugins/portables").body]
    assert "notaplugin" not in names


def test_added_folder_is_loaded_after_restart(docker_stack: DockerKuiperd,
                                              docker_services: object) -> None:
    """A plugin folder added to plugins/ is running after `docker compose restart`, and
    the restart's SIGTERM closed the demo rule's source exactly once."""
    closing = "[pysam/pyjson rule=demo op=demo/0] pyjson closing"
    assert docker_stack.log().count(closing) == 0
    hello = docker_stack.plugins_dir / "hello"
    hello.mkdir()
    (hello / "hello.py").write_text(HELLO_PY)
    (hello / "hello.json").write_text(json.dumps(
        {"version": "v1", "language": "python", "executable": "hello.py",
         "sources": [], "sinks": [], "functions": ["hello"]}))
    docker_services._docker_compose.execute("restart ekuiper")  # type: ignore[attr-defined]
    docker_stack.wait_healthy()
    wait_for(lambda: docker_stack.plugin_status("hello")["status"] == "running",
             what="hello running")
    assert "dropin: installed plugin 'hello'" in docker_stack.log()
    assert docker_stack.log().count(closing) == 1
