"""nng's scalability protocols over IPC, as pure code: no sockets, no threads.

The wire format (nng's and mangos' ``ipc`` transport), all integers big-endian:

- on connect each side sends ``00 'S' 'P' 00 <its protocol, u16> 00 00`` and checks the
  peer's (REQ 0x30 talks to REP 0x31, PUSH 0x50 to PULL 0x51);
- then every message is ``01 <payload length, u64> <payload>``;
- a REQ payload starts with a 4-byte request id whose top bit is set; the REP echoes it
  in front of its reply. A reply with another id answers an older request: dropped.

Here are the pieces that decide what bytes mean, so they can be tested and fuzzed
without a socket: the SP header exchange (:class:`Handshake`), who may be a peer
(:func:`peer_refusal`), frame encoding and the frame decoder with its length cap
(:class:`FrameDecoder`), and a REQ socket's request ids (:class:`ReqState`). The I/O
that drives them is ``socket.py``.
"""

from __future__ import annotations

import random
import struct
from collections import deque
from typing import Final

from ekuiper.errors import ChannelConnectError, FrameTooLargeError, ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "FRAME_HEAD",
    "HEADER_SIZE",
    "MAX_FRAME_ENV",
    "NAMES",
    "PEER",
    "PULL",
    "PUSH",
    "REP",
    "REQ",
    "FrameDecoder",
    "Handshake",
    "ReqState",
    "check_header",
    "encode_frame",
    "peer_refusal",
    "sp_header",
]

REQ: Final = 0x30
REP: Final = 0x31
PUSH: Final = 0x50
PULL: Final = 0x51
PEER: Final = {REQ: REP, REP: REQ, PUSH: PULL, PULL: PUSH}
NAMES: Final = {REQ: "REQ", REP: "REP", PUSH: "PUSH", PULL: "PULL"}

HEADER_SIZE: Final = 8
_MAGIC: Final = b"\x00SP\x00"
FRAME_HEAD: Final = struct.Struct(">BQ")  # kind 1, payload length
_REQUEST_ID: Final = struct.Struct(">I")
# A REQ frame up to its body: kind 1, payload length, request id.
_REQUEST_HEAD: Final = struct.Struct(">BQI")

MAX_FRAME_ENV: Final = "EKUIPER_MAX_FRAME_BYTES"
# 64 MiB: above any frame eKuiper really sends (its largest are sink batches, a JSON
# array of the batch's rows: 64 MiB is some 100,000 rows of 600 bytes), 64 times what
# eKuiper's own mangos sockets accept by default (1 MiB), and small enough that a peer
# announcing a huge length cannot make the plugin buffer more than that per connection.
DEFAULT_MAX_FRAME_BYTES: Final = 64 * 1024 * 1024


def sp_header(protocol: int) -> bytes:
    """The 8 bytes a socket of ``protocol`` sends first on every connection."""
    return _MAGIC + protocol.to_bytes(2, "big") + b"\x00\x00"


def check_header(peer: bytes, protocol: int, url: str) -> None:
    """Accept the peer's 8 header bytes, or ChannelConnectError saying what it is."""
    expected = PEER[protocol]
    if peer[:4] != _MAGIC or peer[6:] != b"\x00\x00" or len(peer) != HEADER_SIZE:
        raise ChannelConnectError(f"{url}: the peer does not speak nng's SP protocol "
                                  f"(header {peer[:HEADER_SIZE]!r})")
    got = int.from_bytes(peer[4:6], "big")
    if got != expected:
        raise ChannelConnectError(
            f"{url}: the peer is {NAMES.get(got, hex(got))}, a {NAMES[protocol]} needs "
            f"{NAMES[expected]}; two plugins or rules may share this socket path"
        )


class Handshake:
    """One connection's SP header exchange, fed the peer's bytes as they arrive.

    Send :attr:`header`; read at most :attr:`missing` bytes at a time and ``feed`` them.
    A peer whose first bytes are not an SP header is refused as soon as they show it.
    """

    __slots__ = ("_got", "header", "protocol", "url")

    def __init__(self, protocol: int, url: str) -> None:
        self.protocol = protocol
        self.url = url
        self.header = sp_header(protocol)
        self._got = b""

    @property
    def missing(self) -> int:
        """Bytes of the peer's header still to come (0: the handshake is done)."""
        return HEADER_SIZE - len(self._got)

    def feed(self, data: bytes) -> bytes | None:
        """Take the peer's bytes: None while its header is incomplete, else what follows it.

        Raises ChannelConnectError when the header is not an SP header of our peer.
        """
        got = self._got + data
        if len(got) < HEADER_SIZE:
            if got[:4] != _MAGIC[:len(got)]:
                check_header(got, self.protocol, self.url)  # raises: not SP at all
            self._got = got
            return None
        self._got = got[:HEADER_SIZE]
        check_header(self._got, self.protocol, self.url)
        return got[HEADER_SIZE:]


