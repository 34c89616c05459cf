"""EKUIPER_PLUGIN_DEBUG: reading the setting, and a plugin waiting for a real debugpy client."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ekuiper._cli.scaffold import new_plugin
from ekuiper._runtime import debug
from ekuiper._runtime.debug import (
    DEBUG_ENV,
    DEBUG_WAIT_ENV,
    DEFAULT_WAIT_S,
    DebugSettingError,
    DebugSettings,
    parse_debug,
    wait_for_debugger,
)
from ekuiper.testing import PluginHost
from tests.dap import DapClient, free_port, need_debugpy


def test_unset_or_empty_means_no_debugger() -> None:
    """Without the variable (or with it empty) nothing is asked for."""
    assert parse_debug({}) is None
    assert parse_debug({DEBUG_ENV: "  "}) is None


@pytest.mark.parametrize(("value", "host", "port"), [
    ("5678", "127.0.0.1", 5678),
    ("0.0.0.0:5678", "0.0.0.0", 5678),
    ("[::1]:5679", "::1", 5679),
    ("debug-host:1", "debug-host", 1),
])
def test_port_or_host_and_port(value: str, host: str, port: int) -> None:
    """PORT listens on loopback; HOST:PORT where asked; the default wait applies."""
    assert parse_debug({DEBUG_ENV: value}) == DebugSettings(host, port, DEFAULT_WAIT_S)


@pytest.mark.parametrize("value", ["abc", "0", "65536", ":5678", "host:", "56.78", "٥٦٧٨"])
def test_bad_address_names_the_variable_and_the_forms(value: str) -> None:
    """A value that is not PORT or HOST:PORT says which variable and what it takes."""
    with pytest.raises(DebugSettingError, match=f"{DEBUG_ENV}=.*HOST:PORT"):
        parse_debug({DEBUG_ENV: value})


def test_wait_is_read_in_seconds() -> None:
    """EKUIPER_PLUGIN_DEBUG_WAIT sets the wait; 0 means do not wait."""
    assert parse_debug({DEBUG_ENV: "5678", DEBUG_WAIT_ENV: "2.5"}).wait == 2.5  # type: ignore[union-attr]
    assert parse_debug({DEBUG_ENV: "5678", DEBUG_WAIT_ENV: "0"}).wait == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_bad_wait_names_the_variable(value: str) -> None:
    """A wait that is not a finite number of seconds, 0 or more, is refused by name."""
    with pytest.raises(DebugSettingError, match=DEBUG_WAIT_ENV):
        parse_debug({DEBUG_ENV: "5678", DEBUG_WAIT_ENV: value})


@given(st.text(max_size=30), st.text(max_size=10))
def test_any_text_parses_or_is_a_debug_setting_error(value: str, wait: str) -> None:
    """Whatever the environment holds, the parser answers or raises its own error."""
    try:
        settings = parse_debug({DEBUG_ENV: value, DEBUG_WAIT_ENV: wait})
    except DebugSettingError:
        return
    assert settings is None or 0 < settings.port < 65536


def test_missing_debugpy_is_logged_with_the_extra_to_install(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Without debugpy the plugin serves on, and the log names the extra to install."""
    def missing() -> None:
        raise ImportError("No module named 'debugpy'")

    monkeypatch.setattr(debug, "_debugpy", missing)
    with caplog.at_level(logging.ERROR):
        assert wait_for_debugger({DEBUG_ENV: "5678"}, logging.getLogger("t")) is False
    assert "pip install 'ekuiper-plugin-sdk[debug]'" in caplog.text
    assert "serving without a debugger" in caplog.text


def test_bad_setting_is_logged_and_the_plugin_serves(caplog: pytest.LogCaptureFixture) -> None:
    """A bad value is an error in the log, not a plugin that fails to start."""
    with caplog.at_level(logging.ERROR):
        assert wait_for_debugger({DEBUG_ENV: "nope"}, logging.getLogger("t")) is False
    assert f"{DEBUG_ENV}='nope'" in caplog.text


# -- with a real debugpy ----------------------------------------------------------------

@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    need_debugpy()
    return new_plugin(tmp_path, "dbgplug", [], [], ["tag"])


def test_plugin_waits_for_a_debugger_before_it_connects(plugin: Path) -> None:
    """With the variable set, the handshake follows a real debugpy client's attach."""
    port = free_port()
    attached_at: list[float] = []
    client: list[DapClient] = []

    def attach_later() -> None:
        client.append(DapClient(port))
        time.sleep(1.0)  # the plugin must still be waiting now
        attached_at.append(time.monotonic())
        client[0].attach()

    attacher = threading.Thread(target=attach_later, daemon=True)
    attacher.start()
    env = {DEBUG_ENV: str(port), DEBUG_WAIT_ENV: "18"}
    try:
        with PluginHost(plugin, env=env) as host:
            connected_at = time.monotonic()
            assert host.function("tag", "ab") == "AB"
            log = host.log
    finally:
        attacher.join(30)
        for c in client:
            c.close()
    assert attached_at and connected_at > attached_at[0]
    assert log.index("waiting up to 18 s for a debugger") < log.index(
        f"debugger attached on 127.0.0.1:{port}") < log.index("connected to eKuiper")


def test_plugin_serves_after_the_wait_without_a_debugger(plugin: Path) -> None:
    """Nobody attaches: after EKUIPER_PLUGIN_DEBUG_WAIT the plugin serves anyway."""
    env = {DEBUG_ENV: str(free_port()), DEBUG_WAIT_ENV: "0.5"}
    with PluginHost(plugin, env=env) as host:
        assert host.function("tag", "ab") == "AB"
        assert "no debugger attached within 0.5 s; serving" in host.log


def test_port_in_use_is_logged_and_the_plugin_serves(plugin: Path) -> None:
    """A port someone else holds is an error in the log, and the plugin serves."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {DEBUG_ENV: str(taken.getsockname()[1])}
        with PluginHost(plugin, env=env) as host:
            assert host.function("tag", "ab") == "AB"
            assert "debugpy cannot listen on 127.0.0.1:" in host.log
