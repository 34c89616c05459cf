"""The one seam between the runtime and the sockets.

The runtime only ever sees :class:`Channel` objects made by a :class:`Transport`. Two
transports speak eKuiper's protocol: :class:`SocketTransport` (the default) talks nng's
SP protocols straight over Unix sockets (``_sp``); :class:`NngTransport` goes through
pynng (``EKUIPER_TRANSPORT=pynng``), and this is the only module that imports pynng.
Tests can hand the runtime another Transport.

Errors are translated at the seam: a receive or send deadline raises
:class:`ChannelTimeout`, a closed socket raises :class:`~ekuiper.errors.ChannelClosedError`.

Threading: a channel may be closed from any thread; a blocked ``send``/``recv`` then
raises ChannelClosedError in the thread that is blocked. Otherwise a channel is used by
one thread at a time.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Protocol

from ekuiper import _protocol, _sp
from ekuiper._protocol import Meta
from ekuiper._sp import ChannelTimeout
from ekuiper.errors import ChannelClosedError, PluginConfigError

__all__ = [
    "Channel",
    "ChannelTimeout",
    "NngTransport",
    "SocketTransport",
    "Transport",
    "ipc_dir_from_env",
    "source_buffer_from_env",
    "transport_from_env",
]

IPC_DIR_ENV = "EKUIPER_IPC_DIR"
TRANSPORT_ENV = "EKUIPER_TRANSPORT"
SOURCE_BUFFER_ENV = "EKUIPER_SOURCE_SEND_BUFFER"
# pynng transport only: rows a source may have queued in nng, not yet taken by eKuiper.
# The queue lets Python encode the next row while nng's I/O thread writes the last one.
# Backpressure still blocks emit once it is full. The price: rows in the queue when the
# rule stops or the plugin dies are lost, as the rows in eKuiper's own operator buffers
# (1024 by default) are. 0: each row is handed over before emit returns.
DEFAULT_SOURCE_BUFFER = 256
_log = logging.getLogger("ekuiper.transport")


class Channel(Protocol):
    """One connected channel of eKuiper's protocol, reduced to what the runtime needs."""

    def send(self, data: bytes) -> None: ...

    def recv(self) -> bytes: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Makes the channels of eKuiper's portable-plugin protocol."""

    def control(self, plugin_name: str) -> Channel:
        """REQ dialled to eKuiper's control REP; no receive deadline (eKuiper waits 1 h)."""
        ...

    def function(self, symbol_name: str, keepalive_ms: int) -> Channel:
        """REQ dialled to eKuiper's function REP; recv times out after keepalive_ms."""
        ...

    def source(self, meta: Meta, send_timeout_ms: int) -> Channel:
        """PUSH dialled to eKuiper's source PULL; send times out after send_timeout_ms."""
        ...

    def sink(self, meta: Meta) -> Channel:
        """PULL listening for eKuiper's sink PUSH; must listen before start is answered."""
        ...

    def sink_ack(self, meta: Meta, send_timeout_ms: int) -> Channel:
        """PUSH dialled to eKuiper's ack PULL."""
        ...


def ipc_dir_from_env() -> str:
    """The directory of the IPC socket files: eKuiper always uses /tmp."""
    return os.environ.get(IPC_DIR_ENV) or "/tmp"


def transport_from_env() -> Transport:
    """The transport EKUIPER_TRANSPORT names: ``socket`` (default) or ``pynng``.

    On Windows, where nng's IPC is a named pipe rather than a Unix socket, the default
    is ``pynng``.
    """
    name = os.environ.get(TRANSPORT_ENV, "").strip().lower()
    if not name and sys.platform == "win32":
        name = "pynng"
    if name in ("", "socket"):
        return SocketTransport()
    if name == "pynng":
        return NngTransport()
    raise PluginConfigError(
        f"{TRANSPORT_ENV}={name!r} is not a transport; use 'socket' (the default) or 'pynng'"
    )


def source_buffer_from_env() -> int:
    """The source send queue length (rows), from EKUIPER_SOURCE_SEND_BUFFER."""
    text = os.environ.get(SOURCE_BUFFER_ENV, "").strip()
    if not text:
        return DEFAULT_SOURCE_BUFFER
    try:
        value = int(text)
    except ValueError:
        _log.warning("%s=%r is not a number of rows; using %d", SOURCE_BUFFER_ENV, text,
                     DEFAULT_SOURCE_BUFFER)
        return DEFAULT_SOURCE_BUFFER
    return max(0, min(value, 8192))  # what nng accepts


