"""nng's scalability protocols over IPC, spoken directly on Unix sockets.

Why not pynng on the hot path: nng hands every message between its I/O threads and the
thread that called ``recv``/``send``; through pynng that costs 50-70 µs of CPU per
message, far more than the message itself. Reading and writing the stream here costs a
few µs per message, and several messages arrive with one ``recv`` (bench/README.md).

The wire format (nng's and mangos' ``ipc`` transport), all integers big-endian:

- on connect each side sends ``00 'S' 'P' 00 <its protocol, u16> 00 00`` and checks the
  peer's (REQ 0x30 talks to REP 0x31, PUSH 0x50 to PULL 0x51);
- then every message is ``01 <payload length, u64> <payload>``;
- a REQ payload starts with a 4-byte request id whose top bit is set; the REP echoes it
  in front of its reply. A reply with another id answers an older request: dropped.

Only the plugin's side of eKuiper's channels is here: PUSH and REQ dial, PULL listens.

Threading: one thread uses a channel at a time; ``close`` may come from any thread and
wakes a blocked ``send``/``recv`` (a socket ``shutdown``, or the listener's wake pipe),
which then raises ChannelClosedError. Deadlines are socket options (SO_RCVTIMEO and
SO_SNDTIMEO), so the common case is one system call per send and per batch received.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import select
import socket
import struct
import threading
import time
from collections import deque

from ekuiper.errors import ChannelClosedError, ProtocolError

__all__ = [
    "PULL", "PUSH", "REP", "REQ", "ChannelTimeout", "PullListener", "PushDialer", "ReqDialer",
]

REQ, REP, PUSH, PULL = 0x30, 0x31, 0x50, 0x51
_PEER = {REQ: REP, PUSH: PULL, PULL: PUSH}
_NAMES = {REQ: "REQ", REP: "REP", PUSH: "PUSH", PULL: "PULL"}
_FRAME_HEAD = struct.Struct(">BQ")
_REQUEST_ID = struct.Struct(">I")
_MSG_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
_RECV_CHUNK = 65536  # below glibc's mmap threshold: no mmap/munmap per recv
HANDSHAKE_TIMEOUT_S = 5.0
# A PULL with one connection blocks in recv on it; after this long without data it
# waits in poll instead, which also sees new dialers.
_QUIET_S = 1.0
_log = logging.getLogger("ekuiper.transport")

# What connect() raises while nobody listens yet, or any longer.
# BlockingIOError: the listener's accept backlog is full (connect gives EAGAIN).
_NOT_LISTENING = (FileNotFoundError, ConnectionRefusedError, ConnectionResetError,
                  BrokenPipeError, BlockingIOError)


class ChannelTimeout(Exception):
    """A send or receive deadline passed; the channel is still usable."""


def _sp_header(protocol: int) -> bytes:
    return b"\x00SP\x00" + protocol.to_bytes(2, "big") + b"\x00\x00"


def _timeval(seconds: float | None) -> bytes:
    """A struct timeval for SO_RCVTIMEO/SO_SNDTIMEO; zero means no deadline."""
    if not seconds or seconds <= 0:
        return struct.pack("ll", 0, 0)
    whole = int(seconds)
    micros = int((seconds - whole) * 1_000_000)
    return struct.pack("ll", whole, micros or (0 if whole else 1))


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("the peer closed the connection")
        data += chunk
    return data


def _handshake(sock: socket.socket, protocol: int, url: str, path: str | None = None) -> None:
    """(Connect and) exchange SP headers; ConnectionError when the peer is no counterpart.

    Leaves the socket blocking, without a Python timeout (deadlines are socket options).
    """
    sock.settimeout(HANDSHAKE_TIMEOUT_S)
    try:
        if path is not None:
            sock.connect(path)
        sock.sendall(_sp_header(protocol))
        peer = _read_exactly(sock, 8)
    except socket.timeout:
        raise ConnectionError(f"{url}: no SP header from the peer within "
                              f"{HANDSHAKE_TIMEOUT_S:g} s; is eKuiper at the other end?") from None
    finally:
        sock.settimeout(None)
    expected = _PEER[protocol]
    if peer[:4] != b"\x00SP\x00" or peer[6:] != b"\x00\x00":
        raise ConnectionError(f"{url}: the peer does not speak nng's SP protocol "
                              f"(header {peer!r})")
    got = int.from_bytes(peer[4:6], "big")
    if got != expected:
        raise ConnectionError(
            f"{url}: the peer is {_NAMES.get(got, hex(got))}, a {_NAMES[protocol]} needs "
            f"{_NAMES[expected]}; two plugins or rules may share this socket path"
        )


class _Inbox:
    """Cuts a byte stream into SP message payloads."""

    __slots__ = ("_buf", "frames")

    def __init__(self) -> None:
        # bytearray: appends are amortised O(1) and deleting a prefix only moves a
        # start offset, so a 10 MB message arriving in 64 KiB pieces is copied once.
        self._buf = bytearray()
        self.frames: deque[bytes] = deque()

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        size = len(buf)
        pos = 0
        head = _FRAME_HEAD.unpack_from
        while size - pos >= 9:
            kind, length = head(buf, pos)
            if kind != 1:
                raise ProtocolError(f"SP message of kind {kind} (expected 1); the stream is "
                                    f"not nng's ipc framing")
            end = pos + 9 + length
            if end > size:
                break
            self.frames.append(bytes(buf[pos + 9:end]))
            pos = end
        if pos:
            del buf[:pos]

    @property
    def partial(self) -> int:
        return len(self._buf)


class _Stream:
    """Dialled socket shared by PUSH and REQ: connect with retries, close from any thread.

    The owning thread brackets each use of the socket with ``_enter``/``_leave``;
    ``close`` from another thread only shuts the socket down (which wakes the owner),
    and whoever is last closes the descriptor, so no thread ever sends on or reads
    from a descriptor number that was closed and reused meanwhile.
    """

    def __init__(self, path: str, url: str, protocol: int, attempts: int,
                 interval_s: float) -> None:
        self.path = path
        self.url = url
        self.protocol = protocol
        self.attempts = attempts
        self.interval_s = interval_s
        self.sock: socket.socket | None = None
        self.closed = False
        self._closed_event = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0
        self._recv_timeout: float | None = None
        self._send_timeout: float | None = None

    def set_deadlines(self, recv_timeout_s: float | None, send_timeout_s: float | None) -> None:
        self._recv_timeout = recv_timeout_s
        self._send_timeout = send_timeout_s

    # -- the owner's side ---------------------------------------------------------------

    def _enter(self) -> None:
        with self._lock:
            if self.closed:
                raise ChannelClosedError(f"{self.url} is closed")
            self._busy += 1

    def _leave(self) -> None:
        with self._lock:
            self._busy -= 1
            if self.closed and not self._busy:
                self._close_socket()

    def _closed_error(self) -> ChannelClosedError:
        return ChannelClosedError(f"{self.url} is closed")

    def connect(self, attempts: int | None = None, deadline: float | None = None) -> None:
        """Connect and handshake; retried while nothing listens. Raises ConnectionError.

        Tries ``attempts`` times, or until ``deadline`` (monotonic), or, with
        ``attempts=0``, until it connects or the stream is closed.
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
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                _handshake(sock, self.protocol, self.url, self.path)
            except _NOT_LISTENING as exc:
                sock.close()
                last = exc
                continue
            except (OSError, ConnectionError):
                sock.close()
                raise
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(self._recv_timeout))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(self._send_timeout))
            with self._lock:
                if not self.closed:
                    self.sock = sock
                    return
            sock.close()  # close() ran while we connected: it could not see this socket
            raise self._closed_error()
        raise ConnectionError(f"cannot connect to {self.url}: {last}; "
                              f"is eKuiper listening there?")

    def send_frame(self, frame: bytes) -> None:
        """Write one whole frame; ChannelTimeout only if none of it went out in time."""
        self._enter()
        try:
            self._send_frame(frame)
        finally:
            self._leave()

    def _send_frame(self, frame: bytes) -> None:
        sock = self.sock or self._redial_for_send()
        sent = 0
        view: memoryview | None = None
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
                self.connect(deadline=time.monotonic() + timeout)
            else:
                self.connect(attempts=0)
        except ConnectionError as exc:
            raise ChannelTimeout(f"send on {self.url} timed out: {exc}") from None
        assert self.sock is not None
        return self.sock

    def recv_into(self, inbox: _Inbox) -> None:
        """Block (up to the receive deadline) for more bytes; ChannelClosedError at close."""
        self._enter()
        try:
            sock = self.sock
            if sock is None:
                raise ConnectionResetError("not connected")
            try:
                data = sock.recv(_RECV_CHUNK)
            except BlockingIOError:
                raise ChannelTimeout(f"receive on {self.url} timed out") from None
            except OSError:
                if self.closed:
                    raise self._closed_error() from None
                raise
            if not data:
                if self.closed:
                    raise self._closed_error()
                raise ConnectionResetError(f"{self.url}: eKuiper closed the connection")
            inbox.feed(data)
        finally:
            self._leave()

    def drop(self) -> None:
        """The owner gives up the current connection (to redial)."""
        with self._lock:
            self._close_socket()

    # -- any thread -----------------------------------------------------------------------

    def _close_socket(self) -> None:
        # Called with the lock held.
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._closed_event.set()
            if self.sock is not None:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked send/recv
                except OSError:
                    pass
            if not self._busy:
                self._close_socket()


