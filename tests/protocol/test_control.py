"""Control channel: handshake, command replies, errors that keep the plugin serving."""

from __future__ import annotations

import json

from ekuiper.testing import ProtocolHost


def test_unknown_symbol_gets_error_naming_offered_symbols(testplug: ProtocolHost) -> None:
    """A start for a symbol the plugin lacks is answered with what it does offer."""
    reply, _ = testplug.start_source("nosuch")
    assert reply.startswith(b"plugin 'testplug' has no source named 'nosuch'")
    assert b"counter" in reply


def test_plugin_keeps_serving_after_unknown_symbol(testplug: ProtocolHost) -> None:
    """After an error reply, the next valid start succeeds and data flows."""
    testplug.start_source("nosuch")
    reply, source = testplug.start_source("counter", datasource="t1")
    assert reply == b"ok"
    assert source.rows(1)[0]["message"]["datasource"] == "t1"


def test_malformed_command_gets_error_reply(testplug: ProtocolHost) -> None:
    """Bytes that are not JSON are answered with a ProtocolError text, not ok."""
    reply = testplug.raw_command(b"\x00not json")
    assert reply.startswith(b"control command is not valid JSON")


def test_unknown_command_gets_error_reply(testplug: ProtocolHost) -> None:
    """A cmd other than start/stop is refused by name."""
    reply = testplug.raw_command(json.dumps({"cmd": "pause", "arg": "{}"}).encode())
    assert reply == b"unknown control command 'pause': expected 'start' or 'stop'"


def test_wrong_field_types_get_error_reply(testplug: ProtocolHost) -> None:
    """A Control whose instanceId is a string is refused with the field named."""
    ctrl = {"symbolName": "counter", "pluginType": "source",
            "meta": {"ruleId": "r", "opId": "o", "instanceId": "zero"}}
    reply = testplug.raw_command(json.dumps({"cmd": "start", "arg": json.dumps(ctrl)}).encode())
    assert b"instanceId must be an integer" in reply


def test_factory_exception_is_reported(testplug: ProtocolHost) -> None:
    """An exception in a symbol's factory reaches eKuiper with its message."""
    reply, _ = testplug.start_source("badfactory")
    assert reply == (b"cannot create source 'badfactory': its factory raised "
                     b"RuntimeError: factory exploded")


def test_configure_exception_is_reported(testplug: ProtocolHost) -> None:
    """An exception in configure() fails the start with its message."""
    reply, _ = testplug.start_source("counter", config={"fail_configure": True})
    assert reply == b"source 'counter' failed to start: ValueError: fail_configure was set"


def test_stop_of_unknown_symbol_is_ok(testplug: ProtocolHost) -> None:
    """Stopping what is not running is answered ok (eKuiper wants it stopped anyway)."""
    assert testplug.stop("source", "counter", rule="never") == b"ok"


def test_v1_datasource_field_reaches_configure(ipc_dir: str, out_dir) -> None:  # type: ignore[no-untyped-def]
    """eKuiper 1.x's dataSource field is what configure() gets as datasource."""
    from tests.conftest import TEST_PLUGINS
    host = ProtocolHost(ipc_dir, "testplug", v1=True)
    host.launch(TEST_PLUGINS / "testplug" / "testplug.py", env={"TESTPLUG_OUT": str(out_dir)})
    try:
        reply, source = host.start_source("counter", datasource="v1topic")
        assert reply == b"ok"
        assert source.rows(1)[0]["message"]["datasource"] == "v1topic"
    finally:
        host.close()