class SocketTransport:
    """Channels that speak nng's SP protocols over Unix sockets directly (see ``_sp``).

    eKuiper's source channel gets no queue of its own: the kernel's socket buffer is
    the queue, and emit blocks when it is full.
    """

    # eKuiper listens before it sends the start command, so dials succeed at once; the
    # retries cover only a listener that is still being set up (e.g. after a restart).
    dial_attempts = 50
    dial_interval_s = 0.1

    def __init__(self, ipc_dir: str | None = None) -> None:
        self.ipc_dir = ipc_dir or ipc_dir_from_env()

    def _path(self, url: str) -> str:
        return url[len("ipc://"):]

    def control(self, plugin_name: str) -> Channel:
        url = _protocol.control_url(self.ipc_dir, plugin_name)
        return _sp.ReqDialer(self._path(url), url, None, self.dial_attempts,
                             self.dial_interval_s)

    def function(self, symbol_name: str, keepalive_ms: int) -> Channel:
        url = _protocol.function_url(self.ipc_dir, symbol_name)
        return _sp.ReqDialer(self._path(url), url, keepalive_ms, self.dial_attempts,
                             self.dial_interval_s)

    def source(self, meta: Meta, send_timeout_ms: int) -> Channel:
        url = _protocol.symbol_data_url(self.ipc_dir, meta)
        return _sp.PushDialer(self._path(url), url, send_timeout_ms, self.dial_attempts,
                              self.dial_interval_s)

    def sink(self, meta: Meta) -> Channel:
        url = _protocol.symbol_data_url(self.ipc_dir, meta)
        return _sp.PullListener(self._path(url), url)

    def sink_ack(self, meta: Meta, send_timeout_ms: int) -> Channel:
        url = _protocol.sink_ack_url(self.ipc_dir, meta)
        return _sp.PushDialer(self._path(url), url, send_timeout_ms, self.dial_attempts,
                              self.dial_interval_s)


def _pynng() -> Any:
    # Imported on first use only: the default transport needs no nng threads.
    import pynng

    return pynng


class _NngChannel:
    __slots__ = ("_nng", "_sock", "url")

    def __init__(self, nng: Any, sock: object, url: str) -> None:
        self._nng = nng
        self._sock = sock
        self.url = url

    def send(self, data: bytes) -> None:
        try:
            self._sock.send(data)  # type: ignore[attr-defined]
        except self._nng.Timeout:
            raise ChannelTimeout(f"send on {self.url} timed out") from None
        except self._nng.Closed:
            raise ChannelClosedError(f"{self.url} is closed") from None

    def recv(self) -> bytes:
        try:
            return bytes(self._sock.recv())  # type: ignore[attr-defined]
        except self._nng.Timeout:
            raise ChannelTimeout(f"receive on {self.url} timed out") from None
        except self._nng.Closed:
            raise ChannelClosedError(f"{self.url} is closed") from None
        except RuntimeError:
            # pynng's recv() received a zero-length message and fails unpacking it (cffi
            # cannot unpack a NULL buffer); the message is consumed, and it was empty.
            # recv_msg() would not fail, but costs a fifth of a sink's per-message time.
            return b""

    def close(self) -> None:
        self._sock.close()  # type: ignore[attr-defined]


class NngTransport:
    """Channels over pynng IPC sockets under ``ipc_dir`` (eKuiper uses ``/tmp``).

    Each message crosses nng's I/O threads, which costs 50-70 µs of CPU per message
    (bench/README.md); kept as a fallback for the socket transport.
    """

    # eKuiper listens before it sends the start command, so dials succeed at once; the
    # retries cover only a listener that is still being set up (e.g. after a restart).
    dial_attempts = 50
    dial_interval_s = 0.1

    def __init__(self, ipc_dir: str | None = None, source_buffer: int | None = None) -> None:
        self._nng = _pynng()
        self.ipc_dir = ipc_dir or ipc_dir_from_env()
        self.source_buffer = source_buffer_from_env() if source_buffer is None else source_buffer

    def _dial(self, sock: object, url: str) -> _NngChannel:
        last: Exception | None = None
        for _ in range(self.dial_attempts):
            try:
                sock.dial(url, block=True)  # type: ignore[attr-defined]
                return _NngChannel(self._nng, sock, url)
            except Exception as exc:  # pynng raises several kinds for "not there yet"
                last = exc
                time.sleep(self.dial_interval_s)
        sock.close()  # type: ignore[attr-defined]
        raise ConnectionError(f"cannot connect to {url}: {last}; is eKuiper listening there?")

    def _listen(self, sock: object, url: str) -> _NngChannel:
        last: Exception | None = None
        for _ in range(10):
            try:
                sock.listen(url)  # type: ignore[attr-defined]
                return _NngChannel(self._nng, sock, url)
            except Exception as exc:
                last = exc
                time.sleep(0.05)
        sock.close()  # type: ignore[attr-defined]
        raise ConnectionError(f"cannot listen on {url}: {last}")

    def control(self, plugin_name: str) -> Channel:
        url = _protocol.control_url(self.ipc_dir, plugin_name)
        return self._dial(self._nng.Req0(recv_max_size=0), url)

    def function(self, symbol_name: str, keepalive_ms: int) -> Channel:
        url = _protocol.function_url(self.ipc_dir, symbol_name)
        # resend_time=0: the keepalive handshake, not nng, re-drives an idle REQ.
        sock = self._nng.Req0(recv_timeout=keepalive_ms, resend_time=0, recv_max_size=0)
        return self._dial(sock, url)

    def source(self, meta: Meta, send_timeout_ms: int) -> Channel:
        url = _protocol.symbol_data_url(self.ipc_dir, meta)
        sock = self._nng.Push0(send_timeout=send_timeout_ms)
        if self.source_buffer:
            sock.send_buffer_size = self.source_buffer
        return self._dial(sock, url)

    def sink(self, meta: Meta) -> Channel:
        url = _protocol.symbol_data_url(self.ipc_dir, meta)
        return self._listen(self._nng.Pull0(recv_max_size=0), url)

    def sink_ack(self, meta: Meta, send_timeout_ms: int) -> Channel:
        url = _protocol.sink_ack_url(self.ipc_dir, meta)
        return self._dial(self._nng.Push0(send_timeout=send_timeout_ms), url)