class PushDialer:
    """PUSH dialled to a PULL (eKuiper's source and ack channels)."""

    def __init__(self, path: str, url: str, send_timeout_ms: int, attempts: int = 50,
                 interval_s: float = 0.1) -> None:
        self.url = url
        self._stream = _Stream(path, url, PUSH, attempts, interval_s)
        self._stream.set_deadlines(None, send_timeout_ms / 1000 if send_timeout_ms > 0 else None)
        self._stream.connect()

    def send(self, data: bytes) -> None:
        self._stream.send_frame(_FRAME_HEAD.pack(1, len(data)) + data)

    def recv(self) -> bytes:
        raise ProtocolError(f"{self.url} is a PUSH socket: it cannot receive")

    def close(self) -> None:
        self._stream.close()


class ReqDialer:
    """REQ dialled to a REP (eKuiper's control and function channels).

    Unlike nng's REQ (60 s by default) it never resends a request on its own: eKuiper's
    control REP may rightly take an hour to answer, and a resent ``ok`` could be queued
    there as the answer to a later command. A lost connection is redialled and the
    pending request sent again.
    """

    def __init__(self, path: str, url: str, recv_timeout_ms: int | None = None,
                 attempts: int = 50, interval_s: float = 0.1) -> None:
        self.url = url
        self._stream = _Stream(path, url, REQ, attempts, interval_s)
        self._stream.set_deadlines(recv_timeout_ms / 1000 if recv_timeout_ms else None, None)
        self._inbox = _Inbox()
        self._next_id = random.getrandbits(31)
        self._pending: bytes | None = None
        self._pending_id = b""
        self._stream.connect()

    def send(self, data: bytes) -> None:
        self._next_id = (self._next_id + 1) & 0x7FFFFFFF
        request_id = _REQUEST_ID.pack(self._next_id | 0x80000000)
        frame = _FRAME_HEAD.pack(1, len(data) + 4) + request_id + data
        self._pending, self._pending_id = frame, request_id
        self._stream.send_frame(frame)

    def recv(self) -> bytes:
        if self._pending is None:
            raise ProtocolError(f"{self.url}: a REQ socket receives only after it sent")
        frames = self._inbox.frames
        while True:
            while frames:
                payload = frames.popleft()
                if payload[:4] == self._pending_id:
                    self._pending = None
                    return payload[4:]
                # A reply to an older request (one we gave up on after a timeout).
            try:
                self._stream.recv_into(self._inbox)
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
                _log.debug("%s: %s; redialling and sending the request again", self.url, exc)
                self._stream.drop()
                self._inbox = _Inbox()
                frames = self._inbox.frames
                self._stream.send_frame(self._pending)  # redials first

    def close(self) -> None:
        self._stream.close()


