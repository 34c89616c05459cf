"""The socket transport's SP-over-IPC channels, against nng (pynng) and raw peers."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pynng
import pytest

from ekuiper._transport import NngTransport, SocketTransport, transport_from_env, wire
from ekuiper._transport import socket as _sp
from ekuiper._transport.socket import PullListener, PushDialer, ReqDialer
from ekuiper.errors import ChannelClosedError, ChannelTimeout, PluginConfigError, ProtocolError


@pytest.fixture
def path(ipc_dir: str) -> str:
    return os.path.join(ipc_dir, "chan.ipc")


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


@pytest.fixture
def nng_push(path: str) -> Iterator[pynng.Push0]:
    with pynng.Push0(send_timeout=2000) as sock:
        yield sock


# -- PULL (sink channel) ------------------------------------------------------------------


def test_pull_receives_nng_push_messages_in_order(path: str, nng_push: pynng.Push0) -> None:
    """Messages from an nng PUSH arrive whole and in order, empty and 10 MB ones too."""
    pull = PullListener(path, url(path))
    nng_push.dial(url(path), block=False)
    payloads = [b"", b"x" * 10_000_000] + [b'{"n":%d}' % i for i in range(2000)]
    sender = threading.Thread(target=lambda: [nng_push.send(p) for p in payloads])
    sender.start()
    got = [pull.recv() for _ in payloads]
    sender.join()
    pull.close()
    assert got == payloads


def test_pull_close_wakes_blocked_recv(path: str) -> None:
    """close() from another thread makes a waiting recv raise ChannelClosedError."""
    pull = PullListener(path, url(path))
    assert_close_ends(pull.recv, pull.close)


def test_pull_close_removes_socket_file(path: str) -> None:
    """The socket file is gone after close, as nng's listener leaves none."""
    pull = PullListener(path, url(path))
    assert os.path.exists(path)
    pull.close()
    assert not os.path.exists(path)


def test_pull_replaces_stale_socket_file(path: str, nng_push: pynng.Push0) -> None:
    """A socket file nobody listens on (a crashed process's) is taken over."""
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    pull = PullListener(path, url(path))
    nng_push.dial(url(path), block=False)
    in_background(lambda: nng_push.send(b"hello"))
    assert pull.recv() == b"hello"
    pull.close()


def test_pull_refuses_a_live_socket_path(path: str) -> None:
    """A path another process listens on is 'address in use', as with nng."""
    first = PullListener(path, url(path))
    with pytest.raises(ConnectionError, match="address in use"):
        PullListener(path, url(path))
    first.close()


def test_pull_takes_a_redialled_peer(path: str) -> None:
    """After eKuiper's PUSH goes away and dials again, messages keep coming."""
    pull = PullListener(path, url(path))
    for word in (b"first", b"second"):
        with pynng.Push0(send_timeout=2000) as push:
            push.dial(url(path), block=False)
            sender = in_background(lambda: push.send(word))  # noqa: B023 - joined below
            assert pull.recv() == word
            sender.join()
    pull.close()


def test_pull_serves_a_second_dialer_while_the_first_is_idle(path: str) -> None:
    """A new PUSH is served even while an earlier one stays connected and silent."""
    pull = PullListener(path, url(path))
    with pynng.Push0(send_timeout=5000) as idle, pynng.Push0(send_timeout=5000) as busy:
        idle.dial(url(path), block=False)
        first = in_background(lambda: idle.send(b"hello"))
        assert pull.recv() == b"hello"
        first.join()
        busy.dial(url(path), block=False)
        second = in_background(lambda: busy.send(b"second"))
        started = time.monotonic()
        assert pull.recv() == b"second"
        assert time.monotonic() - started < 1 + _sp._QUIET_S
        second.join()
    pull.close()


