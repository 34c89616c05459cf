"""The reference plugin, written as the official docs show, under the ProtocolHost."""

from __future__ import annotations

from ekuiper.testing import ProtocolHost


def test_pyjson_emits_name_value_and_datasource(pysam: ProtocolHost) -> None:
    """pyjson's rows carry name, value and the datasource it was given."""
    reply, source = pysam.start_source("pyjson", datasource="demo/1")
    assert reply == b"ok"
    message = source.rows(1)[0]["message"]
    assert (message["name"], message["value"], message["datasource"]) == ("pyjson", 2021, "demo/1")


def test_revert_reverses(pysam: ProtocolHost) -> None:
    """revert("pyjson") is "nosjyp"."""
    _, fn = pysam.start_function("revert")
    assert fn.exec("pyjson") == {"state": True, "result": "nosjyp"}


def test_print_sink_prints_and_acks(pysam: ProtocolHost) -> None:
    """print writes each message to the plugin's output and acks it."""
    _, sink = pysam.start_sink("print", config={"requireAck": True})
    sink.send(b'[{"r":"nosjyp"}]')
    assert sink.ack() == {}
    assert 'receive: [{"r":"nosjyp"}]' in pysam.log()