class PullListener:
    """PULL listening for PUSH dialers (eKuiper's sink channel).

    Binds like nng: a leftover socket file nobody listens on is replaced, a live one is
    ``address in use``; the file is removed on close. Messages from several dialers are
    taken in arrival order per connection. Connections are accepted, and their SP
    handshake answered, by the thread in ``recv`` (the sink loop is always there but for
    ``collect``); an nng or mangos dialer waits for that handshake before its first send.
    """

    def __init__(self, path: str, url: str) -> None:
        self.path = path
        self.url = url
        self.closed = False
        self._listener = self._bind(path, url)
        # Kept open until _release: a receiver may still poll it after close().
        self._listener_fd = self._listener.fileno()
        self._inode = os.stat(path).st_ino
        self._wake_r, self._wake_w = os.pipe()
        self._conns: dict[int, tuple[socket.socket, _Inbox]] = {}
        self._ready: deque[bytes] = deque()
        self._lock = threading.Lock()
        # Threads inside recv(): the last one out after close() frees the descriptors,
        # so no thread ever polls a descriptor number that was closed and reused.
        self._receivers = 0

    @staticmethod
    def _bind(path: str, url: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                sock.bind(path)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or not _is_stale(path):
                    raise
                os.unlink(path)
                sock.bind(path)
            sock.listen(16)
        except OSError as exc:
            sock.close()
            reason = "address in use" if exc.errno == errno.EADDRINUSE else exc.strerror or exc
            raise ConnectionError(f"cannot listen on {url}: {reason}") from None
        return sock

    def send(self, data: bytes) -> None:
        raise ProtocolError(f"{self.url} is a PULL socket: it cannot send")

    def recv(self) -> bytes:
        ready = self._ready
        if ready and not self.closed:
            return ready.popleft()
        with self._lock:
            if self.closed:
                raise ChannelClosedError(f"{self.url} is closed")
            self._receivers += 1
        try:
            while not ready:
                self._wait_for_data()
            return ready.popleft()
        finally:
            with self._lock:
                self._receivers -= 1
                release = self.closed and not self._receivers
            if release:
                self._release()

    def _wait_for_data(self) -> None:
        conns = self._conns
        if len(conns) == 1:
            # The usual case, eKuiper's one connection: a blocking recv is one system
            # call per batch and wakes sooner than poll-then-recv (a third less CPU per
            # acked message). After a quiet second it falls through to poll, which also
            # watches for new dialers and sleeps without a deadline.
            ((fd, (conn, inbox)),) = conns.items()
            try:
                data = conn.recv(_RECV_CHUNK)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if self.closed:
                raise ChannelClosedError(f"{self.url} is closed")
            if data is not None:
                self._take(fd, conn, inbox, data)
                return
        if self.closed:
            raise ChannelClosedError(f"{self.url} is closed")
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        poller.register(self._listener_fd, select.POLLIN)
        for fd in conns:
            poller.register(fd, select.POLLIN)
        events = poller.poll()
        if self.closed:
            raise ChannelClosedError(f"{self.url} is closed")
        for fd, _ in events:
            if fd == self._listener_fd:
                self._accept()
            elif fd in conns:
                conn, inbox = conns[fd]
                try:
                    data = conn.recv(_RECV_CHUNK, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                self._take(fd, conn, inbox, data)

    def _take(self, fd: int, conn: socket.socket, inbox: _Inbox, data: bytes) -> None:
        if not data:
            if inbox.partial:
                _log.warning("%s: the peer closed the connection in the middle of a "
                             "message; %d bytes dropped", self.url, inbox.partial)
            del self._conns[fd]
            conn.close()
            return
        try:
            inbox.feed(data)
        except ProtocolError as exc:
            _log.error("%s: %s; dropping the connection", self.url, exc)
            del self._conns[fd]
            conn.close()
        frames = inbox.frames
        while frames:
            self._ready.append(frames.popleft())

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        try:
            _handshake(conn, PULL, self.url)
        except (OSError, ConnectionError) as exc:
            _log.warning("%s: refused a connection: %s", self.url, exc)
            conn.close()
            return
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(_QUIET_S))
        self._conns[conn.fileno()] = (conn, _Inbox())

    def close(self) -> None:
        # Under the lock: a receiver that sees ``closed`` may free the descriptors at
        # once, so everything here that touches them must be done before it can look.
        with self._lock:
            if self.closed:
                return
            self.closed = True
            os.write(self._wake_w, b"x")  # stays readable: every later poll returns
            for conn, _ in list(self._conns.values()):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            try:
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
            except OSError:
                pass
            release = not self._receivers
        if release:
            self._release()

    def _release(self) -> None:
        self._listener.close()
        for conn, _ in list(self._conns.values()):
            conn.close()
        self._conns.clear()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)


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

