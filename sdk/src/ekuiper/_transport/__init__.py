"""The one seam between the runtime and the sockets.

The runtime only ever sees :class:`Channel` objects made by a :class:`Transport`. Two
transports speak eKuiper's protocol, in three layers:

- ``wire``: nng's SP protocols as pure code (headers, frames, request ids, peer rules);
- ``socket``: :class:`SocketTransport`'s I/O, SP spoken straight over Unix sockets (the
  default);
- ``nng``: :class:`NngTransport`, through pynng (``EKUIPER_TRANSPORT=pynng``), the only
  module that imports pynng.

Which channel is which URL, SP kind and deadline is decided once, here
(:class:`_IpcTransport`); each transport only makes the sockets. Tests can hand the
runtime another Transport.

The seam's vocabulary, whatever the transport (all in ``ekuiper.errors``):
:class:`ChannelTimeout` when a send or receive deadline passes (the channel stays
usable); :class:`~ekuiper.errors.ChannelClosedError` from a channel that was closed;
:class:`~ekuiper.errors.ChannelConnectError`, which is also a ``ConnectionError``, when a
channel cannot be opened (nobody listens, the path is taken or holds another kind of
file, the peer is not eKuiper);
:class:`~ekuiper.errors.ProtocolError` from making a channel whose ids cannot name a
socket file; ``TypeError`` for asking a socket what its kind cannot do (``recv`` on a
PUSH, ``send`` on a PULL).

Threading: a channel may be closed from any thread; a blocked ``send``/``recv`` then
raises ChannelClosedError in the thread that is blocked. Otherwise a channel is used by
one thread at a time.
"""

from __future__ import annotations

import logging
import os
import socket as _stdsocket
import sys
from typing import Any, Protocol

from ekuiper import _protocol
from ekuiper._protocol import Meta, ipc_path
from ekuiper._transport import nng as _nng
from ekuiper._transport import socket as _socket
from ekuiper._transport.wire import DEFAULT_MAX_FRAME_BYTES, MAX_FRAME_ENV
from ekuiper.errors import ChannelTimeout, EkuiperError, PluginConfigError

__all__ = [
    "DEFAULT_FUNCTION_SPIN_US",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_SOURCE_BUFFER",
    "Channel",
    "ChannelTimeout",
    "NngTransport",
    "SocketTransport",
    "Transport",
    "cpus_allowed",
    "function_spin_us_from_env",
    "ipc_dir_from_env",
    "max_frame_bytes_from_env",
    "sink_spin_us_from_env",
    "source_buffer_from_env",
    "transport_from_env",
]

IPC_DIR_ENV = "EKUIPER_IPC_DIR"
TRANSPORT_ENV = "EKUIPER_TRANSPORT"
SOURCE_BUFFER_ENV = "EKUIPER_SOURCE_SEND_BUFFER"
FUNCTION_SPIN_ENV = "EKUIPER_FUNCTION_SPIN_US"
SINK_SPIN_ENV = "EKUIPER_SINK_SPIN_US"
# Socket transport only: how long a function's channel polls for eKuiper's next request,
# and an acked sink's for its next message, before it sleeps (ReqDialer, PullListener);
# on with two or more cores to run on. The same bounds and default for both.
DEFAULT_FUNCTION_SPIN_US = 100
MAX_FUNCTION_SPIN_US = 10_000
# What each variable's poll waits for, as its error message says.
_SPIN_WAITS_FOR = {FUNCTION_SPIN_ENV: "a function polls for eKuiper's next request",
                   SINK_SPIN_ENV: "a sink polls for eKuiper's next message"}
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
    """Makes the channels of eKuiper's portable-plugin protocol.

    Each method may raise ChannelConnectError (a ConnectionError) when the channel cannot
    be opened, and ProtocolError when its ids cannot name a socket file.

    Optional: ``function_listening(symbol_name) -> bool`` (the IPC transports have it),
    which lets the runtime serve functions eKuiper did not replay a start for
    (PluginRuntime._serve_open_functions); a transport without it skips that.
    """

    def control(self, plugin_name: str) -> Channel:
        """REQ dialled to eKuiper's control REP; no receive deadline (eKuiper waits 1 h)."""
        ...

    def function(self, symbol_name: str, keepalive_ms: int) -> Channel:
        """REQ dialled to eKuiper's function REP; recv times out after keepalive_ms."""
        ...

    def source(self, meta: Meta, send_timeout_ms: int) -> Channel:
        """PUSH dialled to eKuiper's source PULL; send times out after send_timeout_ms."""
        ...

    def sink(self, meta: Meta, acked: bool = False) -> Channel:
        """PULL listening for eKuiper's sink PUSH; must listen before start is answered.

        ``acked``: the rule's action has requireAck, so eKuiper sends each message only
        after the last one's ack (the socket transport then polls for it, see
        EKUIPER_SINK_SPIN_US)."""
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
    is ``pynng``. PluginConfigError for an unknown name or a bad frame cap.
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


