"""Start commands whose ids would put a socket outside the IPC directory are refused."""

from __future__ import annotations

import os

import pytest

from ekuiper.testing import ProtocolHost


@pytest.mark.parametrize(("kind", "symbol"), [("sink", "recorder"), ("source", "counter")])
def test_start_with_a_path_in_its_rule_id_gets_an_error_reply(
        testplug: ProtocolHost, kind: str, symbol: str) -> None:
    """The reply names the field and value; no socket appears anywhere; the plugin goes on."""
    outside = os.path.dirname(testplug.ipc_dir)
    before = set(os.listdir(outside))
    reply = testplug.command("start", testplug.control_for(kind, symbol, rule="../escape"))
    assert reply.startswith(b"rule id '../escape' cannot name a socket file: it contains '/'")
    assert not [name for name in set(os.listdir(outside)) - before if "escape" in name]
    reply, _ = testplug.start_source("counter", datasource="t1")
    assert reply == b"ok"
