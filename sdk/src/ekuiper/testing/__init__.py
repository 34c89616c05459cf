"""Run a plugin's symbols without eKuiper: in-process or as a real plugin process.

In-process (fast; the SDK's real runtimes over an in-memory transport)::

    from ekuiper.testing import run_source, run_sink, call_function

    run = run_source(PyJson(), datasource="demo", count=3)
    assert run.rows[0]["name"] == "pyjson"
    acks = run_sink(PrintSink(), [{"a": 1}], require_ack=True).acks   # [{}]
    assert call_function(RevertFunc(), "abc") == "cba"

As a subprocess, exactly as eKuiper starts it (the plugin's main program, its descriptor,
the nng sockets), against :class:`ProtocolHost`, a stand-in for eKuiper's side::

    with PluginHost("plugins/pysam") as host:
        rows = host.source("pyjson", datasource="demo", count=3)
        assert host.function("revert", "abc") == "cba"

State (``ctx.put_state``): in-process runs take ``state={...}``, the symbol's kept values,
seeded before and changed in place (default: empty each run); a PluginHost keeps state
in a temporary folder of its own unless given ``state_dir=`` or ``own_state=True``::

    state = {"seq": 41}
    assert run_source(Ticks(), count=1, state=state).rows[0]["seq"] == 42

An exception raised by plugin code in-process comes back as that exception, with the
plugin's traceback. From a subprocess it comes back as PluginProcessError whose message
holds eKuiper's error text and the end of the plugin's output.

pytest: the ``ekuiper_plugin`` fixture (registered by installing the SDK) starts a
PluginHost and closes it after the test: ``host = ekuiper_plugin("plugins/pysam")``.
"""

from ekuiper.errors import PluginProcessError
from ekuiper.testing._host import FunctionHandle, ProtocolHost, SinkHandle, SourceHandle
from ekuiper.testing._inprocess import (
    SinkRun,
    SourceRun,
    call_function,
    encode_sink_payloads,
    is_aggregate,
    run_sink,
    run_source,
    validate,
)
from ekuiper.testing._memory import MemoryTransport
from ekuiper.testing._plugin_host import PluginHost

__all__ = [
    "FunctionHandle",
    "MemoryTransport",
    "PluginHost",
    "PluginProcessError",
    "ProtocolHost",
    "SinkHandle",
    "SinkRun",
    "SourceHandle",
    "SourceRun",
    "call_function",
    "encode_sink_payloads",
    "is_aggregate",
    "run_sink",
    "run_source",
    "validate",
]

