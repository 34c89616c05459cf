"""tests/deploy/pod.py's translation of a pod spec into `docker run` arguments: it runs what
the kubelet would run, and refuses what it cannot emulate rather than dropping it."""

from __future__ import annotations

import pytest

from tests.deploy.pod import Source, Unsupported, docker_run_args

SECURE = {"runAsNonRoot": True, "runAsUser": 1001, "runAsGroup": 1001}


def _spec(**container: object) -> tuple[dict, dict]:
    main = {"name": "main", "image": "ignored", **container}
    return {"securityContext": {**SECURE, "fsGroup": 1001}, "containers": [main]}, main


def test_command_replaces_entrypoint_and_cmd() -> None:
    """command[0] is the entrypoint, the rest and args follow the image; the image's CMD goes."""
    spec, main = _spec(command=["/bin/sh", "-c"], args=["echo hi"])
    args = docker_run_args(spec, main, {}, "img")
    assert args[args.index("--entrypoint"):] == ["--entrypoint", "/bin/sh", "img", "-c", "echo hi"]


def test_args_alone_keep_the_entrypoint() -> None:
    """args without command replace only the image's CMD."""
    spec, main = _spec(args=["./bin/kuiperd"])
    args = docker_run_args(spec, main, {}, "img")
    assert "--entrypoint" not in args and args[-2:] == ["img", "./bin/kuiperd"]


def test_security_context_becomes_docker_flags() -> None:
    """User, fsGroup, read-only root, no escalation and dropped capabilities are all applied."""
    spec, main = _spec(securityContext={"readOnlyRootFilesystem": True,
                                        "allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]}})
    args = " ".join(docker_run_args(spec, main, {}, "img"))
    for flag in ("--user 1001:1001", "--group-add 1001", "--read-only",
                 "--security-opt no-new-privileges", "--cap-drop ALL"):
        assert flag in args


def test_volumes_start_empty() -> None:
    """A pod volume is mounted without Docker's copy of the image's content into it."""
    spec, main = _spec(volumeMounts=[{"name": "v", "mountPath": "/kuiper/plugins"}])
    args = docker_run_args(spec, main, {"v": Source("volume", "pod-v")}, "img")
    assert "type=volume,src=pod-v,dst=/kuiper/plugins,volume-nocopy" in args


def test_limits_become_docker_limits() -> None:
    """CPU and memory limits are enforced, in Docker's units."""
    spec, main = _spec(resources={"limits": {"cpu": "500m", "memory": "512Mi"}})
    args = " ".join(docker_run_args(spec, main, {}, "img"))
    assert "--cpus 0.5" in args and "--memory 512m" in args


@pytest.mark.parametrize("extra", [{"lifecycle": {}}, {"envFrom": []},
                                   {"securityContext": {"privileged": True}}])
def test_unknown_container_fields_are_refused(extra: dict) -> None:
    """A field the emulation cannot honour raises instead of being ignored."""
    spec, main = _spec(**extra)
    with pytest.raises(Unsupported):
        docker_run_args(spec, main, {}, "img")


def test_root_with_run_as_non_root_is_refused() -> None:
    """runAsNonRoot with uid 0 fails, as the kubelet refuses to start such a container."""
    spec, main = _spec(securityContext={"runAsUser": 0})
    with pytest.raises(AssertionError, match="runAsNonRoot"):
        docker_run_args(spec, main, {}, "img")
