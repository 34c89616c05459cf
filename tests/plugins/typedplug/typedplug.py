"""typedplug: typed config and a typed function signature, for the e2e tests.

The ticks source reports the config it was given (values and their Python types) in
every row, so a test can see what the conversion made of eKuiper's conf.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from ekuiper import Context, Function, PluginConfig, Sink, Source, plugin


@dataclass
class TicksConfig:
    """Emits numbered rows."""

    period: float = 1.0
    count: int | None = None
    label: str = "t"
    mode: Literal["fast", "slow"] = "fast"
    every: timedelta = timedelta(seconds=1)
    tags: list[str] = field(default_factory=list)


class Ticks(Source):
    config_type = TicksConfig

    def configure(self, datasource: str, conf: TicksConfig) -> None:
        self.datasource = datasource
        self.conf = conf
        self.stop = threading.Event()

    def open(self, ctx: Context) -> None:
        c = self.conf
        n = 0
        while not self.stop.is_set() and (c.count is None or n < c.count):
            ctx.emit({"n": n, "datasource": self.datasource, "period": c.period,
                      "count": c.count, "label": c.label, "mode": c.mode,
                      "every_s": c.every.total_seconds(),
                      "types": ",".join(type(v).__name__ for v in
                                        (c.period, c.count, c.label, c.every))})
            n += 1
            self.stop.wait(c.period)

    def close(self, ctx: Context) -> None:
        self.stop.set()


@dataclass
class KeepConfig:
    path: str
    limit: int = 100


class Keep(Sink):
    """Appends each row, as JSON, to `path` (at most `limit` rows)."""

    config_type = KeepConfig
    decode_rows = True

    def configure(self, conf: KeepConfig) -> None:
        self.conf = conf
        self.written = 0

    def collect(self, ctx: Context, data: Any) -> None:
        with open(self.conf.path, "a", encoding="utf-8") as fh:
            for row in data:
                if self.written < self.conf.limit:
                    fh.write(json.dumps(row) + "\n")
                    self.written += 1


class Shout(Function):
    def call(self, text: str, times: int = 1) -> str:
        """Upper-cases text, repeated times times."""
        return text.upper() * times


class Scale(Function):
    def call(self, x: float, factor: float = 2.0, *, ctx: Context) -> float:
        """x times factor, as a float whatever number types arrive."""
        assert isinstance(x, float) and isinstance(factor, float)
        return x * factor


if __name__ == "__main__":
    plugin.start(PluginConfig("typedplug", {"ticks": Ticks}, {"keep": Keep},
                              {"shout": Shout, "scale": Scale}))
