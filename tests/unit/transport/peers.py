"""Test peers for the transports: hand-made SP sockets, threads, and peers of another user."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest

from ekuiper._transport import wire
from ekuiper.errors import ChannelClosedError

# A peer running as another user: forked, then setuid to nobody (needs root).
NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="a peer of another user needs root to setuid")


def url(path: str) -> str:
    return "ipc://" + path


def frame(payload: bytes) -> bytes:
    return struct.pack(">BQ", 1, len(payload)) + payload


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("the peer closed the connection")
        data += chunk
    return data


class RawPeer:
    """A hand-made SP peer on a Unix socket: says ``protocol`` and reads nothing on its own."""

    def __init__(self, path: str, protocol: int) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        self.protocol = protocol
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        conn, _ = self.listener.accept()
        conn.sendall(wire.sp_header(self.protocol))
        assert read_exactly(conn, 8)[:4] == b"\x00SP\x00"
        self.conn = conn
        return conn

    def read_frame(self) -> bytes:
        assert self.conn is not None
        kind, length = struct.unpack(">BQ", read_exactly(self.conn, 9))
        assert kind == 1
        return read_exactly(self.conn, length) if length else b""

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


def in_background(action: Callable[[], object]) -> threading.Thread:
    """Run ``action`` on a thread: an nng peer's first send waits for the handshake,
    which the PULL completes only while someone is in recv()."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def raising_in_background(action: Callable[[], object]
                          ) -> tuple[threading.Thread, list[BaseException]]:
    """Run ``action`` on a thread; the list receives what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:
            raised.append(exc)

    return in_background(run), raised


def assert_close_ends(block: Callable[[], object], close: Callable[[], None],
                      settle_s: float = 0.2) -> None:
    """``block``, waiting on another thread, ends in ChannelClosedError once ``close`` runs."""
    thread, raised = raising_in_background(block)
    time.sleep(settle_s)
    close()
    thread.join(3)
    assert not thread.is_alive()
    assert isinstance(raised[0], ChannelClosedError)


def accept_in_background(peer: RawPeer) -> threading.Thread:
    thread = threading.Thread(target=peer.accept, daemon=True)
    thread.start()
    return thread



def as_nobody(action: Callable[[], int]) -> int:
    """Fork a child that becomes user nobody and exits with ``action()``; its pid.

    The child only makes system calls (no logging, no locks another thread may hold).
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = action()
        finally:
            os._exit(code)
    return pid


def exit_code(pid: int, timeout_s: float = 10.0) -> int:
    """Wait for a child of ``as_nobody``; killed (and -1) if it outlives the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -1


def open_to(path: str) -> None:
    """Let user nobody reach ``path``'s directory (and create files there)."""
    os.chmod(os.path.dirname(path), 0o777)
