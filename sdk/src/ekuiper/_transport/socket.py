"""nng's SP protocols on Unix sockets: the I/O around ``wire``.

Why not pynng on the hot path: nng hands every message between its I/O threads and the
thread that called ``recv``/``send``; through pynng that costs 50-70 µs of CPU per
message, far more than the message itself. Reading and writing the stream here costs a
few µs per message, and several messages arrive with one ``recv`` (bench/README.md).

Only the plugin's side of eKuiper's channels is here: PUSH and REQ dial, PULL listens.
What the bytes mean (headers, frames, request ids, who may be a peer) is ``wire``.

Safety at the socket (every peer is a local process, but not always a friendly one):

- the PULL's socket file is made mode 0600 before it listens, whatever the umask, and
  a peer running as another user (SO_PEERCRED; root excepted, see
  :func:`wire.peer_refusal`) is refused on accept, as is a listener of another user
  after a dial: a PUSH never redials into someone else's socket;
- a frame longer than the cap (EKUIPER_MAX_FRAME_BYTES) drops its connection at once;
- the PULL answers SP handshakes from its poll loop, each with a deadline for the
  whole handshake, so a silent or trickling peer never delays another's messages;
- out of descriptors (EMFILE/ENFILE) on accept, the PULL stops accepting for a while
  instead of spinning;
- only a socket file is ever replaced or removed, never another kind of file.

Threading: one thread uses a channel at a time; ``close`` may come from any thread and
wakes a blocked ``send``/``recv`` (a socket ``shutdown``, or the listener's wake pipe),
which then raises ChannelClosedError. A REQ's ``send`` and ``recv`` take no lock on a
round trip (:class:`ReqDialer`). Deadlines are socket options (SO_RCVTIMEO and
SO_SNDTIMEO), so the common case is one system call per send and per batch received.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import stat
import struct
import threading
import time
from collections import deque
from time import perf_counter_ns

from ekuiper._transport import wire
from ekuiper._transport.wire import FRAME_HEAD, FrameDecoder, Handshake, ReqState
from ekuiper.errors import (
    ChannelClosedError,
    ChannelConnectError,
    ChannelTimeout,
    ProtocolError,
)

__all__ = ["PullListener", "PushDialer", "ReqDialer", "check_socket_path"]

_MSG_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
_RECV_CHUNK = 65536  # below glibc's mmap threshold: no mmap/munmap per recv
# The whole SP handshake of one connection, dialled or accepted.
HANDSHAKE_TIMEOUT_S = 5.0
# A PULL with one connection blocks in recv on it; after this long without data it
# waits in poll instead, which also sees new dialers.
_QUIET_S = 1.0
# Connections in their handshake at once; past this the oldest is dropped (a real
# peer's handshake takes microseconds, so only a flood of silent ones is hit).
_MAX_HANDSHAKES = 32
# Errors that mean "no descriptors or memory now": wait, then try again.
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_BACKOFF_MIN_S = 0.1
_ACCEPT_BACKOFF_MAX_S = 1.0
_SOCKET_MODE = 0o600
# How long a bind waits for the listener holding its path to go (see _becomes_stale).
BIND_WAIT_S = 2.0
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_log = logging.getLogger("ekuiper.transport")

# What connect() raises while nobody listens yet, or any longer.
# BlockingIOError: the listener's accept backlog is full (connect gives EAGAIN).
_NOT_LISTENING = (FileNotFoundError, ConnectionRefusedError, ConnectionResetError,
                  BrokenPipeError, BlockingIOError)


def _plugin_uid() -> int:
    return os.getuid()


def _peer_uid(sock: socket.socket) -> tuple[int, int] | None:
    """(pid, uid) of the process at the other end, where the OS tells (Linux)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    pid, uid, _ = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _PEERCRED.size))
    return pid, uid


def _refusal(sock: socket.socket) -> str | None:
    """Why the peer on ``sock`` may not talk to us, or None."""
    peer = _peer_uid(sock)
    if peer is None:
        return None
    reason = wire.peer_refusal(peer[1], _plugin_uid())
    return None if reason is None else f"the process at the other end (pid {peer[0]}) {reason}"