def peer_refusal(peer_uid: int, own_uid: int) -> str | None:
    """Why a peer running as ``peer_uid`` may not talk to us (None: it may).

    Only the plugin's own user, which is eKuiper's (eKuiper starts the plugin), and root
    may connect. Root is let in because refusing it protects nothing (root can read the
    plugin's memory anyway) and a kuiperd run as root may start a plugin that gave up its
    privileges. Any other local user is refused: it could otherwise feed rows into a
    sink, or stand in for eKuiper after its listener went away.
    """
    if peer_uid in (own_uid, 0):
        return None
    return (f"runs as user id {peer_uid}, and only the plugin's own user "
            f"({own_uid}) or root may connect")


def encode_frame(payload: bytes) -> bytes:
    """One SP message on the wire."""
    return FRAME_HEAD.pack(1, len(payload)) + payload


class FrameDecoder:
    """Cuts a byte stream into SP message payloads, refusing any longer than the cap.

    A frame announcing more than ``max_frame`` bytes raises FrameTooLargeError as soon
    as its 9-byte head arrives, before any of its body is buffered; the connection must
    then be dropped. Frames complete before a bad head stay in :attr:`frames`.
    """

    __slots__ = ("_buf", "frames", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        # bytearray: appends are amortised O(1) and deleting a prefix only moves a
        # start offset, so a 10 MB message arriving in 64 KiB pieces is copied once.
        self._buf = bytearray()
        self.frames: deque[bytes] = deque()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        size = len(buf)
        last = size - 9  # the last offset a whole 9-byte head can start at
        pos = 0
        head = FRAME_HEAD.unpack_from
        append = self.frames.append
        cap = self.max_frame
        # Every bytecode in these loops runs once per message (bench/README.md), so the
        # cap costs nothing per message in the usual case: a buffer no longer than the
        # cap cannot hold a whole frame longer than it, and only the frame still
        # arriving needs the check. Only a small cap, or the end of a frame near it,
        # takes the second loop.
        try:
            if last <= cap:
                while pos <= last:
                    kind, length = head(buf, pos)
                    if kind != 1:
                        self._refuse(kind, length)
                    end = pos + 9 + length
                    if end > size:
                        if length > cap:
                            self._refuse(kind, length)
                        break
                    append(bytes(buf[pos + 9:end]))
                    pos = end
            else:
                while pos <= last:
                    kind, length = head(buf, pos)
                    if kind != 1 or length > cap:
                        self._refuse(kind, length)
                    end = pos + 9 + length
                    if end > size:
                        break
                    append(bytes(buf[pos + 9:end]))
                    pos = end
        finally:
            if pos:
                del buf[:pos]

    def _refuse(self, kind: int, length: int) -> None:
        self._buf.clear()  # nothing after a bad head can be trusted
        if kind != 1:
            raise ProtocolError(f"SP message of kind {kind} (expected 1); the stream is "
                                f"not nng's ipc framing")
        raise FrameTooLargeError(
            f"a frame of {length} bytes is longer than the cap of {self.max_frame} bytes; "
            f"raise {MAX_FRAME_ENV} if eKuiper really sends frames that long"
        )

    @property
    def partial(self) -> int:
        """Bytes of a frame begun but not complete."""
        return len(self._buf)


class ReqState:
    """A REQ socket's request/reply bookkeeping: ids, the request awaiting its reply.

    Unlike nng's REQ it never decides to resend: the I/O layer resends :attr:`pending`
    (the whole frame) when it had to redial before the reply came.
    """

    __slots__ = ("_next_id", "_pending_id", "pending")

    def __init__(self, first_id: int | None = None) -> None:
        self._next_id = random.getrandbits(31) if first_id is None else first_id & 0x7FFFFFFF
        self.pending: bytes | None = None
        # The pending request's id (top bit set), or -1, which no frame can carry, while
        # none is pending.
        self._pending_id = -1

    def request(self, data: bytes) -> bytes:
        """The frame that asks ``data``; it replaces any request still unanswered."""
        self._next_id = next_id = (self._next_id + 1) & 0x7FFFFFFF
        request_id = next_id | 0x80000000
        frame = _REQUEST_HEAD.pack(1, len(data) + 4, request_id) + data
        self.pending, self._pending_id = frame, request_id
        return frame

    def reply(self, payload: bytes) -> bytes | None:
        """The reply's body if ``payload`` answers the pending request, else None (stale)."""
        if self.pending is not None and payload[:4] == _REQUEST_ID.pack(self._pending_id):
            self.pending, self._pending_id = None, -1
            return payload[4:]
        return None

    def whole_reply(self, data: bytes, decoder: FrameDecoder) -> bytes | None:
        """The reply's body if ``data`` is exactly one frame answering the pending request.

        The usual round trip, which skips the decoder: ``decoder`` holds nothing (no
        frame, no part of one) and the bytes of one receive are the reply's whole
        frame, no longer than the decoder's cap. None for anything else (a stale reply,
        part of a frame, several frames, a bad head, bytes that continue a frame): the
        caller feeds ``data`` to ``decoder``, which gives the same answer the long way.
        """
        length = len(data) - 9
        if length < 4 or decoder._buf or decoder.frames or length > decoder.max_frame \
                or _REQUEST_HEAD.unpack_from(data) != (1, length, self._pending_id):
            return None
        self.pending, self._pending_id = None, -1
        return data[13:]
