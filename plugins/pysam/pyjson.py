"""The pyjson source: emits {"name": "pyjson", "value": n, "datasource": ...} rows."""

import threading
from typing import Any

from ekuiper import Context, Source


class PyJson(Source):
    def __init__(self) -> None:
        self.datasource = ""
        self.interval = 0.2
        self.value = 2021
        self.stopped = threading.Event()

    def configure(self, datasource: str, conf: dict) -> None:
        self.datasource = datasource
        self.interval = float(conf.get("interval", self.interval))
        self.value = conf.get("value", self.value)

    def open(self, ctx: Context) -> None:
        log = ctx.get_logger()
        log.info("pyjson opened with datasource %r", self.datasource)
        seq = 0
        while not self.stopped.is_set():
            seq += 1
            row: dict[str, Any] = {"name": "pyjson", "value": self.value,
                                   "datasource": self.datasource, "seq": seq}
            ctx.emit(row, None)
            self.stopped.wait(self.interval)

    def close(self, ctx: Context) -> None:
        ctx.get_logger().info("pyjson closing")
        self.stopped.set()
