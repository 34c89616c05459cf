"""Reading a plugin's own health and metrics over its unix socket (see _runtime/exporter).

Used by ``ekuiper-plugin status``, ``ekuiper-plugin metrics`` (which serves every plugin
of a directory on one TCP port) and the image's healthcheck; each call is one request
per socket, on the caller's thread, given ``timeout`` seconds in all.

Light on purpose: the healthcheck imports it every few seconds, so it imports nothing
of the command line (``ekuiper._cli`` loads its commands lazily).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["HealthUnavailable", "NotAnswering", "aggregate_health", "aggregate_metrics",
           "fetch", "plugin_health", "plugin_sockets"]


class HealthUnavailable(Exception):
    """No answer on a plugin's socket: not enabled, not running, or a stale socket."""


class NotAnswering(HealthUnavailable):
    """A live socket that gave no HTTP answer in time: the plugin is there but frozen.

    Unlike a stale socket (refused: its process is gone), this counts as unhealthy.
    """


def fetch(path: Path, target: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET ``target`` over the unix socket at ``path``: (HTTP status, body)."""
    if not path.exists():
        raise HealthUnavailable(f"no socket {path}")
    if not path.is_socket():
        raise HealthUnavailable(f"{path} is not a socket")
    deadline = time.monotonic() + timeout
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    chunks = []
    try:
        conn.connect(str(path))
        conn.sendall(f"GET {target} HTTP/1.0\r\nHost: plugin\r\n\r\n".encode())
        while True:
            # One deadline for the whole answer, however slowly it trickles in.
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            conn.settimeout(left)
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (ConnectionRefusedError, FileNotFoundError):
        raise HealthUnavailable(f"{path} is stale: the plugin process that made it is "
                                "gone") from None
    except TimeoutError:
        raise NotAnswering(f"{path} gave no answer within {timeout:g} s: the plugin is "
                           "running but its metrics thread is frozen or overloaded") from None
    except OSError as exc:
        raise HealthUnavailable(f"no answer on {path}: {exc.strerror or exc}") from None
    finally:
        conn.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise NotAnswering(f"{path} answered something that is not HTTP") from None
    return status, body


def plugin_health(directory: Path, plugin: str, timeout: float = 2.0) -> dict[str, Any]:
    """The /health document of ``plugin`` whose socket is in ``directory``."""
    _, body = fetch(directory / f"{plugin}.sock", "/health", timeout)
    try:
        document = json.loads(body)
    except ValueError:
        raise NotAnswering(f"{plugin}'s /health is not JSON: {body[:100]!r}") from None
    if not isinstance(document, dict):
        raise NotAnswering(f"{plugin}'s /health is not a JSON object")
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
    """Every plugin's /health in ``directory``; healthy when each live one answers healthy.

    A stale socket (its process is gone) is listed with ``healthy: null``; a live one that
    does not answer in time is unhealthy.
    """
    plugins: dict[str, Any] = {}
    for sock in plugin_sockets(directory):
        try:
            plugins[sock.stem] = plugin_health(directory, sock.stem, timeout)
        except NotAnswering as exc:
            plugins[sock.stem] = {"healthy": False, "unavailable": str(exc)}
        except HealthUnavailable as exc:
            plugins[sock.stem] = {"healthy": None, "unavailable": str(exc)}
    healthy = all(doc.get("healthy") is not False for doc in plugins.values())
    return {"healthy": healthy, "plugins": plugins}
