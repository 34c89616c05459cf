"""A small client for eKuiper's plugin REST API (standard library only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["RestError", "Server"]


class RestError(Exception):
    """eKuiper could not be reached or refused the request."""


class Server:
    def __init__(self, url: str, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(HTTP status, the body decoded from JSON, or as text); RestError if unreachable."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RestError(f"cannot reach eKuiper at {self.url}: {reason}; is it running? "
                            "(set --server or EKUIPER_URL)") from None
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text.strip()

    def checked(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.call(method, path, body)
        if status >= 400:
            message = payload.get("message", payload) if isinstance(payload, dict) else payload
            raise RestError(f"{method} {path} failed ({status}): {message}")
        return payload

    def plugins(self) -> list[dict[str, Any]]:
        result = self.checked("GET", "/plugins/portables")
        return list(result or [])

    def status(self, name: str) -> dict[str, Any] | None:
        """The plugin's status (eKuiper 2.x), or None where the server has no such endpoint."""
        status, payload = self.call("GET", f"/plugins/portables/{name}/status")
        if status == 404 and not isinstance(payload, dict):
            return None
        if status >= 400:
            message = payload.get("message", payload) if isinstance(payload, dict) else payload
            raise RestError(f"status of {name!r} failed ({status}): {message}")
        return dict(payload)
