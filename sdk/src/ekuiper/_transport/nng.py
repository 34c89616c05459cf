"""The pynng fallback (``EKUIPER_TRANSPORT=pynng``): eKuiper's channels through nng itself.

The only module that imports pynng, and only on first use: the default transport needs
no nng threads. Each message crosses nng's I/O threads, which costs 50-70 µs of CPU per
message (bench/README.md).

nng does the SP work (handshakes with deadlines, redialling, backing off when out of
descriptors); this module asks of it what the socket transport does on its own: the
sink's socket file mode 0600 (``ipc:permissions``), peers of another user refused
(``ipc:peer-uid``, checked before a pipe joins a socket), frames longer than the cap
dropped with their connection (``recv-size-max``), and a file that is not a socket
never replaced.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

from ekuiper._transport import wire
from ekuiper._transport.socket import check_socket_path
from ekuiper.errors import ChannelClosedError, ChannelConnectError, ChannelTimeout

__all__ = ["NngChannel", "dial", "listen", "load"]

_SOCKET_MODE = 0o600
_log = logging.getLogger("ekuiper.transport")


def load() -> Any:
    """The pynng module, imported now."""
    import pynng

    return pynng


class NngChannel:
    """One pynng socket as a Channel: nng's errors become the seam's."""

    __slots__ = ("_kind", "_nng", "_sock", "url")

    def __init__(self, nng: Any, sock: object, url: str, kind: str) -> None:
        self._nng = nng
        self._sock = sock
        self.url = url
        self._kind = kind

    def send(self, data: bytes) -> None:
        try:
            self._sock.send(data)  # type: ignore[attr-defined]
        except self._nng.Timeout:
            raise ChannelTimeout(f"send on {self.url} timed out") from None
        except self._nng.Closed:
            raise ChannelClosedError(f"{self.url} is closed") from None
        except self._nng.NotSupported:
            raise TypeError(f"{self.url} is a {self._kind} socket: it cannot send") from None

    def recv(self) -> bytes:
        try:
            return bytes(self._sock.recv())  # type: ignore[attr-defined]
        except self._nng.Timeout:
            raise ChannelTimeout(f"receive on {self.url} timed out") from None
        except self._nng.Closed:
            raise ChannelClosedError(f"{self.url} is closed") from None
        except self._nng.NotSupported:
            raise TypeError(f"{self.url} is a {self._kind} socket: it cannot receive") from None
        except RuntimeError:
            # pynng's recv() received a zero-length message and fails unpacking it (cffi
            # cannot unpack a NULL buffer); the message is consumed, and it was empty.
            # recv_msg() would not fail, but costs a fifth of a sink's per-message time.
            return b""

    def close(self) -> None:
        self._sock.close()  # type: ignore[attr-defined]


def _peer_check(nng: Any, url: str) -> Callable[[Any], None]:
    """A pre-connect callback that closes a pipe whose peer runs as another user."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # Windows: nng's IPC is a named pipe, with no uid to compare
        return lambda pipe: None
    own_uid = getuid()

    def check(pipe: Any) -> None:
        uid = nng.ffi.new("uint64_t *")
        if nng.lib.nng_pipe_get_uint64(pipe.pipe, b"ipc:peer-uid", uid) != 0:
            return  # nng cannot tell on this platform
        reason = wire.peer_refusal(int(uid[0]), own_uid)
        if reason is not None:
            _log.warning("%s: refused a connection: the process at the other end %s",
                         url, reason)
            pipe.close()

    return check


def dial(nng: Any, sock: Any, url: str, kind: str, attempts: int,
         interval_s: float) -> NngChannel:
    """Dial ``url``, retried while nothing listens; ChannelConnectError when it never does."""
    sock.add_pre_pipe_connect_cb(_peer_check(nng, url))
    last: Exception | None = None
    for _ in range(attempts):
        try:
            sock.dial(url, block=True)
            return NngChannel(nng, sock, url, kind)
        except Exception as exc:  # pynng raises several kinds for "not there yet"
            last = exc
            time.sleep(interval_s)
    sock.close()
    raise ChannelConnectError(f"cannot connect to {url}: {last}; is eKuiper listening there?")


def listen(nng: Any, sock: Any, url: str, path: str, kind: str) -> NngChannel:
    """Listen on ``url`` with a private socket file; ChannelConnectError if it cannot."""
    sock.add_pre_pipe_connect_cb(_peer_check(nng, url))
    last: Exception | None = None
    for _ in range(10):
        try:
            check_socket_path(path, url)  # nng would replace a regular file as stale
            _start_private_listener(nng, sock, url)
            return NngChannel(nng, sock, url, kind)
        except ChannelConnectError:
            sock.close()
            raise
        except Exception as exc:
            last = exc
            time.sleep(0.05)
    sock.close()
    raise ChannelConnectError(f"cannot listen on {url}: {last}")


def _start_private_listener(nng: Any, sock: Any, url: str) -> None:
    # pynng's listen() starts the listener at once; the mode must be set before.
    ffi, lib = nng.ffi, nng.lib
    listener = ffi.new("nng_listener *")
    nng.check_err(lib.nng_listener_create(listener, sock.socket, url.encode()))
    try:
        err = lib.nng_listener_set_int(listener[0], b"ipc:permissions", _SOCKET_MODE)
        if err != lib.NNG_ENOTSUP:  # Windows: a named pipe has no file mode
            nng.check_err(err)
        nng.check_err(lib.nng_listener_start(listener[0], 0))
    except Exception:
        lib.nng_listener_close(listener[0])
        raise
