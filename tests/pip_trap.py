"""A loopback port standing in for pip's index and every proxy: proof that pip stayed offline."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest


class PipTrap:
    """Counts the connections made to it and closes each at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.hits = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()

    def overrides(self) -> dict[str, str]:
        """pip's index and every proxy here, nothing exempt from the proxy."""
        return {"PIP_INDEX_URL": f"{self.url}/simple", "HTTPS_PROXY": self.url,
                "HTTP_PROXY": self.url, "https_proxy": self.url, "http_proxy": self.url,
                "NO_PROXY": "", "no_proxy": ""}

    def env(self) -> dict[str, str]:
        """This process's environment with the overrides, and no PIP_NO_INDEX to lean on."""
        base = {k: v for k, v in os.environ.items() if k != "PIP_NO_INDEX"}
        return {**base, **self.overrides()}


@pytest.fixture
def trap() -> Iterator[PipTrap]:
    """A PipTrap, closed after the test."""
    found = PipTrap()
    yield found
    found.sock.close()
