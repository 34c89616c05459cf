"""The pynng fallback asks nng for what the socket transport does itself."""

from __future__ import annotations

import os
import socket
import stat
import struct
import time

import pynng
import pytest

from ekuiper._protocol import Meta, ipc_path, symbol_data_url
from ekuiper._transport import NngTransport, wire
from ekuiper.errors import ChannelConnectError
from tests.unit.transport.peers import (
    as_nobody,
    exit_code,
    frame,
    in_background,
    needs_root,
    open_to,
)

META = Meta("r1", "op", 0)


@pytest.fixture
def sink_path(ipc_dir: str) -> str:
    return ipc_path(symbol_data_url(ipc_dir, META))


def test_sink_socket_file_is_private_whatever_the_umask(ipc_dir: str, sink_path: str) -> None:
    """Under umask 000 nng's listener still makes the socket file mode 0600."""
    old = os.umask(0)
    try:
        channel = NngTransport(ipc_dir).sink(META)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(sink_path).st_mode) == 0o600
    channel.close()


def test_sink_never_replaces_a_regular_file(ipc_dir: str, sink_path: str) -> None:
    """A regular file at the sink's path is refused by name and left as it was."""
    with open(sink_path, "w") as f:
        f.write("precious")
    with pytest.raises(ChannelConnectError, match="is a regular file, not a socket"):
        NngTransport(ipc_dir).sink(META)
    with open(sink_path) as f:
        assert f.read() == "precious"


def test_sink_drops_a_peer_announcing_a_frame_over_the_cap(ipc_dir: str,
                                                           sink_path: str) -> None:
    """nng hangs up on a length prefix over the cap instead of buffering it."""
    channel = NngTransport(ipc_dir, max_frame_bytes=1000).sink(META)
    bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bad.settimeout(3)
    bad.connect(sink_path)
    bad.sendall(wire.sp_header(wire.PUSH) + struct.pack(">BQ", 1, 2**63) + b"\x00" * 4096)
    received = b""
    try:
        while chunk := bad.recv(100):
            received += chunk
    except ConnectionResetError:
        pass
    assert received == wire.sp_header(wire.PULL)  # its header, then the hang-up
    bad.close()
    channel.close()


@needs_root
def test_sink_refuses_a_peer_of_another_user(ipc_dir: str, sink_path: str) -> None:
    """A pipe from another user is closed before it joins: its frames never arrive."""
    channel = NngTransport(ipc_dir).sink(META)
    open_to(sink_path)
    os.chmod(sink_path, 0o666)  # only the uid check stands guard

    def intrude() -> int:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(sink_path)
        try:
            sock.sendall(wire.sp_header(wire.PUSH) + frame(b"intruder"))
            while sock.recv(100):
                pass
        except OSError:
            pass
        return 0

    intruder = as_nobody(intrude)
    time.sleep(0.5)  # the intruder goes first
    with pynng.Push0(send_timeout=2000) as push:
        push.dial(symbol_data_url(ipc_dir, META), block=True)
        in_background(lambda: push.send(b"real"))
        assert channel.recv() == b"real"
    assert exit_code(intruder) == 0
    channel.close()
