"""A pod of a rendered manifest run with Docker, as a kubelet would run it, as far as the
deploy tests need: init containers in order, then the main container; volumes that start
empty (emptyDir, claims, a volume without a source), owned as fsGroup leaves them;
ConfigMap files read-only; securityContext, env, command/args and limits as docker flags.

A field of the spec this module cannot honour raises ``Unsupported``, so a test never
passes on a pod that was not run as written. ``docker_run_args`` is the pure translation;
``DockerPod`` does the I/O and leaves no container or volume behind.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy import manifests as m

# Fields that only place or name the pod, or that Docker does on its own.
IGNORED_POD = {"serviceAccountName", "automountServiceAccountToken", "enableServiceLinks",
               "terminationGracePeriodSeconds", "nodeSelector", "affinity", "tolerations"}
KNOWN_POD = IGNORED_POD | {"securityContext", "initContainers", "containers", "volumes"}
KNOWN_CONTAINER = {"name", "image", "imagePullPolicy", "command", "args", "env", "ports",
                   "startupProbe", "readinessProbe", "livenessProbe", "resources",
                   "securityContext", "volumeMounts"}
KNOWN_SECURITY = {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "fsGroupChangePolicy",
                  "supplementalGroups", "seccompProfile", "allowPrivilegeEscalation",
                  "readOnlyRootFilesystem", "capabilities"}


class Unsupported(Exception):
    """The spec asks for something this emulation does not do; extend it or change the test."""


@dataclass(frozen=True)
class Source:
    """Where a pod volume lives on the Docker side: a named volume, or a host folder."""

    kind: str  # "volume" | "bind"
    where: str
    readonly: bool = False


def _unknown(found: Any, known: set[str], what: str) -> None:
    extra = set(found) - known
    if extra:
        raise Unsupported(f"{what}: {sorted(extra)}")


def _cpus(quantity: str) -> str:
    return str(int(quantity[:-1]) / 1000) if quantity.endswith("m") else str(quantity)


def _memory(quantity: str) -> str:
    # Docker's k/m/g are binary, as Kubernetes' Ki/Mi/Gi.
    for suffix, unit in (("Ki", "k"), ("Mi", "m"), ("Gi", "g")):
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    raise Unsupported(f"memory quantity {quantity!r}")


def docker_run_args(spec: m.Obj, container: m.Obj, sources: dict[str, Source],
                    image: str) -> list[str]:
    """The `docker run` arguments (after `run`) that run ``container`` of ``spec``."""
    _unknown(spec, KNOWN_POD, "pod fields")
    _unknown(container, KNOWN_CONTAINER, f"container {container['name']} fields")
    for context in (spec.get("securityContext") or {}, container.get("securityContext") or {}):
        _unknown(context, KNOWN_SECURITY, "securityContext fields")
    args: list[str] = []
    uid = m.effective(spec, container, "runAsUser")
    gid = m.effective(spec, container, "runAsGroup")
    if uid is None:
        raise Unsupported("no runAsUser: the image's user would apply")
    if m.effective(spec, container, "runAsNonRoot") and int(uid) == 0:
        raise AssertionError("runAsNonRoot with uid 0: the kubelet refuses to start it")
    args += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
    pod_context = spec.get("securityContext") or {}
    groups = [pod_context["fsGroup"]] if "fsGroup" in pod_context else []
    for group in [*groups, *pod_context.get("supplementalGroups", [])]:
        args += ["--group-add", str(group)]
    if m.effective(spec, container, "readOnlyRootFilesystem"):
        args.append("--read-only")
    if m.effective(spec, container, "allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    capabilities = m.effective(spec, container, "capabilities") or {}
    _unknown(capabilities, {"drop", "add"}, "capabilities")
    for cap in capabilities.get("drop", []):
        args += ["--cap-drop", cap]
    for cap in capabilities.get("add", []):
        args += ["--cap-add", cap]
    limits = (container.get("resources") or {}).get("limits", {})
    if "cpu" in limits:
        args += ["--cpus", _cpus(str(limits["cpu"]))]
    if "memory" in limits:
        args += ["--memory", _memory(str(limits["memory"]))]
    for variable in container.get("env", []):
        if set(variable) != {"name", "value"}:
            raise Unsupported(f"env entry {variable}")
        args += ["-e", f"{variable['name']}={variable['value']}"]
    for mount in container.get("volumeMounts", []):
        _unknown(mount, {"name", "mountPath", "subPath", "readOnly"}, "volumeMount fields")
        source = sources[mount["name"]]
        where = source.where
        if "subPath" in mount:
            if source.kind != "bind":
                raise Unsupported("subPath of a volume that is not a ConfigMap")
            where = str(Path(where) / mount["subPath"])
        option = [f"type={source.kind}", f"src={where}", f"dst={mount['mountPath']}"]
        if source.kind == "volume":
            option.append("volume-nocopy")  # Kubernetes never fills a volume from the image
        if source.readonly or mount.get("readOnly"):
            option.append("readonly")
        args += ["--mount", ",".join(option)]
    for port in container.get("ports", []):
        args += ["-p", f"127.0.0.1::{port['containerPort']}"]
    command, extra = container.get("command"), container.get("args")
    if command:
        # --entrypoint also drops the image's CMD, as a command without args does.
        args += ["--entrypoint", command[0], image, *command[1:], *(extra or [])]
    else:
        args += [image, *(extra or [])]
    return args


def _docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} ... failed:\n{result.stderr[-3000:]}")
    return result.stdout


@dataclass
class DockerPod:
    """One replica of ``workload`` (a StatefulSet) from ``objects``, every image ``image``."""

    objects: list[m.Obj]
    workload: m.Obj
    image: str
    name: str
    workdir: Path
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    @property
    def spec(self) -> m.Obj:
        return m.pod_spec(self.workload)

    def _sources(self) -> tuple[dict[str, Source], dict[str, str]]:
        """Docker sources per pod volume, and the mode each new volume gets (as fsGroup)."""
        sources: dict[str, Source] = {}
        modes: dict[str, str] = {}
        claims = [t["metadata"]["name"] for t in self.workload["spec"].get(
            "volumeClaimTemplates", [])]
        for volume in [*({"name": c, "claim": True} for c in claims), *self.spec["volumes"]]:
            kinds = set(volume) - {"name"}
            if kinds <= {"claim", "emptyDir"}:
                docker_name = f"{self.name}-{volume['name']}"
                sources[volume["name"]] = Source("volume", docker_name)
                # A new claim as a provisioner leaves it, an emptyDir is 0777; the kubelet
                # then gives both to fsGroup, group-writable and setgid.
                modes[docker_name] = "2775" if "claim" in volume else "2777"
            elif kinds == {"configMap"}:
                sources[volume["name"]] = Source("bind", str(self._config_map(volume)), True)
            else:
                raise Unsupported(f"volume {volume}")
        return sources, modes

    def _config_map(self, volume: m.Obj) -> Path:
        data = m.one(self.objects, "ConfigMap", volume["configMap"]["name"])["data"]
        folder = self.workdir / volume["name"]
        folder.mkdir()
        for item in volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
            path = folder / item["path"]
            path.write_text(data[item["key"]])
            path.chmod(0o644)  # as the kubelet's default mode; read by the pod's user
        return folder

    def start(self) -> None:
        """Volumes, then each init container to its end, then the main container, detached."""
        sources, modes = self._sources()
        for volume in modes:
            _docker("volume", "create", volume)
            self.volumes.append(volume)
        fs_group = (self.spec.get("securityContext") or {}).get("fsGroup")
        if fs_group is not None and modes:
            # The kubelet's part: a fresh volume handed to fsGroup.
            script = " && ".join(f"chgrp {fs_group} /v/{i} && chmod {mode} /v/{i}"
                                 for i, mode in enumerate(modes.values()))
            mounts = [a for i, v in enumerate(modes)
                      for a in ("--mount", f"type=volume,src={v},dst=/v/{i},volume-nocopy")]
            _docker("run", "--rm", "--user", "0", *mounts, "--entrypoint", "/bin/sh",
                    self.image, "-c", script)
        for init in self.spec.get("initContainers") or []:
            args = docker_run_args(self.spec, init, sources, self.image)
            name = f"{self.name}-{init['name']}"
            self.containers.append(name)
            _docker("run", "--name", name, *args, timeout=120)
        main = m.main_container(self.spec)
        self.containers.append(self.name)
        _docker("run", "-d", "--name", self.name, *docker_run_args(
            self.spec, main, sources, self.image))

    def url(self, port: int) -> str:
        address = _docker("port", self.name, f"{port}/tcp").splitlines()[0].strip()
        return f"http://{address}"

    def _probe_url(self, path: str | None = None) -> str:
        main = m.main_container(self.spec)
        probe = main["readinessProbe"]["httpGet"]
        return self.url(m.port_number(main, probe["port"])) + (path or probe.get("path", "/"))

    def wait_ready(self, timeout: float = 90) -> None:
        """Until the readiness probe's request answers 200, as the kubelet would probe it."""
        url = self._probe_url()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if _docker("inspect", "-f", "{{.State.Running}}", self.name).strip() != "true":
                raise AssertionError(f"the container ended before it was ready:\n"
                                     f"{self.logs()[-5000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready within {timeout} s:\n{self.logs()[-5000:]}")
            time.sleep(0.3)

    def rest(self, method: str, path: str, body: Any = None) -> Any:
        """A REST call on the probed port (eKuiper's REST API); the answer's JSON."""
        request = urllib.request.Request(
            self._probe_url(path), method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        try:
            return json.loads(text)
        except ValueError:
            return text

    def logs(self) -> str:
        result = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True,
                                timeout=30)
        return result.stdout + result.stderr

    def stop(self) -> tuple[int, float]:
        """SIGTERM, as the kubelet sends it; (exit code, seconds until the container ended)."""
        grace = self.spec.get("terminationGracePeriodSeconds", 30)
        began = time.monotonic()
        _docker("stop", "-t", str(grace), self.name, timeout=grace + 30)
        took = time.monotonic() - began
        return int(_docker("inspect", "-f", "{{.State.ExitCode}}", self.name)), took

    def remove(self) -> None:
        for name in reversed(self.containers):
            _docker("rm", "-f", name, check=False)
        for volume in self.volumes:
            _docker("volume", "rm", "-f", volume, check=False)
