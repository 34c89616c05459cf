"""Property tests of the pure SP wire layer: split reads, garbage headers, huge lengths."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ekuiper._transport import wire
from ekuiper._transport.wire import FrameDecoder, Handshake, ReqState
from ekuiper.errors import ChannelConnectError, FrameTooLargeError, ProtocolError
from tests.reliability._counts import CASES

# About 4000 cases; the file runs in a few seconds.
QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
         HealthCheck.large_base_example]
MAIN = settings(max_examples=1000, deadline=None, database=None, suppress_health_check=QUIET)
SIDE = settings(max_examples=300, deadline=None, database=None, suppress_health_check=QUIET)

CAP = 4096
payloads = st.lists(st.binary(max_size=CAP), max_size=8)
cuts = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12)
protocols = st.sampled_from([wire.REQ, wire.REP, wire.PUSH, wire.PULL])


def split(data: bytes, at: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length), in order."""
    points = sorted({point % (len(data) + 1) for point in at} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def head(length: int, kind: int = 1) -> bytes:
    return struct.pack(">BQ", kind, length)


# -- the frame decoder ---------------------------------------------------------------------


@MAIN
@given(payloads, cuts)
def test_frames_survive_any_split(frames: list[bytes], at: list[int]) -> None:
    """However the stream is cut into reads, the same payloads come out, in order."""
    CASES["pure"] += 1
    decoder = FrameDecoder(CAP)
    for piece in split(b"".join(wire.encode_frame(p) for p in frames), at):
        decoder.feed(piece)
    assert list(decoder.frames) == frames
    assert decoder.partial == 0


@MAIN
@given(st.binary(max_size=2000), cuts)
def test_garbage_gives_frames_or_a_protocol_error_and_stays_bounded(
        garbage: bytes, at: list[int]) -> None:
    """Arbitrary bytes give frames or a ProtocolError, and never more than a frame buffered."""
    CASES["pure"] += 1
    decoder = FrameDecoder(CAP)
    try:
        for piece in split(garbage, at):
            decoder.feed(piece)
            assert decoder.partial <= CAP + 8  # one incomplete frame at most
    except ProtocolError as exc:
        assert str(exc), "a ProtocolError must say what is wrong"
    assert all(len(frame) <= CAP for frame in decoder.frames)


@MAIN
@given(payloads, st.integers(min_value=CAP + 1, max_value=2**64 - 1), cuts,
       st.binary(max_size=5000))
def test_a_huge_length_is_refused_at_its_head(
        before: list[bytes], length: int, at: list[int], body: bytes) -> None:
    """A length over the cap raises as its head completes, nothing of it buffered."""
    CASES["pure"] += 1
    decoder = FrameDecoder(CAP)
    stream = b"".join(wire.encode_frame(p) for p in before) + head(length) + body
    good_end = len(stream) - len(body) - 9
    raised_at = None
    fed = 0
    try:
        for piece in split(stream, at):
            decoder.feed(piece)
            fed += len(piece)
    except FrameTooLargeError as exc:
        raised_at = fed + len(piece)
        assert str(length) in str(exc) and wire.MAX_FRAME_ENV in str(exc)
    assert raised_at is not None and raised_at >= good_end + 9
    assert raised_at - len(piece) < good_end + 9  # the piece that completed the head
    assert decoder.partial == 0
    assert list(decoder.frames) == before


@SIDE
@given(st.integers(min_value=0, max_value=255).filter(lambda k: k != 1),
       st.integers(min_value=0, max_value=2**64 - 1))
def test_another_message_kind_is_refused(kind: int, length: int) -> None:
    """Any message kind but 1 is a ProtocolError, whatever its length."""
    CASES["pure"] += 1
    decoder = FrameDecoder(CAP)
    try:
        decoder.feed(head(length, kind))
    except ProtocolError:
        return
    raise AssertionError("a message of another kind was accepted")


# -- the handshake ---------------------------------------------------------------------------


@MAIN
@given(protocols, st.binary(max_size=24), cuts)
def test_handshake_accepts_exactly_its_peers_header(
        protocol: int, data: bytes, at: list[int]) -> None:
    """Bytes in any split complete the handshake iff they start with the peer's header."""
    CASES["pure"] += 1
    shake = Handshake(protocol, "ipc:///fuzz")
    expected = wire.sp_header(wire.PEER[protocol])
    rest = None
    try:
        for piece in split(data, at):
            if shake.missing == 0:
                break
            rest = shake.feed(piece)
    except ChannelConnectError as exc:
        assert data[:8] != expected and str(exc)
        return
    if data[:8] == expected:
        assert shake.missing == 0 and rest is not None
    else:
        # Too short to judge, and nothing in it yet says "not SP".
        assert len(data) < 8 and data[:4] == b"\x00SP\x00"[:len(data[:4])]
        assert shake.missing == 8 - len(data)


@SIDE
@given(protocols, st.integers(min_value=0, max_value=0xFFFF))
def test_handshake_refuses_every_protocol_but_its_peer(protocol: int, other: int) -> None:
    """A well-formed SP header of another protocol is refused with a reason."""
    CASES["pure"] += 1
    header = b"\x00SP\x00" + other.to_bytes(2, "big") + b"\x00\x00"
    shake = Handshake(protocol, "ipc:///fuzz")
    try:
        shake.feed(header)
    except ChannelConnectError as exc:
        assert other != wire.PEER[protocol] and "the peer is" in str(exc)
        return
    assert other == wire.PEER[protocol]


# -- the REQ state ---------------------------------------------------------------------------


@MAIN
@given(st.integers(min_value=0, max_value=2**32 - 1),
       st.lists(st.tuples(st.booleans(), st.binary(max_size=12)), max_size=20))
def test_req_returns_only_replies_to_the_pending_request(
        first_id: int, steps: list[tuple[bool, bytes]]) -> None:
    """Requests and arbitrary replies: only the pending request's own reply comes back."""
    CASES["pure"] += 1
    state = ReqState(first_id)
    current = b""
    for ask, data in steps:
        if ask:
            frame = state.request(data)
            assert frame[:9] == head(len(data) + 4) and frame[9] & 0x80
            current = frame[9:13]
            continue
        pending = state.pending
        reply = state.reply(data)
        if pending is not None and data[:4] == current:
            assert reply == data[4:] and state.pending is None
        else:
            assert reply is None and state.pending is pending


@MAIN
@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=40),
       st.binary(max_size=40),
       st.one_of(st.binary(max_size=12), st.binary(max_size=3).map(wire.encode_frame)),
       st.integers(min_value=1, max_value=64),
       st.sampled_from(["reply", "raw", "framed"]))
def test_req_whole_reply_agrees_with_the_decoder(
        first_id: int, body: bytes, noise: bytes, buffered: bytes, cap: int,
        shape: str) -> None:
    """Whatever one receive holds, the fast path answers as decoder plus reply() would."""
    CASES["pure"] += 1
    state, long_way = ReqState(first_id), ReqState(first_id)
    request_id = state.request(b"ask")[9:13]
    long_way.request(b"ask")
    data = {"reply": wire.encode_frame(request_id + body) + noise,
            "raw": noise, "framed": wire.encode_frame(noise)}[shape]
    decoder, reference = FrameDecoder(cap), FrameDecoder(cap)
    try:
        decoder.feed(buffered)
        reference.feed(buffered)
    except ProtocolError:
        return
    frames_before = len(decoder.frames)
    reply = state.whole_reply(data, decoder)
    if reply is None:
        assert state.pending is not None
        return
    # Taken: nothing was buffered, and the long way finds exactly this one frame.
    assert not buffered or (not decoder.partial and frames_before == 0)
    reference.feed(data)
    assert len(reference.frames) == 1 and not reference.partial
    assert long_way.reply(reference.frames.popleft()) == reply
    assert state.pending is None
