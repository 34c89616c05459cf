"""Reading a plugin's own health and metrics over its unix socket (see _runtime/exporter).

Used by ``ekuiper-plugin status``, ``ekuiper-plugin metrics`` (which serves every plugin
of a directory on one TCP port) and the image's healthcheck; each call is one request
per socket, on the caller's thread.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

__all__ = ["HealthUnavailable", "aggregate_health", "aggregate_metrics", "fetch",
           "plugin_health", "plugin_sockets"]


class HealthUnavailable(Exception):
    """No answer on a plugin's socket: not enabled, not running, or a stale socket."""


def fetch(path: Path, target: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET ``target`` over the unix socket at ``path``: (HTTP status, body)."""
    if not path.exists():
        raise HealthUnavailable(f"no socket {path}")
    if not path.is_socket():
        raise HealthUnavailable(f"{path} is not a socket")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
        conn.sendall(f"GET {target} HTTP/1.0\r\nHost: plugin\r\n\r\n".encode())
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except ConnectionRefusedError:
        raise HealthUnavailable(f"{path} is stale: the plugin process that made it is "
                                "gone") from None
    except OSError as exc:
        raise HealthUnavailable(f"no answer on {path}: {exc.strerror or exc}") from None
    finally:
        conn.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise HealthUnavailable(f"{path} answered something that is not HTTP") from None
    return status, body


def plugin_health(directory: Path, plugin: str, timeout: float = 2.0) -> dict[str, Any]:
    """The /health document of ``plugin`` whose socket is in ``directory``."""
    _, body = fetch(directory / f"{plugin}.sock", "/health", timeout)
    try:
        document = json.loads(body)
    except ValueError:
        raise HealthUnavailable(f"{plugin}'s /health is not JSON: {body[:100]!r}") from None
    if not isinstance(document, dict):
        raise HealthUnavailable(f"{plugin}'s /health is not a JSON object")
    return document


def plugin_sockets(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.sock"))


def aggregate_metrics(directory: Path, timeout: float = 2.0) -> str:
    """Every answering plugin's /metrics in ``directory`` as one exposition."""
    from ekuiper._metrics import merge_expositions

    texts = []
    for sock in plugin_sockets(directory):
        try:
            status, body = fetch(sock, "/metrics", timeout)
        except HealthUnavailable:
            continue  # stale: its plugin is gone
        if status == 200:
            texts.append(body.decode("utf-8", "replace"))
    return merge_expositions(texts)


def aggregate_health(directory: Path, timeout: float = 2.0) -> dict[str, Any]:
    """Every plugin's /health in ``directory``; healthy when each answering one is."""
    plugins: dict[str, Any] = {}
    for sock in plugin_sockets(directory):
        try:
            plugins[sock.stem] = plugin_health(directory, sock.stem, timeout)
        except HealthUnavailable as exc:
            plugins[sock.stem] = {"healthy": None, "unavailable": str(exc)}
    healthy = all(doc.get("healthy") is not False for doc in plugins.values())
    return {"healthy": healthy, "plugins": plugins}