def _timeval(seconds: float | None) -> bytes:
    """A struct timeval for SO_RCVTIMEO/SO_SNDTIMEO; zero means no deadline."""
    if not seconds or seconds <= 0:
        return struct.pack("ll", 0, 0)
    whole = int(seconds)
    micros = int((seconds - whole) * 1_000_000)
    return struct.pack("ll", whole, micros or (0 if whole else 1))


def check_socket_path(path: str, url: str) -> bool:
    """True if a socket file is at ``path``, False if nothing is; else ChannelConnectError.

    Only a socket file may be taken over as stale: a regular file (or a directory, or a
    symlink) at a socket path is never removed.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISSOCK(mode):
        return True
    kind = ("a directory" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode)
            else "a regular file" if stat.S_ISREG(mode) else "a file that is not a socket")
    raise ChannelConnectError(
        f"cannot listen on {url}: {path} is {kind}, not a socket; it is left alone: "
        f"remove it if nothing needs it"
    )


class _DialledSocket(socket.socket):
    """A dialled socket whose descriptor is closed by whoever drops the last reference.

    Why: a channel's owner may use it without a lock (:meth:`ReqDialer.send` and
    ``recv``) while ``close`` runs in another thread. ``close`` then only shuts it down
    (which wakes the owner) and drops the channel's reference; the descriptor is freed
    when the owner lets go of it too, so its number cannot be reused for another file
    while a system call may still use it. In CPython that is the moment the last
    reference goes; elsewhere, when the collector finds it unreachable (by then no
    thread can be using it either).
    """

    __slots__ = ()

    def __del__(self) -> None:
        self.close()  # without it, socket's own finaliser closes it with a ResourceWarning


class _Guarded:
    """Descriptors shared by the owner's thread and ``close`` from any other thread.

    The owner brackets each use with ``_enter``/``_leave``; ``close`` only wakes it
    (``_wake``) and whoever is last out frees the descriptors (``_release``, exactly
    once), so no thread ever uses a descriptor number that was closed and reused
    meanwhile. Both run with the lock held and must not block. (A REQ's owner skips the
    brackets on its round trip: its stream's ``_release`` leaves the descriptor to the
    socket's last holder, see :class:`_DialledSocket`.)
    """

    url: str

    def __init__(self) -> None:
        self.closed = False
        self._lock = threading.Lock()
        self._users = 0

    def _closed_error(self) -> ChannelClosedError:
        return ChannelClosedError(f"{self.url} is closed")

    def _enter(self) -> None:
        with self._lock:
            if self.closed:
                raise self._closed_error()
            self._users += 1

    def _leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self.closed and not self._users:
                self._release()

    def close(self) -> None:
        """Close the channel; a thread blocked in it raises ChannelClosedError."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._wake()
            if not self._users:
                self._release()

    def _wake(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


class _Stream(_Guarded):
    """Dialled socket shared by PUSH and REQ: connect with retries, close from any thread."""

    def __init__(self, path: str, url: str, protocol: int, attempts: int,
                 interval_s: float) -> None:
        super().__init__()
        self.path = path
        self.url = url
        self.protocol = protocol
        self.attempts = attempts
        self.interval_s = interval_s
        self.sock: socket.socket | None = None
        self._closed_event = threading.Event()
        self._recv_timeout: float | None = None
        self._send_timeout: float | None = None
        self._refusal_logged = False
        # True once an owner sends and receives without the lock (see _release).
        self.lock_free = False

    def set_deadlines(self, recv_timeout_s: float | None, send_timeout_s: float | None) -> None:
        self._recv_timeout = recv_timeout_s
        self._send_timeout = send_timeout_s

    # -- the owner's side ---------------------------------------------------------------

    def connect(self, attempts: int | None = None, deadline: float | None = None,
                retry_refusals: bool = False) -> None:
        """Connect and handshake; retried while nothing listens. Raises ChannelConnectError.

        Tries ``attempts`` times, or until ``deadline`` (monotonic), or, with
        ``attempts=0``, until it connects or the stream is closed. A peer that is not
        our counterpart (another protocol, another user) fails at once unless
        ``retry_refusals``: a redial waits for eKuiper to come back instead.
        """
        limit = self.attempts if attempts is None else attempts
        last: Exception | None = None
        attempt = 0
        while True:
            if attempt:
                out_of_time = deadline is not None and time.monotonic() >= deadline
                if (limit and attempt >= limit) or out_of_time:
                    break
                self._closed_event.wait(self.interval_s)
            attempt += 1
            if self.closed:
                raise self._closed_error()
            try:
                sock = self._open()
            except _NOT_LISTENING as exc:
                last = exc
                continue
            except ChannelConnectError as exc:
                if not retry_refusals:
                    raise
                if not self._refusal_logged:
                    self._refusal_logged = True
                    _log.warning("%s; waiting for eKuiper to listen there again", exc)
                last = exc
                continue
            except OSError as exc:
                if exc.errno in _EXHAUSTED:  # no descriptor for a socket yet: wait
                    last = exc
                    continue
                raise ChannelConnectError(f"cannot connect to {self.url}: "
                                          f"{exc.strerror or exc}") from None
            self._refusal_logged = False
            with self._lock:
                if not self.closed:
                    self.sock = sock
                    return
            sock.close()  # close() ran while we connected: it could not see this socket
            raise self._closed_error()
        raise ChannelConnectError(f"cannot connect to {self.url}: {last}; "
                                  f"is eKuiper listening there?")

    def _open(self) -> socket.socket:
        """One connection, its peer checked and its SP handshake done within the deadline."""
        sock = _DialledSocket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
            sock.settimeout(HANDSHAKE_TIMEOUT_S)
            sock.connect(self.path)
            refusal = _refusal(sock)
            if refusal is not None:
                raise ChannelConnectError(f"{self.url}: refused to talk to the listener: "
                                          f"{refusal}")
            handshake = Handshake(self.protocol, self.url)
            sock.sendall(handshake.header)
            while handshake.missing:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout
                sock.settimeout(left)
                chunk = sock.recv(handshake.missing)
                if not chunk:
                    raise ConnectionResetError("the peer closed the connection")
                handshake.feed(chunk)
            sock.settimeout(None)  # deadlines from here on are socket options
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(self._recv_timeout))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(self._send_timeout))
        except socket.timeout:
            sock.close()
            raise ChannelConnectError(
                f"{self.url}: no SP header from the peer within {HANDSHAKE_TIMEOUT_S:g} s; "
                f"is eKuiper at the other end?") from None
        except BaseException:
            sock.close()
            raise
        return sock

    def send_frame(self, frame: bytes, sent: int = 0) -> None:
        """Write one whole frame, of which ``sent`` bytes already went out on this connection.

        ChannelTimeout only if none of it went out in time.
        """
        self._enter()
        try:
            self._send_frame(frame, sent)
        finally:
            self._leave()

    def _send_frame(self, frame: bytes, sent: int) -> None:
        sock = self.sock
        if sock is None:
            sock, sent = self._redial_for_send(), 0
        view: memoryview | None = memoryview(frame) if sent else None
        while True:
            try:
                if view is None:
                    sent = sock.send(frame, _MSG_FLAGS)
                    if sent == len(frame):
                        return
                    view = memoryview(frame)
                else:
                    sent += sock.send(view[sent:], _MSG_FLAGS)
                    if sent == len(frame):
                        return
            except BlockingIOError:
                if sent == 0:
                    raise ChannelTimeout(f"send on {self.url} timed out") from None
                # Half a frame is out: the rest must follow or the stream is corrupt.
            except OSError as exc:
                if self.closed:
                    raise self._closed_error() from None
                # eKuiper closed its end (rule stopped, or restarted): redial as nng
                # would and send the frame again, whole, on the new connection.
                _log.debug("%s: connection lost (%s); redialling", self.url, exc)
                self.drop()
                sock = self._redial_for_send()
                sent, view = 0, None

    def _redial_for_send(self) -> socket.socket:
        # As an nng socket without a pipe: the send waits for a peer, up to its deadline
        # (without one, until the channel is closed).
        timeout = self._send_timeout
        try:
            if timeout:
                self.connect(deadline=time.monotonic() + timeout, retry_refusals=True)
            else:
                self.connect(attempts=0, retry_refusals=True)
        except ChannelConnectError as exc:
            raise ChannelTimeout(f"send on {self.url} timed out: {exc}") from None
        assert self.sock is not None
        return self.sock

    def recv_some(self, poll: _AdaptivePoll | None = None) -> bytes:
        """Block (up to the receive deadline) for more bytes; ChannelClosedError at close.

        ``poll``: when it says so, poll without sleeping first (see :class:`ReqDialer`);
        the receive deadline counts from when the poll gives up.
        ConnectionResetError when the connection is gone (the caller redials).
        Lock-free, for an owner that is the only thread sending and receiving on the
        stream: the socket it holds stays open while it is held (:class:`_DialledSocket`),
        and a ``close`` meanwhile shuts it down, so the ``recv`` returns and the closed
        flag, set before the shutdown, names why.
        """
        sock = self.sock
        if sock is None:
            if self.closed:
                raise self._closed_error()
            raise ConnectionResetError("not connected")
        try:
            data = poll.recv(sock) if poll else sock.recv(_RECV_CHUNK)
        except OSError as exc:
            sock = None  # an error's traceback must not keep the descriptor open
            if isinstance(exc, BlockingIOError):
                raise ChannelTimeout(f"receive on {self.url} timed out") from None
            if self.closed:
                raise self._closed_error() from None
            raise
        if not data:
            sock = None
            if self.closed:
                raise self._closed_error()
            raise ConnectionResetError(f"{self.url}: eKuiper closed the connection")
        return data

    def drop(self) -> None:
        """The owner gives up the current connection (to redial)."""
        with self._lock:
            sock, self.sock = self.sock, None
            if sock is not None:
                sock.close()  # the owner's own: no other thread uses it

    # -- any thread -----------------------------------------------------------------------

    def _wake(self) -> None:
        self._closed_event.set()
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked send/recv
            except OSError:
                pass

    def _release(self) -> None:
        sock, self.sock = self.sock, None
        # With an owner that uses the socket without the lock (recv_some, ReqDialer.send),
        # only the reference: the owner may still hold it, and the descriptor goes with
        # its last holder (_DialledSocket).
        if sock is not None and not self.lock_free:
            sock.close()


