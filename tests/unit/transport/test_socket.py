"""The socket transport's SP-over-IPC channels, against nng (pynng) and raw peers."""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator

import pynng
import pytest

from ekuiper._transport import NngTransport, SocketTransport, transport_from_env, wire
from ekuiper._transport import socket as _sp
from ekuiper._transport.socket import PullListener, PushDialer, ReqDialer
from ekuiper.errors import (
    ChannelClosedError,
    ChannelConnectError,
    ChannelTimeout,
    PluginConfigError,
    ProtocolError,
)
from tests.unit.transport.peers import (
    NOBODY,
    RawPeer,
    accept_in_background,
    as_nobody,
    assert_close_ends,
    exit_code,
    frame,
    in_background,
    needs_root,
    open_to,
    raising_in_background,
    url,
)


@pytest.fixture
def path(ipc_dir: str) -> str:
    return os.path.join(ipc_dir, "chan.ipc")


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


def test_pull_waits_for_a_dying_listener_to_go(path: str) -> None:
    """A listener that goes within the bind wait (a SIGKILLed old plugin) is taken over."""
    old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old.bind(path)
    old.listen(1)
    threading.Timer(0.3, old.close).start()  # the file stays, as after SIGKILL
    started = time.monotonic()
    pull = PullListener(path, url(path))
    assert 0.25 < time.monotonic() - started < _sp.BIND_WAIT_S
    pull.close()


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


def test_req_closed_while_blocked_frees_its_descriptor_when_the_receiver_is_out(
        path: str) -> None:
    """A close during a lock-free recv leaves the descriptor to the receiver, which frees it."""
    with pynng.Rep0() as rep:
        rep.listen(url(path))
        req = ReqDialer(path, url(path))
        req.send(b"handshake")
        assert req._stream.sock is not None
        held = weakref.ref(req._stream.sock)
        assert_close_ends(req.recv, req.close)
        assert held() is None  # closed: no reference, not even a traceback's, kept it


def test_req_closed_while_idle_frees_its_descriptor_at_once(path: str) -> None:
    """close() of a REQ nobody is using frees its descriptor before it returns."""
    with pynng.Rep0() as rep:
        rep.listen(url(path))
        req = ReqDialer(path, url(path))
        sock = req._stream.sock
        assert sock is not None
        held = weakref.ref(sock)
        del sock
        req.close()
        assert held() is None
        with pytest.raises(ChannelClosedError):
            req.send(b"handshake")


def test_req_locked_send_writes_only_the_rest_of_a_frame_begun(path: str) -> None:
    """After a partial fast send, the locked path sends the frame's remainder, not all of it."""
    with pynng.Rep0(recv_timeout=5000) as rep:
        rep.listen(url(path))
        req = ReqDialer(path, url(path))
        request = req._state.request(b"ask")
        sock = req._stream.sock
        assert sock is not None
        sock.sendall(request[:7])
        req._stream.send_frame(request, 7)
        assert rep.recv() == b"ask"
        rep.send(b"answer")
        assert req.recv() == b"answer"
        req.close()


class CountingPolls:
    """Counts the polling receives of a ReqDialer or PullListener (the real poll runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = _sp._poll_recv

        def counted(sock: socket.socket, deadline_ns: int) -> bytes | None:
            self.calls += 1
            return real(sock, deadline_ns)

        monkeypatch.setattr(_sp, "_poll_recv", counted)


def test_req_spins_after_a_quick_reply_and_sleeps_after_a_slow_one(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reply within the spin window makes the next receive poll; a late one stops that."""
    polls = CountingPolls(monkeypatch)
    with pynng.Rep0(recv_timeout=5000) as rep:
        rep.listen(url(path))
        # A window long enough for a thread's reply on a loaded machine.
        req = ReqDialer(path, url(path), recv_timeout_ms=5000, spin_us=50_000)
        replies = []
        for i, delay in enumerate([0, 0, 0, 0.3, 0, 0]):
            req.send(b"q%d" % i)
            assert rep.recv() == b"q%d" % i

            def answer(i: int = i, delay: float = delay) -> None:
                time.sleep(delay)
                rep.send(b"a%d" % i)

            answering = in_background(answer)
            replies.append((req.recv(), polls.calls))
            answering.join()
        req.close()
    # The first receive has nothing to go on; the 0.3 s reply outlasted its poll, so the
    # receive after it waits without polling, and the quick reply to that one brings
    # the poll back.
    assert replies == [(b"a0", 0), (b"a1", 1), (b"a2", 2), (b"a3", 3), (b"a4", 3),
                       (b"a5", 4)]


