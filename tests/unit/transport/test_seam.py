"""The transport seam's vocabulary: its exceptions, misuse, ids and the frame cap setting."""

from __future__ import annotations

import os

import pytest

import ekuiper._transport as seam
from ekuiper import errors
from ekuiper._protocol import Meta
from ekuiper._transport import NngTransport, SocketTransport, Transport
from ekuiper.errors import ChannelConnectError, EkuiperError, PluginConfigError, ProtocolError

TRANSPORTS = [SocketTransport, NngTransport]


def make(kind: type, ipc_dir: str) -> Transport:
    transport = kind(ipc_dir)
    transport.dial_attempts = 1  # nothing will listen: fail at once
    transport.dial_interval_s = 0.01
    return transport  # type: ignore[no-any-return]


def test_channel_timeout_is_the_seams_and_in_the_tree() -> None:
    """ChannelTimeout is one class, importable from the seam, under EkuiperError."""
    assert seam.ChannelTimeout is errors.ChannelTimeout
    assert issubclass(errors.ChannelTimeout, EkuiperError)


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_dial_to_nothing_is_a_channel_connect_error(kind: type, ipc_dir: str) -> None:
    """Nobody listening gives ChannelConnectError, which is still a ConnectionError."""
    with pytest.raises(ChannelConnectError, match="is eKuiper listening there") as caught:
        make(kind, ipc_dir).source(Meta("r1", "op", 0), 100)
    assert isinstance(caught.value, ConnectionError)
    assert isinstance(caught.value, EkuiperError)


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_send_on_a_pull_is_a_type_error(kind: type, ipc_dir: str) -> None:
    """A sink channel cannot send: TypeError, on either transport."""
    channel = make(kind, ipc_dir).sink(Meta("r1", "op", 0))
    try:
        with pytest.raises(TypeError, match="PULL socket: it cannot send"):
            channel.send(b"x")
    finally:
        channel.close()


def test_recv_on_an_nng_push_is_a_type_error(ipc_dir: str) -> None:
    """The pynng transport's PUSH refuses recv with TypeError too."""
    sink = make(NngTransport, ipc_dir).sink(Meta("r1", "op", 0))
    source = make(NngTransport, ipc_dir).source(Meta("r1", "op", 0), 100)
    try:
        with pytest.raises(TypeError, match="PUSH socket: it cannot receive"):
            source.recv()
    finally:
        source.close()
        sink.close()


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_ids_that_leave_the_ipc_dir_are_refused(kind: type, ipc_dir: str) -> None:
    """A rule id with '/' makes no socket anywhere: a ProtocolError naming it."""
    with pytest.raises(ProtocolError, match=r"rule id '\.\./escape' cannot name a socket"):
        make(kind, ipc_dir).sink(Meta("../escape", "op", 0))
    assert not [name for name in os.listdir(os.path.dirname(ipc_dir)) if "escape" in name]


# -- EKUIPER_MAX_FRAME_BYTES ----------------------------------------------------------------


def test_frame_cap_defaults_to_64_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the variable the cap is 64 MiB."""
    monkeypatch.delenv("EKUIPER_MAX_FRAME_BYTES", raising=False)
    assert seam.max_frame_bytes_from_env() == 64 * 1024 * 1024


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_frame_cap_is_read_by_both_transports(kind: type, ipc_dir: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """EKUIPER_MAX_FRAME_BYTES sets the cap of either transport."""
    monkeypatch.setenv("EKUIPER_MAX_FRAME_BYTES", "1048576")
    assert kind(ipc_dir).max_frame_bytes == 1048576


@pytest.mark.parametrize("text", ["lots", "0", "-5", "1.5", "64MiB"])
def test_bad_frame_cap_stops_the_plugin_naming_the_variable(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything but a whole number of bytes above 0 is a PluginConfigError naming it."""
    monkeypatch.setenv("EKUIPER_MAX_FRAME_BYTES", text)
    monkeypatch.delenv("EKUIPER_TRANSPORT", raising=False)
    with pytest.raises(PluginConfigError, match=f"EKUIPER_MAX_FRAME_BYTES='{text}' is not"):
        seam.transport_from_env()