class _AdaptivePoll:
    """Whether a receive polls before it sleeps, from how long the last wait took.

    A wait that ended within the window makes the next receive poll for up to the
    window, without sleeping; one that took longer (or timed out) makes it sleep at
    once, until a wait ends within the window again. So a busy channel skips the
    sleep-and-wake of each message, and an idle or slow one pays two clock reads.
    Used by the one thread that receives on the socket.
    """

    __slots__ = ("quick", "window_ns")

    def __init__(self, window_us: int, quick: bool) -> None:
        self.window_ns = window_us * 1000
        self.quick = quick  # did the last wait end within the window?

    def recv(self, sock: socket.socket) -> bytes:
        """``sock.recv``, polled first if the last wait was quick; raises as it does."""
        began = perf_counter_ns()
        window = self.window_ns
        if self.quick:
            self.quick = False  # until this wait proves it (an error leaves it so)
            data = _poll_recv(sock, began + window)
            if data is not None:
                self.quick = True
                return data
        data = sock.recv(_RECV_CHUNK)
        self.quick = perf_counter_ns() - began < window
        return data


def _poll_recv(sock: socket.socket, deadline_ns: int) -> bytes | None:
    """What ``sock`` has before ``deadline_ns`` (perf_counter_ns; b"" at its end), polled
    without sleeping; None when nothing came."""
    recv = sock.recv
    while True:
        try:
            return recv(_RECV_CHUNK, socket.MSG_DONTWAIT)
        except BlockingIOError:
            if perf_counter_ns() > deadline_ns:
                return None


