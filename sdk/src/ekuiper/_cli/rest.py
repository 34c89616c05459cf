"""A small client for eKuiper's REST API (standard library only).

Every answer is checked against the shape eKuiper documents: a server that answers
something else (a proxy's HTML page, another service on the port) gives a RestError
naming the request and what came back, never a traceback.
"""

from __future__ import annotations

import html
import json
import secrets
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["RestError", "Server", "segment"]

_CHUNK = 1 << 16


class RestError(Exception):
    """eKuiper could not be reached, refused the request, or answered nonsense."""


def segment(name: str) -> str:
    """``name`` quoted as one URL path segment (a ``/`` or ``?`` in it stays inside)."""
    return urllib.parse.quote(name, safe="")


def _shorten(payload: Any, limit: int = 300) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return text if len(text) <= limit else text[:limit] + "..."


class Server:
    """One eKuiper's REST API at ``url``; each request waits at most ``timeout`` seconds."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise RestError(f"the eKuiper URL must look like http://127.0.0.1:9081, not {url!r} "
                            "(set --server or EKUIPER_URL)")
        if timeout <= 0:
            raise RestError(f"the timeout must be a positive number of seconds, not {timeout}")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(HTTP status, the body decoded from JSON, or as text); RestError if unreachable."""
        data = None if body is None else json.dumps(body).encode()
        return self._send(method, path, data, {"Content-Type": "application/json"})

    def _send(self, method: str, path: str, data: Any,
              headers: dict[str, str]) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (TimeoutError, socket.timeout)):  # 3.9: not yet one class
                raise RestError(f"{method} {path}: eKuiper at {self.url} did not answer within "
                                f"{self.timeout:g} s (raise --timeout if it is busy)") from None
            raise RestError(f"cannot reach eKuiper at {self.url}: {reason}; is it running? "
                            "(set --server or EKUIPER_URL)") from None
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text)
        except (ValueError, RecursionError):
            return status, text.strip()

    def checked(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.call(method, path, body)
        return self._checked(method, path, status, payload)

    def _checked(self, method: str, path: str, status: int, payload: Any) -> Any:
        if status == 401:
            raise RestError(f"{method} {path} failed (401): this eKuiper requires a token "
                            "(basic.authentication is on); this command cannot send one yet")
        if status >= 400:
            message = payload.get("message", payload) if isinstance(payload, dict) else payload
            raise RestError(f"{method} {path} failed ({status}): {_shorten(message)}")
        return payload

    def plugins(self) -> list[dict[str, Any]]:
        """The installed portable plugins, each a dict with at least a string ``name``."""
        result = self.checked("GET", "/plugins/portables")
        if result is None or result == "":
            return []
        if not isinstance(result, list) or not all(
                isinstance(p, dict) and isinstance(p.get("name"), str) for p in result):
            raise RestError(f"GET /plugins/portables: expected a list of plugins, got "
                            f"{_shorten(result)}; is {self.url} an eKuiper?")
        return result

    def status(self, name: str) -> dict[str, Any] | None:
        """The plugin's status (eKuiper 2.x), or None where the server has no such endpoint."""
        path = f"/plugins/portables/{segment(name)}/status"
        status, payload = self.call("GET", path)
        if status == 404 and not isinstance(payload, dict):
            return None
        payload = self._checked("GET", path, status, payload)
        if not isinstance(payload, dict):
            raise RestError(f"GET {path}: expected a status object, got {_shorten(payload)}")
        return payload

    def upload(self, file: Path, stored_name: str) -> str:
        """Store ``file`` in the server's data/uploads as ``stored_name``; its path there.

        The body is streamed, so a large zip is never held in memory.
        """
        boundary = f"ekuiper-plugin-{secrets.token_hex(16)}"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"uploadFile\"; "
                f"filename=\"{stored_name}\"\r\nContent-Type: application/zip\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = file.stat().st_size

        def body() -> Iterator[bytes]:
            yield head
            with open(file, "rb") as stream:
                while chunk := stream.read(_CHUNK):
                    yield chunk
            yield tail

        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
                   "Content-Length": str(len(head) + size + len(tail))}
        status, payload = self._send("POST", "/config/uploads", body(), headers)
        if status == 404:
            raise RestError("POST /config/uploads failed (404): this eKuiper has no upload "
                            "API; copy the zip to the server and install it with "
                            "`ekuiper-plugin install file:///path/on/server/NAME.zip`")
        if status == 413:
            raise RestError(f"POST /config/uploads failed (413): the zip ({size} bytes) is "
                            "larger than the server (or a proxy before it) accepts")
        payload = self._checked("POST", "/config/uploads", status, payload)
        stored = html.unescape(payload) if isinstance(payload, str) else ""
        if not stored.endswith(stored_name):
            raise RestError(f"POST /config/uploads: expected the stored file's path, got "
                            f"{_shorten(payload)}")
        return stored

    def delete_upload(self, stored_name: str) -> None:
        self.checked("DELETE", f"/config/uploads/{segment(stored_name)}")
