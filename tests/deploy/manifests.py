"""Reading what the deploy tests check: Kubernetes objects as plain dicts, and the facts of
the images they run (user, environment, healthcheck) from the Dockerfiles themselves.

Pure functions on text and dicts; nothing here runs a program.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import REPO

DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
VALUES = DEPLOY / "helm" / "values-slim-python.yaml"
PLUGINS_DOCKERFILE = DEPLOY / "Dockerfile.plugins"
DROPIN_SHIM = DEPLOY / "kuiperd-dropin.sh"
SLIM_DOCKERFILE = REPO / "images" / "Dockerfile.slim-python"
COMPOSE = REPO / "compose.yaml"

Obj = dict[str, Any]


def load_documents(text: str) -> list[Obj]:
    """Every non-empty YAML document in ``text`` (a manifest file or helm's output)."""
    import yaml  # the deploy conftest checks it is installed, with a hint if not

    return [doc for doc in yaml.safe_load_all(text) if doc]


def load_file(path: Any) -> list[Obj]:
    return load_documents(path.read_text(encoding="utf-8"))


def manifests() -> list[Obj]:
    """The objects of deploy/kubernetes, in the kustomization's order."""
    [kustomization] = load_file(KUBERNETES / "kustomization.yaml")
    return [obj for name in kustomization["resources"] for obj in load_file(KUBERNETES / name)]


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    """The single object of ``kind`` (and ``name``, when given)."""
    found = [o for o in objects if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(workload: Obj) -> Obj:
    return dict(workload["spec"]["template"]["spec"])


def containers(spec: Obj, init: bool = True) -> list[Obj]:
    """The pod's containers, init containers first (when ``init``)."""
    return [*(spec.get("initContainers") or [] if init else []), *spec["containers"]]


def main_container(spec: Obj) -> Obj:
    [container] = spec["containers"]
    return dict(container)


def port_number(container: Obj, port: int | str) -> int:
    """A probe's or Service's port, resolved through the container's named ports."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    [number] = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return int(number)


def mounts(container: Obj) -> dict[str, str]:
    """Mount path -> volume name."""
    return {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}


def env(container: Obj) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env", [])}


def under(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or inside it (a mount at ``root`` hides it)."""
    return PurePosixPath(path) == PurePosixPath(root) or PurePosixPath(root) in PurePosixPath(
        path).parents


def effective(spec: Obj, container: Obj, key: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's over the pod's."""
    for context in (container.get("securityContext") or {}, spec.get("securityContext") or {}):
        if key in context:
            return context[key]
    return None


# -- Dockerfiles ----------------------------------------------------------------------------


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")))
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def image_env(dockerfile: str) -> dict[str, str]:
    """The ENV the image sets (``ENV a=b c=d`` form)."""
    found: dict[str, str] = {}
    for word, rest in instructions(dockerfile):
        if word == "ENV":
            found.update(item.split("=", 1) for item in shlex.split(rest))
    return found


def build_args(dockerfile: str) -> dict[str, str]:
    """ARG defaults, by name."""
    found: dict[str, str] = {}
    for word, rest in instructions(dockerfile):
        if word == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            found[name] = value
    return found


def image_uid(dockerfile: str) -> int:
    """The uid the image's user is created with (``useradd --uid N``)."""
    [uid] = re.findall(r"useradd\b[^&]*--uid\s+(\d+)", dockerfile)
    return int(uid)


def healthcheck(dockerfile: str) -> tuple[str, int]:
    """(path, port) the image's HEALTHCHECK requests."""
    [rest] = [rest for word, rest in instructions(dockerfile) if word == "HEALTHCHECK"]
    [url] = re.findall(r"https?://[^'\" ]+", rest)
    parts = urlsplit(url)
    return parts.path or "/", int(parts.port or 80)


def exec_form(arguments: str) -> list[str]:
    """A CMD/ENTRYPOINT in exec form (a JSON list)."""
    import json

    value = json.loads(arguments)
    assert isinstance(value, list), f"not in exec form: {arguments}"
    return [str(v) for v in value]


def last(dockerfile: str, instruction: str) -> str:
    """The arguments of the last ``instruction`` (the one that takes effect)."""
    return [rest for word, rest in instructions(dockerfile) if word == instruction][-1]


def compose_image() -> str:
    """The slim-python image compose.yaml runs by default: the image users have."""
    [default] = set(re.findall(r"\$\{SLIM_PYTHON_IMAGE:-([^}]+)\}", COMPOSE.read_text()))
    return default