def cpus_allowed(affinity: int, cpu_max: str | None) -> float:
    """The cores this process may use: its CPU affinity, capped by a cgroup v2 quota.

    ``cpu_max`` is the text of the cgroup's ``cpu.max`` ("max 100000", or "50000 100000"
    for half a core), None where there is none; text that is neither counts as no quota.
    """
    cores = float(affinity)
    fields = (cpu_max or "").split()
    if len(fields) == 2 and fields[0] != "max":
        try:
            quota, period = int(fields[0]), int(fields[1])
        except ValueError:
            return cores
        if quota > 0 and period > 0:
            cores = min(cores, quota / period)
    return cores


def _cpus_allowed_here() -> float:
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as file:
            cpu_max: str | None = file.read()
    except (OSError, ValueError):
        cpu_max = None
    return cpus_allowed(affinity, cpu_max)


def function_spin_us_from_env(cpus: float | None = None) -> int:
    """How long a function channel polls before sleeping, from EKUIPER_FUNCTION_SPIN_US
    (see _spin_us_from_env)."""
    return _spin_us_from_env(FUNCTION_SPIN_ENV, cpus)


def sink_spin_us_from_env(cpus: float | None = None) -> int:
    """How long a sink channel polls before sleeping, from EKUIPER_SINK_SPIN_US (see
    _spin_us_from_env)."""
    return _spin_us_from_env(SINK_SPIN_ENV, cpus)


def _spin_us_from_env(variable: str, cpus: float | None) -> int:
    """The poll of ``variable``'s channel, in microseconds.

    Unset: DEFAULT_FUNCTION_SPIN_US where the process may use two cores or more (``cpus``,
    else its affinity and cgroup quota), 0 below that, where a poll would only take the
    core from eKuiper, which has the next frame to send. PluginConfigError for anything
    but a whole number of microseconds from 0 to MAX_FUNCTION_SPIN_US.
    """
    text = os.environ.get(variable, "").strip()
    if not text:
        if cpus is None:
            cpus = _cpus_allowed_here()
        return DEFAULT_FUNCTION_SPIN_US if cpus >= 2 else 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_FUNCTION_SPIN_US:
        raise PluginConfigError(
            f"{variable}={text!r} is not a number of microseconds from 0 to "
            f"{MAX_FUNCTION_SPIN_US}; give how long {_SPIN_WAITS_FOR[variable]} "
            f"before it sleeps (0: never poll), or unset it for "
            f"{DEFAULT_FUNCTION_SPIN_US} on two cores or more"
        )
    return value


