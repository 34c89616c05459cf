"""The symbols of the Python bench plugins, written against the API both SDKs share.

The same file runs under this SDK (plugin ``benchpy``) and under the official
``ekuiper==2.4.2`` (plugin ``benchofficial``); only the symbol-name suffix differs.

- ``BenchSource``: emits one small row as fast as ``ctx.emit`` returns.
- ``IdleSource``: emits nothing until the rule stops (idle-cost measurement).
- ``BenchSink``: counts what it receives; acks only when the action sets requireAck
  (the official SDK's ``ack_ok`` blocks when eKuiper is not reading acks).
- ``RevertFunc``: ``revert(s)`` returns ``s`` reversed.
"""

from __future__ import annotations

import threading
from typing import Any

from ekuiper import Context, Function, Sink, Source

ROW: dict[str, Any] = {"name": "benchmark", "value": 42}


def _is_closed(exc: Exception) -> bool:
    # Ours raises ChannelClosedError after stop; the official SDK lets pynng.Closed out.
    return type(exc).__name__ in ("ChannelClosedError", "Closed")


class BenchSource(Source):
    def __init__(self) -> None:
        self.stopped = threading.Event()

    def configure(self, datasource: str, conf: dict[str, Any]) -> None:
        pass

    def open(self, ctx: Context) -> None:
        emit = ctx.emit
        stopped = self.stopped.is_set
        while not stopped():
            try:
                emit(ROW, None)
            except Exception as exc:
                # The official SDK raises pynng.Timeout under backpressure: retry.
                if stopped() or _is_closed(exc):
                    return

    def close(self, ctx: Context) -> None:
        self.stopped.set()


class IdleSource(Source):
    def __init__(self) -> None:
        self.stopped = threading.Event()

    def configure(self, datasource: str, conf: dict[str, Any]) -> None:
        pass

    def open(self, ctx: Context) -> None:
        self.stopped.wait()

    def close(self, ctx: Context) -> None:
        self.stopped.set()


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


class BenchSink(Sink):
    def __init__(self) -> None:
        self.require_ack = False
        self.messages = 0

    def configure(self, conf: dict[str, Any]) -> None:
        self.require_ack = _truthy(conf.get("requireAck", False))

    def open(self, ctx: Context) -> None:
        pass

    def collect(self, ctx: Context, data: Any) -> None:
        self.messages += 1
        if self.require_ack:
            ctx.ack_ok()

    def close(self, ctx: Context) -> None:
        pass


class RevertFunc(Function):
    def validate(self, args: list[Any]) -> str:
        return "" if len(args) == 1 else "revert takes exactly one argument"

    def exec(self, args: list[Any], ctx: Context) -> Any:
        return str(args[0])[::-1]

    def is_aggregate(self) -> bool:
        return False
