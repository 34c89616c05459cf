"""ekuiper.testing's public names, wherever their code lives."""

from __future__ import annotations

import ekuiper.testing

PUBLIC = ["FunctionHandle", "MemoryTransport", "PluginHost", "PluginProcessError",
          "ProtocolHost", "SinkHandle", "SinkRun", "SourceHandle", "SourceRun",
          "call_function", "encode_sink_payloads", "is_aggregate", "run_sink", "run_source",
          "validate"]


def test_all_lists_the_public_names() -> None:
    """ekuiper.testing.__all__ is exactly the harness's public names."""
    assert sorted(ekuiper.testing.__all__) == PUBLIC


def test_every_public_name_is_importable_from_ekuiper_testing() -> None:
    """Each public name is an attribute of ekuiper.testing itself."""
    assert [name for name in PUBLIC if not hasattr(ekuiper.testing, name)] == []
