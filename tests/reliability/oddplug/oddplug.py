"""oddplug: large and odd data through the SDK, for tests/reliability/test_odd_data.py.

The source ``odd`` emits one row chosen by its conf key ``payload`` (see ROWS), then waits
for close. The sinks ``keep`` (raw bytes) and ``keeprows`` (decode_rows) write what
collect() got to $ODDPLUG_OUT/<symbol>-<n>.bin (rows as UTF-8 JSON). The function
``echo`` returns its first argument; ``oddresult`` returns the value RESULTS names.
"""

import json
import os
import threading
from typing import Any, Callable, Dict, List

from ekuiper import Context, Function, PluginConfig, Sink, Source, plugin

TEN_MB = 10 * 1024 * 1024


def nested(depth: int) -> Any:
    """``depth`` lists, one inside the other, around {"leaf": true}."""
    value: Any = {"leaf": True}
    for _ in range(depth):
        value = [value]
    return value


def big_text() -> str:
    pattern = "0123456789abcdef\u00e9\u4e2d\U0001f30d"  # 1-, 2-, 3- and 4-byte UTF-8
    return (pattern * (TEN_MB // len(pattern) + 1))[:TEN_MB]


VALUES: Dict[str, Callable[[], Any]] = {
    "big": big_text,
    "deep200": lambda: nested(200),
    "deep5000": lambda: nested(5000),
    "unicode": lambda: "h\u00e9llo \U0001f30d \u4e2d\u6587 \u202eRTL\u202c \x00\u2028",
    "nan": lambda: float("nan"),
    "inf": lambda: float("inf"),
    "-inf": lambda: float("-inf"),
    "utf8bytes": lambda: "caf\u00e9 \U0001f30d".encode(),
    "utf8bytearray": lambda: bytearray("caf\u00e9".encode()),
    "utf8memoryview": lambda: memoryview("caf\u00e9".encode()),
    "badbytes": lambda: b"\xff\xfe\x00",
    "none": lambda: None,
    "object": object,
    "set": lambda: {3},
    "tuple": lambda: (1, "a"),
    "surrogate": lambda: "\ud800",
}


class Odd(Source):
    """Emits {"value": VALUES[conf["payload"]]()} once, then waits for close."""

    def configure(self, datasource: str, conf: dict) -> None:
        self.payload = conf["payload"]
        self.closed = threading.Event()

    def open(self, ctx: Context) -> None:
        ctx.emit({"value": VALUES[self.payload]()})
        self.closed.wait()

    def close(self, ctx: Context) -> None:
        self.closed.set()


class Keep(Sink):
    """Writes each message as received to $ODDPLUG_OUT/<symbol>-<n>.bin."""

    symbol = "keep"

    def configure(self, conf: dict) -> None:
        self.count = 0

    def collect(self, ctx: Context, data: Any) -> None:
        if isinstance(data, bytes):
            raw = data
        else:
            raw = json.dumps({"type": type(data).__name__, "data": data},
                             ensure_ascii=False).encode("utf-8")
        path = os.path.join(os.environ["ODDPLUG_OUT"], f"{self.symbol}-{self.count}.bin")
        with open(path + ".tmp", "wb") as fh:
            fh.write(raw)
        os.replace(path + ".tmp", path)
        self.count += 1


class KeepRows(Keep):
    """Keep, with the rows decoded by the SDK."""

    symbol = "keeprows"
    decode_rows = True


class Echo(Function):
    def exec(self, args: List[Any], ctx: Context) -> Any:
        return args[0]


class OddResult(Function):
    def exec(self, args: List[Any], ctx: Context) -> Any:
        return {"value": VALUES[args[0]]()}


if __name__ == "__main__":
    plugin.start(PluginConfig(
        "oddplug",
        {"odd": Odd},
        {"keep": Keep, "keeprows": KeepRows},
        {"echo": Echo, "oddresult": OddResult},
    ))