def test_pull_closed_during_a_handshake_raises_closed(path: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """close() while recv is answering a silent dialer still ends in ChannelClosedError."""
    monkeypatch.setattr(_sp, "HANDSHAKE_TIMEOUT_S", 0.5)
    pull = PullListener(path, url(path))
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(path)  # never sends its SP header
    # After 0.2 s recv is waiting for the silent peer's header.
    assert_close_ends(pull.recv, pull.close)
    silent.close()


def test_pull_refuses_a_peer_of_the_wrong_protocol(path: str, nng_push: pynng.Push0) -> None:
    """A REQ dialling the sink path is turned away; a real PUSH is still served."""
    pull = PullListener(path, url(path))
    wrong = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    wrong.connect(path)
    wrong.sendall(wire.sp_header(wire.REQ))
    nng_push.dial(url(path), block=False)
    in_background(lambda: nng_push.send(b"real"))
    assert pull.recv() == b"real"
    assert wrong.recv(100)[:4] == b"\x00SP\x00"  # our header, then the hang-up
    assert wrong.recv(100) == b""
    wrong.close()
    pull.close()


def test_pull_drops_a_peer_that_breaks_the_framing(path: str) -> None:
    """Bytes that are not SP frames cost that connection only, not the channel."""
    pull = PullListener(path, url(path))
    bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bad.connect(path)
    bad.sendall(wire.sp_header(wire.PUSH) + b"\x07" + b"\x00" * 20)
    with pynng.Push0(send_timeout=2000) as push:
        push.dial(url(path), block=False)
        sender = in_background(lambda: push.send(b"good"))
        assert pull.recv() == b"good"
        sender.join()
    bad.close()
    pull.close()


# -- PUSH (source and ack channels) -------------------------------------------------------


def test_push_reaches_nng_pull(path: str) -> None:
    """Frames sent by the PUSH dialer arrive at an nng PULL whole and in order."""
    with pynng.Pull0(recv_timeout=5000) as pull:
        pull.listen(url(path))
        push = PushDialer(path, url(path), 1000)
        payloads = [b'{"n":%d}' % i for i in range(1000)] + [b"y" * 3_000_000]
        sender = threading.Thread(target=lambda: [push.send(p) for p in payloads])
        sender.start()
        assert [pull.recv() for _ in payloads] == payloads
        sender.join()
        push.close()


def test_push_times_out_whole_when_peer_does_not_read(path: str) -> None:
    """Backpressure gives ChannelTimeout, and every frame that did go out is whole."""
    peer = RawPeer(path, wire.PULL)
    accepting = accept_in_background(peer)
    push = PushDialer(path, url(path), 200)
    accepting.join()
    sent = 0
    with pytest.raises(ChannelTimeout):
        for _ in range(1_000_000):
            push.send(b"z" * 1000)
            sent += 1
    assert sent > 10  # the kernel buffered some before the deadline
    assert all(peer.read_frame() == b"z" * 1000 for _ in range(sent))
    push.close()
    peer.close()


def test_push_close_wakes_blocked_send(path: str) -> None:
    """close() from another thread ends a send waiting on a full socket."""
    peer = RawPeer(path, wire.PULL)
    accepting = accept_in_background(peer)
    push = PushDialer(path, url(path), 0)  # no deadline: waits until closed
    accepting.join()
    def flood() -> None:
        while True:
            push.send(b"z" * 65536)

    assert_close_ends(flood, push.close, settle_s=0.3)
    peer.close()


def test_push_redials_after_peer_restart(path: str) -> None:
    """When eKuiper's PULL comes back on the same path, sends reach the new one."""
    first = pynng.Pull0(recv_timeout=5000)
    first.listen(url(path))
    push = PushDialer(path, url(path), 500)
    push.send(b"before")
    assert first.recv() == b"before"
    first.close()
    time.sleep(0.1)
    with pynng.Pull0(recv_timeout=5000) as second:
        second.listen(url(path))
        for _ in range(20):  # the first send after the hang-up may meet the dead socket
            try:
                push.send(b"after")
                break
            except ChannelTimeout:
                continue
        assert second.recv() == b"after"
    push.close()


def test_push_without_peer_times_out(path: str) -> None:
    """A send while nothing listens waits its deadline for a peer, then ChannelTimeout."""
    with pynng.Pull0() as pull:
        pull.listen(url(path))
        push = PushDialer(path, url(path), 300)
    started = time.monotonic()
    with pytest.raises(ChannelTimeout):
        for _ in range(10):
            push.send(b"lost")
    assert time.monotonic() - started < 5
    push.close()


def test_push_without_deadline_waits_for_peer_until_closed(path: str) -> None:
    """With no send deadline, a send to a vanished peer waits (no spinning) until close."""
    with pynng.Pull0() as pull:
        pull.listen(url(path))
        push = PushDialer(path, url(path), 0)
    def send() -> None:
        for _ in range(10):
            push.send(b"lost")

    started = time.process_time()
    thread, raised = raising_in_background(send)
    time.sleep(0.5)
    assert thread.is_alive()
    push.close()
    thread.join(2)
    assert isinstance(raised[0], ChannelClosedError)
    assert time.process_time() - started < 0.3  # waited, did not spin on connect()


def test_req_send_waits_for_a_restarted_peer(path: str) -> None:
    """A REQ whose REP went away sends on the REP that comes back, instead of failing."""
    first = pynng.Rep0(recv_timeout=5000)
    first.listen(url(path))
    req = ReqDialer(path, url(path))
    req.send(b"one")
    assert first.recv() == b"one"
    first.send(b"1")
    assert req.recv() == b"1"
    first.close()

    def come_back() -> None:
        time.sleep(0.3)
        second.listen(url(path))

    second = pynng.Rep0(recv_timeout=5000)
    in_background(come_back)
    req.send(b"two")
    assert second.recv() == b"two"
    second.send(b"2")
    assert req.recv() == b"2"
    req.close()
    second.close()


def test_dial_to_nothing_names_the_url(path: str) -> None:
    """Nobody listening: ConnectionError naming the URL and asking about eKuiper."""
    with pytest.raises(ConnectionError, match="is eKuiper listening there"):
        PushDialer(path, url(path), 100, attempts=2, interval_s=0.01)


def test_dial_to_wrong_protocol_says_which(path: str) -> None:
    """A PUSH dialled to a REP is refused with both protocol names."""
    peer = RawPeer(path, wire.REP)
    accept_in_background(peer)
    with pytest.raises(ConnectionError, match="the peer is REP, a PUSH needs PULL"):
        PushDialer(path, url(path), 100)
    peer.close()


def test_push_cannot_receive(path: str) -> None:
    """recv on a PUSH is a TypeError (a misuse of the socket kind), not a hang."""
    with pynng.Pull0() as pull:
        pull.listen(url(path))
        push = PushDialer(path, url(path), 100)
        with pytest.raises(TypeError, match="cannot receive"):
            push.recv()
        push.close()


# -- REQ (control and function channels) --------------------------------------------------


def test_req_round_trips_with_nng_rep(path: str) -> None:
    """Requests reach an nng REP and its replies come back to the right request."""
    with pynng.Rep0(recv_timeout=5000) as rep:
        rep.listen(url(path))
        req = ReqDialer(path, url(path))
        for i in range(100):
            req.send(b"q%d" % i)
            assert rep.recv() == b"q%d" % i
            rep.send(b"a%d" % i)
            assert req.recv() == b"a%d" % i
        req.close()


def test_req_recv_times_out_then_goes_on(path: str) -> None:
    """A receive deadline gives ChannelTimeout; a new request then works normally."""
    with pynng.Rep0(recv_timeout=5000) as rep:
        rep.listen(url(path))
        req = ReqDialer(path, url(path), recv_timeout_ms=100)
        req.send(b"handshake")
        assert rep.recv() == b"handshake"
        with pytest.raises(ChannelTimeout):
            req.recv()
        rep.send(b"late")  # answers the request given up on
        req.send(b"handshake")
        assert rep.recv() == b"handshake"
        rep.send(b"fresh")
        assert req.recv() == b"fresh"
        req.close()


def test_req_drops_reply_to_older_request(path: str) -> None:
    """A reply carrying another request id is skipped, not returned."""
    peer = RawPeer(path, wire.REP)
    accepting = accept_in_background(peer)
    req = ReqDialer(path, url(path))
    accepting.join()
    req.send(b"ask")
    request = peer.read_frame()
    request_id, body = request[:4], request[4:]
    assert body == b"ask" and request_id[0] & 0x80
    assert peer.conn is not None
    stale_id = bytes([request_id[0] ^ 0x01]) + request_id[1:]
    peer.conn.sendall(frame(stale_id + b"stale") + frame(request_id + b"answer"))
    assert req.recv() == b"answer"
    req.close()
    peer.close()


def test_req_close_wakes_blocked_recv(path: str) -> None:
    """close() from another thread ends a recv that waits without deadline."""
    with pynng.Rep0() as rep:
        rep.listen(url(path))
        req = ReqDialer(path, url(path))
        req.send(b"handshake")
        assert_close_ends(req.recv, req.close)


def test_req_recv_before_send_is_an_error(path: str) -> None:
    """A REQ that has not asked anything has nothing to receive."""
    with pynng.Rep0() as rep:
        rep.listen(url(path))
        req = ReqDialer(path, url(path))
        with pytest.raises(ProtocolError, match="only after it sent"):
            req.recv()
        req.close()


# -- framing and choice of transport ------------------------------------------------------


def test_inbox_reassembles_frames_split_anywhere() -> None:
    """However the stream is cut, the same payloads come out in order."""
    payloads = [b"", b"a", b"bc" * 40, b"\x01" * 9]
    stream = b"".join(frame(p) for p in payloads)
    for cut in range(1, len(stream)):
        inbox = wire.FrameDecoder()
        inbox.feed(stream[:cut])
        inbox.feed(stream[cut:])
        assert list(inbox.frames) == payloads


def test_transport_defaults_to_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without EKUIPER_TRANSPORT the socket transport is used."""
    monkeypatch.delenv("EKUIPER_TRANSPORT", raising=False)
    assert isinstance(transport_from_env(), SocketTransport)


def test_transport_pynng_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """EKUIPER_TRANSPORT=pynng selects the pynng transport."""
    monkeypatch.setenv("EKUIPER_TRANSPORT", "pynng")
    assert isinstance(transport_from_env(), NngTransport)


def test_transport_unknown_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown transport name is an error that lists the valid ones."""
    monkeypatch.setenv("EKUIPER_TRANSPORT", "zeromq")
    with pytest.raises(PluginConfigError, match=r"use 'socket' .* or 'pynng'"):
        transport_from_env()


def test_default_transport_does_not_load_pynng() -> None:
    """A plugin on the default transport never imports pynng (no nng threads)."""
    code = ("import sys; from ekuiper._transport import transport_from_env; "
            "transport_from_env(); print('pynng' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "EKUIPER_TRANSPORT"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
