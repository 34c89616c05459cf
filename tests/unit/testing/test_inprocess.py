"""ekuiper.testing in-process helpers, exercised on the reference plugin's symbols."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from ekuiper import Context, ErrorPolicy, Function, Sink, Source
from ekuiper.testing import call_function, is_aggregate, run_sink, run_source, validate
from tests.conftest import PLUGINS


@pytest.fixture(scope="module")
def pysam() -> Iterator[dict[str, Any]]:
    """The pysam symbol classes, imported from plugins/pysam."""
    sys.path.insert(0, str(PLUGINS / "pysam"))
    try:
        import print as print_module
        import pyjson
        import revert
        yield {"PyJson": pyjson.PyJson, "PrintSink": print_module.PrintSink,
               "RevertFunc": revert.RevertFunc}
    finally:
        sys.path.remove(str(PLUGINS / "pysam"))


class Failing(Source):
    def open(self, ctx: Context) -> None:
        raise ConnectionRefusedError("no device at /dev/ttyUSB0")


class Reports(Source):
    def open(self, ctx: Context) -> None:
        ctx.emit_error("calibrating")
        ctx.emit({"ok": True})


class Exploding(Sink):
    def collect(self, ctx: Context, data: Any) -> None:
        raise OSError("disk full")


class Divide(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        return args[0] / args[1]


class Sneaky(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        return {1, 2}.__iter__()


def test_run_source_returns_rows_with_datasource(pysam: dict[str, Any]) -> None:
    """run_source collects the requested number of rows, with the datasource given."""
    run = run_source(pysam["PyJson"](), "demo", {"interval": 0.01}, count=3)
    assert len(run.rows) >= 3
    assert run.rows[0] == {"name": "pyjson", "value": 2021, "datasource": "demo", "seq": 1}


def test_run_source_reraises_open_exception_with_traceback() -> None:
    """An exception from open comes back as itself, its traceback in the plugin code."""
    with pytest.raises(ConnectionRefusedError, match="ttyUSB0") as info:
        run_source(Failing(), timeout=2)
    frames = traceback.extract_tb(info.value.__traceback__)
    assert frames[-1].name == "open"


def test_run_source_keeps_emit_error_apart(pysam: dict[str, Any]) -> None:
    """emit_error texts are listed in errors, not among the rows."""
    run = run_source(Reports(), count=1)
    assert (run.errors, run.rows) == (["calibrating"], [{"ok": True}])


def test_run_sink_acks_each_message(pysam: dict[str, Any]) -> None:
    """With require_ack, run_sink returns one ok ack per message."""
    run = run_sink(pysam["PrintSink"](), [{"a": 1}, [{"a": 2}, {"a": 3}]], require_ack=True)
    assert run.acks == [{}, {}]
    assert run.sent == [b'[{"a":1}]', b'[{"a":2},{"a":3}]']


def test_run_sink_send_single_sends_objects(pysam: dict[str, Any]) -> None:
    """send_single sends one JSON object per row, as eKuiper's sendSingle does."""
    run = run_sink(pysam["PrintSink"](), [[{"a": 1}, {"a": 2}]], send_single=True)
    assert run.sent == [b'{"a":1}', b'{"a":2}']


def test_run_sink_reraises_collect_exception() -> None:
    """An exception from collect is re-raised after the run."""
    with pytest.raises(OSError, match="disk full"):
        run_sink(Exploding(), [{"a": 1}], require_ack=True)


def test_run_sink_can_report_instead_of_raise() -> None:
    """With raise_errors=False the failure is visible as an error ack."""
    run = run_sink(Exploding(), [{"a": 1}], require_ack=True, raise_errors=False)
    assert run.acks == [{"error": "OSError: disk full"}]


def test_call_function_returns_result(pysam: dict[str, Any]) -> None:
    """call_function runs exec and returns what eKuiper would receive."""
    assert call_function(pysam["RevertFunc"](), "pyjson") == "nosjyp"


def test_call_function_reraises_exec_exception() -> None:
    """An exception from exec propagates as itself."""
    with pytest.raises(ZeroDivisionError):
        call_function(Divide(), 1, 0)


def test_call_function_refuses_non_json_result() -> None:
    """A result JSON cannot carry raises TypeError, as it would fail the rule."""
    with pytest.raises(TypeError, match="function result cannot be sent to eKuiper"):
        call_function(Sneaky())


def test_validate_and_is_aggregate(pysam: dict[str, Any]) -> None:
    """validate returns None or the error text; is_aggregate the function's answer."""
    revert = pysam["RevertFunc"]()
    assert validate(revert, [{"x": 1}]) is None
    assert validate(revert, []) == "revert takes exactly one argument"
    assert is_aggregate(revert) is False


class SafeDivide(Divide):
    on_error = ErrorPolicy.default(0)


class SafeSneaky(Sneaky):
    on_error = ErrorPolicy.null()


class RetriedExploding(Exploding):
    on_error = ErrorPolicy.retry(2, 0.001)


def test_call_function_honours_the_null_policy() -> None:
    """A function with on_error returns its value instead of raising, as in eKuiper."""
    assert call_function(SafeDivide(), 1, 0) == 0
    assert call_function(SafeSneaky()) is None
    assert call_function(SafeDivide(), 6, 3) == 2


def test_run_sink_honours_the_retry_policy() -> None:
    """run_sink retries as the sink's policy says and reports the retries it made."""
    run = run_sink(RetriedExploding(), [{"a": 1}], require_ack=True, raise_errors=False)
    assert run.acks == [{"error": "OSError: disk full (gave up after 3 attempts)"}]
    assert (run.retries, run.retry_exhausted) == (2, 1)