# -- EKUIPER_FUNCTION_SPIN_US, EKUIPER_SINK_SPIN_US --------------------------------------

SPIN_READERS = {"EKUIPER_FUNCTION_SPIN_US": seam.function_spin_us_from_env,
                "EKUIPER_SINK_SPIN_US": seam.sink_spin_us_from_env}
spin_variables = pytest.mark.parametrize("variable", list(SPIN_READERS))


@spin_variables
@pytest.mark.parametrize(("cpus", "spin"), [(1.0, 0), (1.5, 0), (2.0, 100), (16.0, 100)])
def test_spin_defaults_on_with_two_cores_or_more(
        variable: str, cpus: float, spin: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, a function or sink polls 100 µs where two cores are there to run on."""
    monkeypatch.delenv(variable, raising=False)
    assert SPIN_READERS[variable](cpus) == spin


@spin_variables
@pytest.mark.parametrize(("text", "spin"), [("0", 0), ("25", 25), (" 10000 ", 10000)])
def test_spin_is_read_from_the_environment(variable: str, text: str, spin: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable sets its channel's poll, whatever the cores (0 turns it off)."""
    monkeypatch.setenv(variable, text)
    assert SPIN_READERS[variable](1.0) == spin


@spin_variables
@pytest.mark.parametrize("text", ["fast", "-1", "10001", "1.5", "100us"])
def test_bad_spin_stops_the_plugin_naming_the_variable(
        variable: str, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything but whole microseconds from 0 to 10000 is a PluginConfigError naming it."""
    monkeypatch.setenv(variable, text)
    monkeypatch.delenv("EKUIPER_TRANSPORT", raising=False)
    with pytest.raises(PluginConfigError, match=f"{variable}='{text.strip()}'"):
        seam.transport_from_env()


def test_pynng_transport_never_spins(ipc_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pynng transport waits in nng, so neither setting applies to it."""
    monkeypatch.setenv("EKUIPER_FUNCTION_SPIN_US", "500")
    monkeypatch.setenv("EKUIPER_SINK_SPIN_US", "300")
    assert (NngTransport(ipc_dir).function_spin_us, NngTransport(ipc_dir).sink_spin_us) == (0, 0)
    assert (SocketTransport(ipc_dir).function_spin_us,
            SocketTransport(ipc_dir).sink_spin_us) == (500, 300)


@pytest.mark.parametrize(("acked", "spin_ns"), [(True, 250_000), (False, 0)])
def test_socket_sink_channel_polls_only_when_acked(acked: bool, spin_ns: int, ipc_dir: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An acked sink's channel polls for EKUIPER_SINK_SPIN_US; eKuiper waits on no other."""
    monkeypatch.setenv("EKUIPER_SINK_SPIN_US", "250")
    channel = SocketTransport(ipc_dir).sink(Meta("r", "op", 0), acked)
    try:
        poll = channel._poll  # type: ignore[attr-defined]
        assert (poll.window_ns if poll else 0) == spin_ns
    finally:
        channel.close()


@pytest.mark.parametrize(("affinity", "cpu_max", "cores"), [
    (4, None, 4.0), (4, "max 100000\n", 4.0), (4, "150000 100000\n", 1.5),
    (2, "800000 100000", 2.0), (8, "garbage", 8.0), (8, "x 100000", 8.0),
    (8, "0 100000", 8.0)])
def test_cpus_allowed_is_the_affinity_capped_by_the_cgroup_quota(
        affinity: int, cpu_max: str | None, cores: float) -> None:
    """A cgroup v2 quota below the affinity caps it; no quota or unreadable text does not."""
    assert seam.cpus_allowed(affinity, cpu_max) == cores
