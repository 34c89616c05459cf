"""A minimal Debug Adapter Protocol client: what an IDE sends to attach to debugpy."""

from __future__ import annotations

import importlib.util
import json
import socket
import time

from tests.conftest import skip_or_fail


def need_debugpy() -> None:
    """Skip without debugpy (the `dev` extra has it); under CI that is a failure."""
    if importlib.util.find_spec("debugpy") is None:
        skip_or_fail("debugpy is not installed: pip install -e 'sdk[dev]'")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DapClient:
    """The little of the Debug Adapter Protocol an IDE speaks to attach."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.seq, self.buffer = 0, b""

    def send(self, command: str, **arguments: object) -> None:
        self.seq += 1
        body = json.dumps({"seq": self.seq, "type": "request", "command": command,
                           "arguments": arguments}).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def read(self) -> dict[str, object]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        size = int(head.split(b":", 1)[1])
        while len(self.buffer) < size:
            self.buffer += self.sock.recv(65536)
        message, self.buffer = self.buffer[:size], self.buffer[size:]
        return json.loads(message)  # type: ignore[no-any-return]

    def attach(self) -> None:
        self.send("initialize", adapterID="ekuiper-test", clientID="ekuiper-test")
        self.send("attach")
        while self.read().get("event") != "initialized":
            pass
        self.send("configurationDone")

    def close(self) -> None:
        self.sock.close()