class PushDialer:
    """PUSH dialled to a PULL (eKuiper's source and ack channels)."""

    def __init__(self, path: str, url: str, send_timeout_ms: int, attempts: int = 50,
                 interval_s: float = 0.1) -> None:
        self.url = url
        self._stream = _Stream(path, url, wire.PUSH, attempts, interval_s)
        self._stream.set_deadlines(None, send_timeout_ms / 1000 if send_timeout_ms > 0 else None)
        self._stream.connect()

    def send(self, data: bytes) -> None:
        # FRAME_HEAD inline, not wire.encode_frame: a call more per row is measurable.
        self._stream.send_frame(FRAME_HEAD.pack(1, len(data)) + data)

    def recv(self) -> bytes:
        raise TypeError(f"{self.url} is a PUSH socket: it cannot receive")

    def close(self) -> None:
        self._stream.close()


class ReqDialer:
    """REQ dialled to a REP (eKuiper's control and function channels).

    Unlike nng's REQ (60 s by default) it never resends a request on its own: eKuiper's
    control REP may rightly take an hour to answer, and a resent ``ok`` could be queued
    there as the answer to a later command. A lost connection is redialled and the
    pending request sent again.

    ``spin_us`` (the function channel; 0 for none): after answering, poll for the next
    request for up to that long before sleeping in ``recv``, while requests keep coming
    that fast. eKuiper sends a rule's next call within some 30 µs of the answer, and
    sleeping then waking for it costs the round trip more than the plugin's own work
    (the function rate doubles, at the price of that much CPU per call on a busy rule).
    Whether to spin is decided per receive from how long the last one waited: a
    request that came later than the spin window turns spinning off until one comes
    within it again, so an idle or slow rule costs two clock reads per call.

    Threading: one thread sends and receives (the function loop, or the control
    thread), so ``send`` and ``recv`` take no lock on the round trip's usual path (one
    system call each); ``close`` may come from any thread and makes a blocked or later
    ``send``/``recv`` raise ChannelClosedError (see :meth:`_Stream.recv_some`).
    """

    def __init__(self, path: str, url: str, recv_timeout_ms: int | None = None,
                 attempts: int = 50, interval_s: float = 0.1,
                 max_frame_bytes: int = wire.DEFAULT_MAX_FRAME_BYTES,
                 spin_us: int = 0) -> None:
        self.url = url
        # The first request has nothing to go on, nor a hurry: it waits without polling.
        self._poll = _AdaptivePoll(spin_us, quick=False) if spin_us else None
        self._stream = _Stream(path, url, wire.REQ, attempts, interval_s)
        self._stream.lock_free = True
        self._stream.set_deadlines(recv_timeout_ms / 1000 if recv_timeout_ms else None, None)
        self._max_frame = max_frame_bytes
        self._decoder = FrameDecoder(max_frame_bytes)
        self._state = ReqState()
        self._stream.connect()

    def send(self, data: bytes) -> None:
        frame = self._state.request(data)
        # The round trip's fast path, without the stream's lock (see recv_some): one
        # send of the whole frame. Anything else (no connection, a partial write, an
        # error) is the locked path's to finish, raise or redial.
        sock = self._stream.sock
        sent = 0
        if sock is not None:
            try:
                sent = sock.send(frame, _MSG_FLAGS)
            except OSError:
                sent = 0
            if sent == len(frame):
                return
            sock = None  # an error from the locked path must not hold the socket open
        self._stream.send_frame(frame, sent)

    def recv(self) -> bytes:
        state = self._state
        if state.pending is None:
            raise ProtocolError(f"{self.url}: a REQ socket receives only after it sent")
        stream = self._stream
        decoder = self._decoder
        poll = self._poll
        while True:
            frames = decoder.frames
            while frames:
                reply = state.reply(frames.popleft())
                if reply is not None:
                    return reply
                # A reply to an older request (one we gave up on after a timeout).
            try:
                data = stream.recv_some(poll)
                reply = state.whole_reply(data, decoder)  # the usual case
                if reply is not None:
                    return reply
                try:
                    decoder.feed(data)
                except ProtocolError as exc:
                    _log.error("%s: %s; dropping the connection", self.url, exc)
                    raise ConnectionResetError(f"{self.url}: {exc}") from None
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
                _log.debug("%s: %s; redialling and sending the request again", self.url, exc)
                stream.drop()
                self._decoder = decoder = FrameDecoder(self._max_frame)
                stream.send_frame(state.pending)  # redials first

    def close(self) -> None:
        self._stream.close()