def test_req_spinning_keeps_the_receive_deadline(path: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """With a spin on, an unanswered request still times out, and the next one works."""
    polls = CountingPolls(monkeypatch)
    with pynng.Rep0(recv_timeout=5000) as rep:
        rep.listen(url(path))
        req = ReqDialer(path, url(path), recv_timeout_ms=100, spin_us=5000)
        assert req._poll is not None
        req._poll.quick = True  # as after a busy stream of requests
        req.send(b"handshake")
        assert rep.recv() == b"handshake"
        began = time.monotonic()
        with pytest.raises(ChannelTimeout):
            req.recv()
        assert time.monotonic() - began >= 0.1
        assert polls.calls == 1
        rep.send(b"late")
        req.send(b"handshake")
        assert rep.recv() == b"handshake"
        rep.send(b"fresh")
        assert req.recv() == b"fresh"
        assert polls.calls == 1  # a timeout is not quick: that receive did not poll
        req.close()


def test_req_close_ends_a_spinning_recv(path: str) -> None:
    """close() from another thread ends a receive that is still polling."""
    with pynng.Rep0() as rep:
        rep.listen(url(path))
        req = ReqDialer(path, url(path), spin_us=30_000_000)
        assert req._poll is not None
        req._poll.quick = True
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


# -- private socket files and peers of another user (issue point 1) -----------------------


def test_pull_socket_file_is_private_whatever_the_umask(path: str) -> None:
    """Under umask 000 the sink's socket file is still mode 0600."""
    old = os.umask(0)
    try:
        pull = PullListener(path, url(path))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pull.close()


@needs_root
def test_pull_refuses_a_peer_of_another_user(path: str, caplog: pytest.LogCaptureFixture,
                                            nng_push: pynng.Push0) -> None:
    """A peer of another user is hung up on unanswered, logged, and its rows never arrive."""
    pull = PullListener(path, url(path))
    open_to(path)
    os.chmod(path, 0o666)  # as under the old umask 000: only the uid check stands guard

    def intrude() -> int:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(wire.sp_header(wire.PUSH) + frame(b"intruder"))
        try:
            answer = sock.recv(100)
        except OSError:
            answer = b""
        return 0 if answer == b"" else 1  # refused before our SP header went out

    intruder = as_nobody(intrude)
    time.sleep(0.3)  # the intruder is in the backlog first
    with caplog.at_level(logging.WARNING, logger="ekuiper.transport"):
        nng_push.dial(url(path), block=False)
        in_background(lambda: nng_push.send(b"real"))
        assert pull.recv() == b"real"
    assert exit_code(intruder) == 0
    assert "refused a connection" in caplog.text and f"user id {NOBODY}" in caplog.text
    pull.close()


def test_pull_refuses_peers_the_uid_check_rejects(path: str, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Whatever reports another user (here a stand-in), the peer gets no SP header."""
    monkeypatch.setattr(_sp, "_peer_uid", lambda sock: (4242, 4242))
    pull = PullListener(path, url(path))
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    peer.settimeout(5)
    peer.connect(path)
    peer.sendall(wire.sp_header(wire.PUSH))
    thread, raised = raising_in_background(pull.recv)
    with caplog.at_level(logging.WARNING, logger="ekuiper.transport"):
        try:
            answer = peer.recv(100)
        except ConnectionResetError:  # hung up with our header unread: a reset
            answer = b""
        assert answer == b""
    assert "user id 4242" in caplog.text
    pull.close()
    thread.join(3)
    assert isinstance(raised[0], ChannelClosedError)
    peer.close()


def listen_as_nobody(path: str, ready: int) -> int:
    """Child of as_nobody: listen at ``path`` as a PULL; exit 0 if no frame came in."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
    except OSError:  # the closed listener's file may still be there: take its place
        os.unlink(path)
        listener.bind(path)
    os.chmod(path, 0o666)
    listener.listen(4)
    os.write(ready, b"r")
    listener.settimeout(5)
    received = b""
    try:
        while True:
            conn, _ = listener.accept()
            conn.settimeout(2)
            conn.sendall(wire.sp_header(wire.PULL))
            try:
                while chunk := conn.recv(65536):
                    received += chunk
            except OSError:
                pass
            conn.close()
    except OSError:  # no more dials within 5 s
        pass
    listener.close()
    os.unlink(path)
    return 0 if len(received) <= 8 else 1  # at most a header: no frame


def wait_ready(ready_r: int) -> None:
    assert select.select([ready_r], [], [], 10)[0], "the other user's listener never came up"
    os.read(ready_r, 1)


@needs_root
def test_push_refuses_a_listener_of_another_user(path: str) -> None:
    """Dialling a socket another user listens on fails, naming that user."""
    open_to(path)
    ready_r, ready_w = os.pipe()
    impostor = as_nobody(lambda: listen_as_nobody(path, ready_w))
    wait_ready(ready_r)
    with pytest.raises(ChannelConnectError, match=f"user id {NOBODY}"):
        PushDialer(path, url(path), 100, attempts=1)
    assert exit_code(impostor) == 0


@needs_root
def test_push_never_redials_into_another_users_listener(path: str) -> None:
    """After eKuiper's PULL goes, a socket another user puts at its path gets no rows."""
    open_to(path)
    first = pynng.Pull0(recv_timeout=5000)
    first.listen(url(path))
    push = PushDialer(path, url(path), 300)
    push.send(b"before")
    assert first.recv() == b"before"
    first.close()
    ready_r, ready_w = os.pipe()
    impostor = as_nobody(lambda: listen_as_nobody(path, ready_w))
    wait_ready(ready_r)
    for _ in range(3):
        with pytest.raises(ChannelTimeout):
            push.send(b"secret")
    push.close()
    assert exit_code(impostor) == 0


# -- the frame cap (issue point 2) --------------------------------------------------------


def test_pull_drops_a_peer_announcing_a_huge_frame(path: str, nng_push: pynng.Push0) -> None:
    """A length prefix of 2**63 drops that connection at once; other peers go on."""
    pull = PullListener(path, url(path))
    bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bad.connect(path)
    bad.sendall(wire.sp_header(wire.PUSH) + struct.pack(">BQ", 1, 2**63))
    flooded = [0]

    def flood() -> None:
        chunk = b"\x00" * 65536
        deadline = time.monotonic() + 5
        try:  # at most 64 MiB: a listener that buffers it all must not eat the machine
            while time.monotonic() < deadline and flooded[0] < 64 * 1024 * 1024:
                flooded[0] += bad.send(chunk)
        except OSError:
            pass  # dropped: the point

    nng_push.dial(url(path), block=False)
    in_background(lambda: nng_push.send(b"good"))
    flooder = in_background(flood)
    assert pull.recv() == b"good"
    flooder.join(6)
    assert flooded[0] < 16 * 1024 * 1024  # the connection was gone long before 5 s of it
    bad.settimeout(2)
    try:
        read_until_eof(bad)  # our header, then the hang-up
    except ConnectionResetError:
        pass  # or a reset, as the flood was left unread
    bad.close()
    pull.close()


def read_until_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_pull_takes_frames_up_to_the_cap(path: str, nng_push: pynng.Push0) -> None:
    """A frame of exactly the cap arrives; the cap is configurable per listener."""
    pull = PullListener(path, url(path), max_frame_bytes=1000)
    nng_push.dial(url(path), block=False)
    in_background(lambda: nng_push.send(b"x" * 1000))
    assert pull.recv() == b"x" * 1000
    pull.close()


def test_req_redials_after_a_reply_over_the_cap(path: str) -> None:
    """A reply longer than the cap drops the connection; the request goes out again."""
    peer = RawPeer(path, wire.REP)
    accepting = accept_in_background(peer)
    req = ReqDialer(path, url(path), max_frame_bytes=100)
    accepting.join()
    req.send(b"ask")
    request = peer.read_frame()
    assert peer.conn is not None
    first = peer.conn
    first.sendall(struct.pack(">BQ", 1, 10**9))
    answered = in_background(lambda: peer.accept())
    replies: list[bytes] = []
    thread, raised = raising_in_background(lambda: replies.append(req.recv()))
    answered.join(5)
    assert peer.read_frame() == request  # the same request, id and all
    peer.conn.sendall(frame(request[:4] + b"answer"))
    thread.join(5)
    assert replies == [b"answer"] and not raised
    req.close()
    first.close()
    peer.close()


# -- handshakes that never block the data path (issue point 3) ----------------------------


def test_silent_and_trickling_dialers_do_not_delay_a_healthy_stream(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peers that never finish their SP header leave no gap in another peer's messages."""
    monkeypatch.setattr(_sp, "_QUIET_S", 0.05)  # the PULL polls (and accepts) often
    pull = PullListener(path, url(path))
    stragglers: list[socket.socket] = []

    def straggle() -> None:
        time.sleep(0.3)
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.connect(path)
        stragglers.append(silent)
        trickler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        trickler.connect(path)
        stragglers.append(trickler)
        for byte in wire.sp_header(wire.PUSH)[:7]:
            time.sleep(0.3)
            trickler.send(bytes([byte]))

    with pynng.Push0(send_timeout=5000) as push:
        push.dial(url(path), block=False)

        def stream() -> None:
            for i in range(30):
                push.send(b"%d" % i)
                time.sleep(0.1)

        sender = in_background(stream)
        in_background(straggle)
        arrivals = []
        for _ in range(30):
            pull.recv()
            arrivals.append(time.monotonic())
        sender.join()
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert max(gaps) < 0.6, f"worst gap {max(gaps):.2f} s"
    for sock in stragglers:
        sock.close()
    pull.close()


def test_pull_drops_a_handshake_that_outlasts_its_deadline(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline is for the whole handshake: a byte every 0.3 s does not extend it."""
    monkeypatch.setattr(_sp, "HANDSHAKE_TIMEOUT_S", 1.0)
    pull = PullListener(path, url(path))
    thread, raised = raising_in_background(pull.recv)
    trickler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    trickler.connect(path)
    started = time.monotonic()
    dropped_after = None
    try:
        for byte in wire.sp_header(wire.PUSH):
            time.sleep(0.3)
            trickler.send(bytes([byte]))
    except OSError:
        dropped_after = time.monotonic() - started
    if dropped_after is None:  # all 8 bytes fit in the buffer: is the line dead?
        trickler.settimeout(3)
        assert read_until_eof(trickler) == wire.sp_header(wire.PULL)
        dropped_after = time.monotonic() - started
    assert dropped_after < 2.0
    pull.close()
    thread.join(3)
    assert isinstance(raised[0], ChannelClosedError)
    trickler.close()


def test_pull_serves_a_real_dialer_through_a_flood_of_silent_ones(path: str) -> None:
    """More silent connections than may handshake at once cost only the oldest of them."""
    pull = PullListener(path, url(path))
    silent = []
    for _ in range(40):  # more than may handshake at once
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(path)
        except BlockingIOError:
            pass  # the backlog is full: it waits there
        silent.append(sock)
    with pynng.Push0(send_timeout=5000) as push:
        push.dial(url(path), block=False)
        in_background(lambda: push.send(b"real"))
        got: list[bytes] = []
        receiver = in_background(lambda: got.append(pull.recv()))
        receiver.join(3)
        assert got == [b"real"]
    for sock in silent:
        sock.close()
    pull.close()


def test_dial_gives_up_when_the_whole_handshake_outlasts_its_deadline(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener trickling its SP header is given up on at the deadline, not per byte."""
    monkeypatch.setattr(_sp, "HANDSHAKE_TIMEOUT_S", 1.0)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def trickle() -> None:
        conn, _ = listener.accept()
        try:
            for byte in wire.sp_header(wire.PULL):
                time.sleep(0.3)
                conn.send(bytes([byte]))
            time.sleep(1)
        except OSError:
            pass
        conn.close()

    in_background(trickle)
    started = time.monotonic()
    with pytest.raises(ChannelConnectError, match="no SP header from the peer within 1 s"):
        PushDialer(path, url(path), 100, attempts=1)
    assert time.monotonic() - started < 1.8
    listener.close()


# -- out of descriptors (issue point 4) ---------------------------------------------------


class ExhaustedListener:
    """Stands in for the PULL's listening socket: accept fails with EMFILE while told to."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.exhausted = True
        self.calls = 0

    def accept(self) -> tuple[socket.socket, object]:
        self.calls += 1
        if self.exhausted:
            raise OSError(errno.EMFILE, "Too many open files")
        return self.real.accept()

    def fileno(self) -> int:
        return self.real.fileno()

    def close(self) -> None:
        self.real.close()


def test_pull_backs_off_while_out_of_descriptors(path: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """EMFILE on accept pauses accepting (a few tries a second), then dialers get in."""
    pull = PullListener(path, url(path))
    exhausted = ExhaustedListener(pull._listener)
    pull._listener = exhausted  # type: ignore[assignment]
    with pynng.Push0(send_timeout=5000) as push, \
            caplog.at_level(logging.WARNING, logger="ekuiper.transport"):
        push.dial(url(path), block=False)  # waits in the backlog: the listener stays readable
        in_background(lambda: push.send(b"back"))
        got: list[bytes] = []
        thread, raised = raising_in_background(lambda: got.append(pull.recv()))
        cpu = time.process_time()
        time.sleep(1.5)
        assert exhausted.calls <= 6, f"{exhausted.calls} accept calls in 1.5 s"
        assert time.process_time() - cpu < 0.5
        assert "out of file descriptors" in caplog.text
        exhausted.exhausted = False
        thread.join(3)
    assert got == [b"back"] and not raised
    pull.close()


def test_dial_waits_while_out_of_descriptors(path: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """EMFILE making the dialling socket is waited out like a listener not there yet."""
    real = _sp._DialledSocket
    failures = [3]

    def exhausted(*args: object, **kwargs: object) -> socket.socket:
        if failures[0]:
            failures[0] -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    with pynng.Pull0(recv_timeout=5000) as pull:
        pull.listen(url(path))
        monkeypatch.setattr(_sp, "_DialledSocket", exhausted)
        push = PushDialer(path, url(path), 1000, interval_s=0.01)
        monkeypatch.undo()
        push.send(b"through")
        assert pull.recv() == b"through"
        push.close()
    assert failures == [0]


# -- socket paths (issue point 5) ---------------------------------------------------------


def test_pull_never_replaces_a_regular_file(path: str) -> None:
    """A regular file at the socket path is refused by name and left as it was."""
    with open(path, "w") as f:
        f.write("precious")
    with pytest.raises(ChannelConnectError, match="is a regular file, not a socket"):
        PullListener(path, url(path))
    with open(path) as f:
        assert f.read() == "precious"



def test_pull_spins_after_quick_data_and_sleeps_after_slow(
        path: str, nng_push: pynng.Push0, monkeypatch: pytest.MonkeyPatch) -> None:
    """Data within the spin window makes the next wait poll; data that came late stops that."""
    polls = CountingPolls(monkeypatch)
    # A window long enough for a thread's send on a loaded machine.
    pull = PullListener(path, url(path), spin_us=50_000)
    nng_push.dial(url(path), block=False)
    in_background(lambda: nng_push.send(b"m0"))
    assert pull.recv() == b"m0"  # the connection is taken on the way
    spun = []
    for i, delay in enumerate([0, 0, 0.3, 0, 0], start=1):
        def send(i: int = i, delay: float = delay) -> None:
            time.sleep(delay)
            nng_push.send(b"m%d" % i)

        before = polls.calls
        sending = in_background(send)
        assert pull.recv() == b"m%d" % i
        spun.append(polls.calls > before)
        sending.join()
    pull.close()
    # m3 came 0.3 s late, past its poll, so the wait for m4 sleeps at once; m4 came
    # quickly, and the poll is back for m5.
    assert spun == [True, True, True, False, True]


def test_pull_close_ends_a_spinning_recv(path: str, nng_push: pynng.Push0) -> None:
    """close() from another thread ends a receive that is still polling."""
    pull = PullListener(path, url(path), spin_us=10_000_000)
    nng_push.dial(url(path), block=False)
    in_background(lambda: nng_push.send(b"m0"))
    assert pull.recv() == b"m0"
    assert pull._poll is not None
    pull._poll.quick = True
    assert_close_ends(pull.recv, pull.close)
