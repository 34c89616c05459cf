"""ekuiper.testing.PluginHost and its pytest fixture: a plugin folder as a real process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ekuiper.testing import PluginHost, PluginProcessError
from tests.conftest import PLUGINS, TEST_PLUGINS


def test_source_rows_from_plugin_process(ekuiper_plugin: Callable[..., PluginHost]) -> None:
    """host.source starts the plugin's source and returns its rows."""
    host = ekuiper_plugin(PLUGINS / "pysam")
    rows = host.source("pyjson", datasource="dev", conf={"interval": 0.01}, count=2)
    assert [(r["name"], r["datasource"]) for r in rows] == [("pyjson", "dev")] * 2


def test_function_through_plugin_process(ekuiper_plugin: Callable[..., PluginHost]) -> None:
    """host.function calls the function over its real channel."""
    assert ekuiper_plugin(PLUGINS / "pysam").function("revert", "abc") == "cba"


def test_sink_acks_from_plugin_process(ekuiper_plugin: Callable[..., PluginHost]) -> None:
    """host.sink returns the sink's acks and the plugin's output shows the data."""
    host = ekuiper_plugin(PLUGINS / "pysam")
    assert host.sink("print", [{"r": "x"}], require_ack=True) == [{}]
    assert 'receive: [{"r":"x"}]' in host.log


def test_unknown_symbol_raises_with_output(ekuiper_plugin: Callable[..., PluginHost]) -> None:
    """A refused start raises PluginProcessError with eKuiper's text and the output."""
    host = ekuiper_plugin(PLUGINS / "pysam")
    with pytest.raises(PluginProcessError, match="has no source named 'nope'") as info:
        host.source("nope")
    assert "--- plugin output" in str(info.value)


def test_function_failure_raises(ekuiper_plugin: Callable[..., PluginHost]) -> None:
    """A function that raises in the plugin gives PluginProcessError with its message."""
    host = ekuiper_plugin(TEST_PLUGINS / "testplug")
    with pytest.raises(PluginProcessError, match="cannot divide by zero"):
        host.function("fails", 1)


def test_missing_descriptor_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A folder without <name>.json gives a clear PluginProcessError."""
    with pytest.raises(PluginProcessError, match="cannot read the executable"):
        PluginHost(tmp_path)


def test_async_symbols_through_plugin_process(ekuiper_plugin: Callable[..., PluginHost],
                                              tmp_path: Path) -> None:
    """PluginHost runs a plugin's async source and in-flight async sink as it runs sync
    ones: the async generator's rows come back and every message reaches the sink."""
    host = ekuiper_plugin(TEST_PLUGINS / "asyncplug", env={"ASYNCPLUG_OUT": str(tmp_path)})
    rows = host.source("ticks", datasource="dev", conf={"interval": 0.001}, count=3)
    assert rows == [{"seq": n, "datasource": "dev"} for n in range(3)]
    assert host.sink("store", [{"seq": n} for n in range(4)], require_ack=True) == [{}] * 4
    stored = [json.loads(line)["seq"]
              for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert stored == [0, 1, 2, 3]
