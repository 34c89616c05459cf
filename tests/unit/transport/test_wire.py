"""The pure SP wire layer: headers, peer rules, frames and their cap, REQ request ids."""

from __future__ import annotations

import struct

import pytest

from ekuiper._transport import wire
from ekuiper._transport.wire import FrameDecoder, Handshake, ReqState
from ekuiper.errors import ChannelConnectError, FrameTooLargeError, ProtocolError


def head(length: int, kind: int = 1) -> bytes:
    return struct.pack(">BQ", kind, length)


# -- handshake ---------------------------------------------------------------------------


def test_handshake_completes_on_the_peers_header_in_pieces() -> None:
    """The peer's header may come a byte at a time; done once all 8 bytes are in."""
    shake = Handshake(wire.PULL, "ipc:///x")
    peer = wire.sp_header(wire.PUSH)
    for byte in peer[:-1]:
        assert shake.feed(bytes([byte])) is None
    assert shake.feed(peer[-1:]) == b""
    assert shake.missing == 0


def test_handshake_returns_what_follows_the_header() -> None:
    """Bytes after the header (a first frame) are handed back, not lost."""
    shake = Handshake(wire.PULL, "ipc:///x")
    assert shake.feed(wire.sp_header(wire.PUSH) + b"\x01rest") == b"\x01rest"


def test_handshake_refuses_a_non_sp_peer_at_its_first_byte() -> None:
    """A peer whose first byte is not SP's is refused without waiting for 8 bytes."""
    shake = Handshake(wire.PULL, "ipc:///x")
    with pytest.raises(ChannelConnectError, match="does not speak nng's SP protocol"):
        shake.feed(b"G")


def test_handshake_names_both_protocols_on_a_mismatch() -> None:
    """A REQ dialling a PULL is refused with both names."""
    shake = Handshake(wire.PULL, "ipc:///x")
    with pytest.raises(ChannelConnectError, match="the peer is REQ, a PULL needs PUSH"):
        shake.feed(wire.sp_header(wire.REQ))


# -- peers -----------------------------------------------------------------------------


@pytest.mark.parametrize(("peer", "own"), [(1000, 1000), (0, 1000), (0, 0)])
def test_peer_of_the_same_user_or_root_is_let_in(peer: int, own: int) -> None:
    """The plugin's own user (eKuiper's) and root may connect."""
    assert wire.peer_refusal(peer, own) is None


@pytest.mark.parametrize(("peer", "own"), [(1001, 1000), (1000, 0)])
def test_peer_of_another_user_is_refused(peer: int, own: int) -> None:
    """Any other user is refused, with both ids in the reason."""
    reason = wire.peer_refusal(peer, own)
    assert reason is not None and str(peer) in reason and f"({own})" in reason


# -- frames ------------------------------------------------------------------------------


def test_encode_frame_is_kind_length_payload() -> None:
    """A frame is 01, the payload length as u64 big-endian, then the payload."""
    assert wire.encode_frame(b"abc") == b"\x01" + (3).to_bytes(8, "big") + b"abc"


def test_decoder_refuses_a_frame_over_the_cap_at_its_head() -> None:
    """A length over the cap is refused as soon as its 9-byte head arrives, unbuffered."""
    decoder = FrameDecoder(max_frame=1000)
    with pytest.raises(FrameTooLargeError, match="EKUIPER_MAX_FRAME_BYTES"):
        decoder.feed(head(2**63))
    assert decoder.partial == 0


def test_decoder_takes_a_frame_of_exactly_the_cap() -> None:
    """The cap itself is allowed: the limit is 'longer than'."""
    decoder = FrameDecoder(max_frame=10)
    decoder.feed(head(10) + b"x" * 10)
    assert list(decoder.frames) == [b"x" * 10]


def test_decoder_keeps_frames_before_a_bad_head() -> None:
    """Frames complete before an oversized one are still delivered."""
    decoder = FrameDecoder(max_frame=10)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(wire.encode_frame(b"ok") + head(11))
    assert list(decoder.frames) == [b"ok"]


def test_decoder_refuses_another_kind_of_message() -> None:
    """A message kind other than 1 is a ProtocolError naming the kind."""
    with pytest.raises(ProtocolError, match="kind 7"):
        FrameDecoder().feed(head(0, kind=7))


def test_default_cap_is_64_mib() -> None:
    """The default cap is 64 MiB, far above a 10 MB sink batch."""
    assert FrameDecoder().max_frame == wire.DEFAULT_MAX_FRAME_BYTES == 64 * 1024 * 1024


# -- REQ state -------------------------------------------------------------------------


def test_req_reply_matches_only_the_pending_request() -> None:
    """A reply echoing the pending id is returned; the request is then answered."""
    state = ReqState(first_id=5)
    frame = state.request(b"ask")
    request_id = frame[9:13]
    assert request_id[0] & 0x80
    assert state.reply(request_id + b"answer") == b"answer"
    assert state.pending is None
    assert state.reply(request_id + b"again") is None


def test_req_reply_to_an_older_request_is_dropped() -> None:
    """After a new request, the old one's reply is stale."""
    state = ReqState(first_id=5)
    old_id = state.request(b"one")[9:13]
    state.request(b"two")
    assert state.reply(old_id + b"late") is None
    assert state.pending is not None


def test_req_ids_wrap_within_31_bits() -> None:
    """Request ids wrap around without losing the top bit nng requires."""
    state = ReqState(first_id=0x7FFFFFFF)
    request_id = state.request(b"x")[9:13]
    assert request_id == b"\x80\x00\x00\x00"


def test_req_whole_reply_takes_one_frame_answering_the_pending_request() -> None:
    """One receive holding exactly the reply's frame gives its body without the decoder."""
    state = ReqState(first_id=5)
    request_id = state.request(b"ask")[9:13]
    data = wire.encode_frame(request_id + b"answer")
    assert state.whole_reply(data, FrameDecoder()) == b"answer"
    assert state.pending is None
    assert state.whole_reply(data, FrameDecoder()) is None


@pytest.mark.parametrize("case", ["stale", "two frames", "part", "over the cap", "kind",
                                  "buffered", "short"])
def test_req_whole_reply_leaves_anything_else_to_the_decoder(case: str) -> None:
    """Any other receive is left to the decoder, the request still pending."""
    state = ReqState(first_id=5)
    request_id = state.request(b"ask")[9:13]
    reply = wire.encode_frame(request_id + b"answer")
    decoder = FrameDecoder(max_frame=100)
    data = {
        "stale": wire.encode_frame(b"\x80\x00\x00\x01" + b"answer"),
        "two frames": reply + reply,
        "part": reply[:-1],
        "over the cap": wire.encode_frame(request_id + b"x" * 100),
        "kind": b"\x02" + reply[1:],
        "buffered": reply,
        "short": reply[:12],
    }[case]
    if case == "buffered":
        decoder.feed(reply[:5])  # a frame begun: these bytes continue it
    assert state.whole_reply(data, decoder) is None
    assert state.pending is not None
