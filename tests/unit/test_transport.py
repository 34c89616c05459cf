"""The transport seam's settings read from the environment."""

from __future__ import annotations

import logging

import pytest

from ekuiper._transport import DEFAULT_SOURCE_BUFFER, ipc_dir_from_env, source_buffer_from_env


def test_ipc_dir_defaults_to_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without EKUIPER_IPC_DIR the sockets live in /tmp, where eKuiper puts them."""
    monkeypatch.delenv("EKUIPER_IPC_DIR", raising=False)
    assert ipc_dir_from_env() == "/tmp"


def test_source_buffer_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without EKUIPER_SOURCE_SEND_BUFFER a source queues the default number of rows."""
    monkeypatch.delenv("EKUIPER_SOURCE_SEND_BUFFER", raising=False)
    assert source_buffer_from_env() == DEFAULT_SOURCE_BUFFER == 256


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("64", 64), ("99999", 8192), ("-5", 0)])
def test_source_buffer_from_env(monkeypatch: pytest.MonkeyPatch, text: str, value: int) -> None:
    """The setting is taken as a row count, clamped to what nng accepts."""
    monkeypatch.setenv("EKUIPER_SOURCE_SEND_BUFFER", text)
    assert source_buffer_from_env() == value


def test_source_buffer_bad_value_warns(monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    """A value that is not a number is named in a warning and the default is used."""
    monkeypatch.setenv("EKUIPER_SOURCE_SEND_BUFFER", "lots")
    with caplog.at_level(logging.WARNING, logger="ekuiper.transport"):
        assert source_buffer_from_env() == DEFAULT_SOURCE_BUFFER
    assert "EKUIPER_SOURCE_SEND_BUFFER='lots' is not a number of rows" in caplog.text


def test_function_listening_probes_the_socket_file(ipc_dir: str) -> None:
    """True only while something listens on func_<name>.ipc; a stale file or none: False."""
    import os
    import socket

    from ekuiper._transport import SocketTransport

    transport = SocketTransport(ipc_dir)
    path = os.path.join(ipc_dir, "func_fa.ipc")
    assert transport.function_listening("fa") is False
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    assert transport.function_listening("fa") is True
    listener.close()
    assert os.path.exists(path)
    assert transport.function_listening("fa") is False
    assert transport.function_listening("no/such") is False