def max_frame_bytes_from_env() -> int:
    """The longest frame a channel accepts, from EKUIPER_MAX_FRAME_BYTES (64 MiB).

    PluginConfigError for anything but a whole number of bytes above 0: a cap the plugin
    cannot read must stop it, not silently become another cap.
    """
    text = os.environ.get(MAX_FRAME_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_FRAME_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise PluginConfigError(
            f"{MAX_FRAME_ENV}={text!r} is not a number of bytes above 0; give the longest "
            f"frame to accept in bytes, e.g. {DEFAULT_MAX_FRAME_BYTES} (64 MiB, the "
            f"default), or unset it"
        )
    return value


class _IpcTransport:
    """eKuiper's channels on IPC sockets under ``ipc_dir``: which URL, kind and deadline.

    Subclasses make the sockets: ``_req`` (dial a REP), ``_push`` (dial a PULL) and
    ``_pull`` (listen for PUSHes).
    """

    # eKuiper listens before it sends the start command, so dials succeed at once; the
    # retries cover only a listener that is still being set up (e.g. after a restart).
    dial_attempts = 50
    dial_interval_s = 0.1

    def __init__(self, ipc_dir: str | None = None, max_frame_bytes: int | None = None,
                 function_spin_us: int | None = None,
                 sink_spin_us: int | None = None) -> None:
        self.ipc_dir = ipc_dir or ipc_dir_from_env()
        self.max_frame_bytes = (max_frame_bytes_from_env() if max_frame_bytes is None
                                else max_frame_bytes)
        self.function_spin_us = (function_spin_us_from_env() if function_spin_us is None
                                 else function_spin_us)
        self.sink_spin_us = sink_spin_us_from_env() if sink_spin_us is None else sink_spin_us

    def control(self, plugin_name: str) -> Channel:
        return self._req(_protocol.control_url(self.ipc_dir, plugin_name), None)

    def function(self, symbol_name: str, keepalive_ms: int) -> Channel:
        return self._req(_protocol.function_url(self.ipc_dir, symbol_name), keepalive_ms,
                         self.function_spin_us)

    def function_listening(self, symbol_name: str) -> bool:
        """Does eKuiper listen on ``symbol_name``'s function channel now? Never raises.

        A stat, and a connect probe (closed at once) where the socket file exists; no
        Unix sockets (Windows) or a name that cannot be a socket file: False.
        """
        family = getattr(_stdsocket, "AF_UNIX", None)
        try:
            path = ipc_path(_protocol.function_url(self.ipc_dir, symbol_name))
        except (ValueError, EkuiperError):
            return False
        if family is None or not os.path.exists(path):
            return False
        with _stdsocket.socket(family, _stdsocket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(path)
            except OSError:
                return False
        return True

    def source(self, meta: Meta, send_timeout_ms: int) -> Channel:
        return self._push(_protocol.symbol_data_url(self.ipc_dir, meta), send_timeout_ms,
                          True)

    def sink(self, meta: Meta, acked: bool = False) -> Channel:
        # Without acks eKuiper does not wait for the sink: a poll would only burn CPU.
        return self._pull(_protocol.symbol_data_url(self.ipc_dir, meta),
                          self.sink_spin_us if acked else 0)

    def sink_ack(self, meta: Meta, send_timeout_ms: int) -> Channel:
        return self._push(_protocol.sink_ack_url(self.ipc_dir, meta), send_timeout_ms, False)

    def _req(self, url: str, recv_timeout_ms: int | None, spin_us: int = 0) -> Channel:
        """``spin_us``: poll that long for a reply before sleeping (socket transport)."""
        raise NotImplementedError

    def _push(self, url: str, send_timeout_ms: int, rows: bool) -> Channel:
        """``rows``: the source channel (the ack channel carries acks)."""
        raise NotImplementedError

    def _pull(self, url: str, spin_us: int = 0) -> Channel:
        """``spin_us``: poll that long for the next message before sleeping (socket)."""
        raise NotImplementedError


class SocketTransport(_IpcTransport):
    """Channels that speak nng's SP protocols over Unix sockets directly (``socket``).

    eKuiper's source channel gets no queue of its own: the kernel's socket buffer is
    the queue, and emit blocks when it is full.
    """

    def _req(self, url: str, recv_timeout_ms: int | None, spin_us: int = 0) -> Channel:
        return _socket.ReqDialer(ipc_path(url), url, recv_timeout_ms, self.dial_attempts,
                                 self.dial_interval_s, self.max_frame_bytes, spin_us)

    def _push(self, url: str, send_timeout_ms: int, rows: bool) -> Channel:
        return _socket.PushDialer(ipc_path(url), url, send_timeout_ms, self.dial_attempts,
                                  self.dial_interval_s)

    def _pull(self, url: str, spin_us: int = 0) -> Channel:
        return _socket.PullListener(ipc_path(url), url, self.max_frame_bytes, spin_us)


class NngTransport(_IpcTransport):
    """Channels over pynng IPC sockets under ``ipc_dir`` (``nng``); kept as a fallback."""

    def __init__(self, ipc_dir: str | None = None, source_buffer: int | None = None,
                 max_frame_bytes: int | None = None) -> None:
        super().__init__(ipc_dir, max_frame_bytes, function_spin_us=0, sink_spin_us=0)
        self._nng: Any = _nng.load()
        self.source_buffer = source_buffer_from_env() if source_buffer is None else source_buffer

    def _req(self, url: str, recv_timeout_ms: int | None, spin_us: int = 0) -> Channel:
        # spin_us is not nng's to honour: its I/O thread, not ours, waits for the reply.
        options: dict[str, int] = {"recv_max_size": self.max_frame_bytes}
        if recv_timeout_ms is not None:
            # resend_time=0: the keepalive handshake, not nng, re-drives an idle REQ.
            options.update(recv_timeout=recv_timeout_ms, resend_time=0)
        return _nng.dial(self._nng, self._nng.Req0(**options), url, "REQ",
                         self.dial_attempts, self.dial_interval_s)

    def _push(self, url: str, send_timeout_ms: int, rows: bool) -> Channel:
        sock = self._nng.Push0(send_timeout=send_timeout_ms)
        if rows and self.source_buffer:
            sock.send_buffer_size = self.source_buffer
        return _nng.dial(self._nng, sock, url, "PUSH", self.dial_attempts,
                         self.dial_interval_s)

    def _pull(self, url: str, spin_us: int = 0) -> Channel:
        sock = self._nng.Pull0(recv_max_size=self.max_frame_bytes)
        return _nng.listen(self._nng, sock, url, ipc_path(url), "PULL")
