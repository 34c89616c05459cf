"""A scripted stand-in for eKuiper's REST API, for the command line's unit tests."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

Reply = tuple[int, str]


@dataclass
class FakeServer:
    """An HTTP server that answers each (method, path) from a table and records requests.

    A path ending in ``*`` answers every path that starts with what comes before it.
    """

    routes: dict[tuple[str, str], Reply | Callable[[bytes], Reply]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def route(self, method: str, path: str) -> Reply | Callable[[bytes], Reply]:
        if (method, path) in self.routes:
            return self.routes[(method, path)]
        for (m, pattern), reply in self.routes.items():
            if m == method and pattern.endswith("*") and path.startswith(pattern[:-1]):
                return reply
        return 404, "404 page not found"

    def calls(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _, _ in self.requests]


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    """A FakeServer on a free loopback port, shut down after the test."""
    state = FakeServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.requests.append((self.command, self.path, dict(self.headers), body))
            route = state.route(self.command, self.path)
            status, text = route(body) if callable(route) else route
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


