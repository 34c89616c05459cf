"""The IPC URL and path helpers: ids from a start command never leave the IPC directory."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ekuiper._protocol import (
    Meta,
    control_url,
    function_url,
    ipc_path,
    sink_ack_url,
    symbol_data_url,
)
from ekuiper.errors import ProtocolError

HAZARDS = [("a/b", "'/'"), ("../../etc/x", "'/'"), ("..", "'..'"), ("r\x00x", "a NUL character")]


@pytest.mark.parametrize(("value", "shown"), HAZARDS)
@pytest.mark.parametrize(("field", "make"), [
    ("rule id", lambda v: symbol_data_url("/tmp", Meta(v, "op", 0))),
    ("operator id", lambda v: symbol_data_url("/tmp", Meta("r1", v, 0))),
    ("rule id", lambda v: sink_ack_url("/tmp", Meta(v, "op", 0))),
    ("function name", lambda v: function_url("/tmp", v)),
    ("plugin name", lambda v: control_url("/tmp", v)),
])
def test_hazardous_id_is_refused_naming_field_and_value(
        field: str, make: Callable[[str], str], value: str, shown: str) -> None:
    """'/', '..' and NUL in an id are a ProtocolError naming the field, value and hazard."""
    with pytest.raises(ProtocolError) as caught:
        make(value)
    message = str(caught.value)
    assert message.startswith(f"{field} {value!r} cannot name a socket file: "
                              f"it contains {shown}")


def test_ipc_path_is_the_socket_file_of_a_url() -> None:
    """The path of an ipc:// URL is what follows the scheme."""
    assert ipc_path(control_url("/tmp", "pysam")) == "/tmp/plugin_pysam.ipc"


def test_ipc_path_refuses_another_scheme() -> None:
    """A URL that is not ipc:// has no socket file: ValueError."""
    with pytest.raises(ValueError, match="not an ipc:// URL"):
        ipc_path("tcp://127.0.0.1:1")