class _Handshaking:
    """An accepted connection whose SP handshake is under way."""

    __slots__ = ("deadline", "handshake", "out", "sock")

    def __init__(self, sock: socket.socket, handshake: Handshake, deadline: float) -> None:
        self.sock = sock
        self.handshake = handshake
        self.out = handshake.header  # what of our header is still to be sent
        self.deadline = deadline


class PullListener(_Guarded):
    """PULL listening for PUSH dialers (eKuiper's sink channel).

    Binds like nng: a leftover socket file nobody listens on is replaced, a live one is
    ``address in use``, anything but a socket file is refused; the file is mode 0600 and
    removed on close. Messages from several dialers are taken in arrival order per
    connection. Connections are accepted, and their SP handshake answered, by the thread
    in ``recv`` (the sink loop is always there but for ``collect``), all from one poll
    loop that never blocks on one peer; an nng or mangos dialer waits for that handshake
    before its first send.

    ``spin_us`` (0 for none): with eKuiper's one connection, poll that long for the next
    message before sleeping in recv, as ReqDialer does for a function's next request and
    for the same reason: with acks, eKuiper sends the next message only after the ack, and
    sleeping then waking for it costs more than the message. A wait longer than the window
    turns the poll off until data comes quickly again.
    """

    def __init__(self, path: str, url: str,
                 max_frame_bytes: int = wire.DEFAULT_MAX_FRAME_BYTES,
                 spin_us: int = 0) -> None:
        super().__init__()
        self.path = path
        self.url = url
        self.max_frame_bytes = max_frame_bytes
        self._listener, self._inode = self._bind(path, url)
        # Kept open until _release: a receiver may still poll it after close().
        self._listener_fd = self._listener.fileno()
        self._wake_r, self._wake_w = os.pipe()
        self._conns: dict[int, tuple[socket.socket, FrameDecoder]] = {}
        self._handshaking: dict[int, _Handshaking] = {}
        self._ready: deque[bytes] = deque()
        # Out of descriptors: no accept before this (monotonic), and the next wait.
        self._accept_after = 0.0
        self._accept_backoff = 0.0
        self._last_refusal_log = -1e9
        self._poll = _AdaptivePoll(spin_us, quick=True) if spin_us else None

    @staticmethod
    def _bind(path: str, url: str) -> tuple[socket.socket, int]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound = False
        try:
            check_socket_path(path, url)
            try:
                sock.bind(path)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or not check_socket_path(path, url) \
                        or not _becomes_stale(path):
                    raise
                os.unlink(path)
                sock.bind(path)
            bound = True
            inode = os.lstat(path).st_ino
            # Before listen(): until then nobody can connect, so no one slips in with
            # the umask's looser mode.
            os.chmod(path, _SOCKET_MODE)
            sock.listen(16)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            if bound:
                _unlink_if_ours(path, None)
            if isinstance(exc, ChannelConnectError):
                raise
            reason = "address in use" if exc.errno == errno.EADDRINUSE else exc.strerror or exc
            raise ChannelConnectError(f"cannot listen on {url}: {reason}") from None
        return sock, inode

    def send(self, data: bytes) -> None:
        raise TypeError(f"{self.url} is a PULL socket: it cannot send")

    def recv(self) -> bytes:
        ready = self._ready
        if ready and not self.closed:
            return ready.popleft()
        self._enter()
        try:
            while not ready:
                self._wait_for_data()
            return ready.popleft()
        finally:
            self._leave()

    def _wait_for_data(self) -> None:
        conns = self._conns
        if len(conns) == 1 and not self._handshaking:
            # The usual case, eKuiper's one connection: a blocking recv is one system
            # call per batch and wakes sooner than poll-then-recv (a third less CPU per
            # acked message). After a quiet second it falls through to poll, which also
            # watches for new dialers and sleeps without a deadline.
            ((fd, (conn, decoder)),) = conns.items()
            poll = self._poll
            data: bytes | None
            try:
                data = poll.recv(conn) if poll else conn.recv(_RECV_CHUNK)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if self.closed:
                raise self._closed_error()
            if data is not None:
                self._take(fd, conn, decoder, data)
                return
        if self.closed:
            raise self._closed_error()
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        timeout_ms: int | None = None
        wake_at = self._next_deadline()
        if wake_at is not None:
            timeout_ms = max(0, int((wake_at - time.monotonic()) * 1000) + 1)
        if not self._accept_after:
            poller.register(self._listener_fd, select.POLLIN)
        for fd in conns:
            poller.register(fd, select.POLLIN)
        for fd, pending in self._handshaking.items():
            poller.register(fd, select.POLLIN | (select.POLLOUT if pending.out else 0))
        events = poller.poll(timeout_ms)
        if self.closed:
            raise self._closed_error()
        for fd, _ in events:
            if fd == self._listener_fd:
                self._accept()
            elif fd in conns:
                conn, decoder = conns[fd]
                try:
                    data = conn.recv(_RECV_CHUNK, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                self._take(fd, conn, decoder, data)
            elif fd in self._handshaking:
                self._advance(fd)
        if wake_at is not None:
            self._expire(time.monotonic())

    def _take(self, fd: int, conn: socket.socket, decoder: FrameDecoder, data: bytes) -> None:
        if not data:
            if decoder.partial:
                _log.warning("%s: the peer closed the connection in the middle of a "
                             "message; %d bytes dropped", self.url, decoder.partial)
            del self._conns[fd]
            conn.close()
            return
        try:
            decoder.feed(data)
        except ProtocolError as exc:  # FrameTooLargeError too: the cap was passed
            _log.error("%s: %s; dropping the connection", self.url, exc)
            del self._conns[fd]
            conn.close()
        frames = decoder.frames
        while frames:
            self._ready.append(frames.popleft())

    # -- accepting and handshakes, all without blocking -------------------------------------

    def _next_deadline(self) -> float | None:
        """When the poll must wake: a handshake's deadline or the end of an accept pause."""
        times = [pending.deadline for pending in self._handshaking.values()]
        if self._accept_after:
            times.append(self._accept_after)
        return min(times) if times else None

    def _expire(self, now: float) -> None:
        for fd, pending in list(self._handshaking.items()):
            if pending.deadline <= now:
                self._refuse(fd, f"no SP header within {HANDSHAKE_TIMEOUT_S:g} s")
        if self._accept_after and self._accept_after <= now:
            self._accept_after = 0.0

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in _EXHAUSTED:
                self._pause_accepting(exc)
            return  # e.g. ECONNABORTED: that dialer gave up already
        self._accept_backoff = 0.0
        refusal = _refusal(conn)
        if refusal is not None:
            self._log_refusal(refusal)
            conn.close()
            return
        if len(self._handshaking) >= _MAX_HANDSHAKES:
            oldest = next(iter(self._handshaking))
            self._refuse(oldest, f"more than {_MAX_HANDSHAKES} connections in their "
                                 f"handshake at once; dropped the oldest")
        pending = _Handshaking(conn, Handshake(wire.PULL, self.url),
                               time.monotonic() + HANDSHAKE_TIMEOUT_S)
        self._handshaking[conn.fileno()] = pending
        self._advance(conn.fileno())

    def _advance(self, fd: int) -> None:
        """Move one handshake on as far as the socket allows without waiting."""
        pending = self._handshaking[fd]
        conn = pending.sock
        handshake = pending.handshake
        try:
            if pending.out:
                sent = conn.send(pending.out, socket.MSG_DONTWAIT | _MSG_FLAGS)
                pending.out = pending.out[sent:]
            if handshake.missing:
                chunk = conn.recv(handshake.missing, socket.MSG_DONTWAIT)
                if not chunk:
                    self._refuse(fd, "the peer hung up during its handshake", quiet=True)
                    return
                handshake.feed(chunk)
        except BlockingIOError:
            return
        except ChannelConnectError as exc:  # before OSError: it is one
            self._refuse(fd, str(exc))
            return
        except OSError as exc:
            self._refuse(fd, f"the connection failed during its handshake ({exc})", quiet=True)
            return
        if handshake.missing or pending.out:
            return  # more of the peer's header to come, or ours still to send
        del self._handshaking[fd]
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(_QUIET_S))
        self._conns[fd] = (conn, FrameDecoder(self.max_frame_bytes))

    def _refuse(self, fd: int, reason: str, quiet: bool = False) -> None:
        pending = self._handshaking.pop(fd)
        pending.sock.close()
        if quiet:
            _log.debug("%s: dropped a connection: %s", self.url, reason)
        else:
            self._log_refusal(reason)

    def _log_refusal(self, reason: str) -> None:
        # At most one warning a second: a flood of bad peers must not flood the log.
        now = time.monotonic()
        if now - self._last_refusal_log >= 1.0:
            self._last_refusal_log = now
            _log.warning("%s: refused a connection: %s", self.url, reason)
        else:
            _log.debug("%s: refused a connection: %s", self.url, reason)

    def _pause_accepting(self, exc: OSError) -> None:
        backoff = self._accept_backoff
        backoff = min(_ACCEPT_BACKOFF_MAX_S, backoff * 2) if backoff else _ACCEPT_BACKOFF_MIN_S
        if not self._accept_backoff:
            _log.warning("%s: cannot accept a connection (%s); the process is out of "
                         "file descriptors or memory; trying again in %g s, then less "
                         "often", self.url, exc.strerror or exc, backoff)
        self._accept_backoff = backoff
        self._accept_after = time.monotonic() + backoff

    # -- closing ------------------------------------------------------------------------

    def _wake(self) -> None:
        # Under the lock: a receiver that sees ``closed`` may free the descriptors at
        # once, so everything here that touches them must be done before it can look.
        os.write(self._wake_w, b"x")  # stays readable: every later poll returns
        for conn, _ in list(self._conns.values()):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        _unlink_if_ours(self.path, self._inode)

    def _release(self) -> None:
        self._listener.close()
        for conn, _ in list(self._conns.values()):
            conn.close()
        self._conns.clear()
        for pending in list(self._handshaking.values()):
            pending.sock.close()
        self._handshaking.clear()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)


def _unlink_if_ours(path: str, inode: int | None) -> None:
    """Remove the socket file at ``path`` if it is still a socket (and ours, by inode)."""
    try:
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode) and (inode is None or st.st_ino == inode):
            os.unlink(path)
    except OSError:
        pass


def _becomes_stale(path: str) -> bool:
    """The listener at ``path`` is gone, or goes within BIND_WAIT_S.

    Why wait: eKuiper replaces a plugin (PUT) by SIGKILLing the old process without waiting
    for it and replaying the start commands to the new one at once, so the old process
    can still hold the sink's socket when the new one binds.
    """
    deadline = time.monotonic() + BIND_WAIT_S
    while not _is_stale(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _is_stale(path: str) -> bool:
    """A socket file whose listener is gone (nng replaces those too)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)  # a live listener with a full backlog must not hang us
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        probe.close()
    return False
