"""stateplug: symbols that keep their counts with ctx.put_state, for the state tests.

tally (source) emits {"n": n, "pid": ...}, n going on from the value it kept; calls
(function) counts its calls per rule; jot (sink) appends each row, with the number of
rows it has seen for the rule, to $STATEPLUG_OUT/<rule>.jsonl (flushed at once, so a
test can read it while the rule runs and after kuiperd is killed).
"""

import json
import os
import threading
from typing import Any, List

from ekuiper import Context, Function, PluginConfig, Sink, Source, plugin


class Tally(Source):
    def configure(self, datasource: str, conf: dict) -> None:
        self.interval = float(conf.get("interval", 0.02))
        self.stop = threading.Event()

    def open(self, ctx: Context) -> None:
        n = ctx.get_state("n", 0)
        while not self.stop.is_set():
            ctx.emit({"n": n, "pid": os.getpid()})
            n += 1
            ctx.put_state("n", n)  # after the emit: a crash between the two repeats a row
            self.stop.wait(self.interval)

    def close(self, ctx: Context) -> None:
        self.stop.set()


class Calls(Function):
    def exec(self, args: List[Any], ctx: Context) -> Any:
        calls = ctx.get_state("calls", 0) + 1
        ctx.put_state("calls", calls)
        return calls


class Jot(Sink):
    decode_rows = True

    def collect(self, ctx: Context, data: Any) -> None:
        seen = ctx.get_state("seen", 0)
        path = os.path.join(os.environ["STATEPLUG_OUT"], f"{ctx.get_rule_id()}.jsonl")
        with open(path, "a", encoding="utf-8") as out:
            for row in data:
                seen += 1
                out.write(json.dumps({**row, "seen": seen}) + "\n")
        ctx.put_state("seen", seen)


if __name__ == "__main__":
    plugin.start(PluginConfig("stateplug", {"tally": Tally}, {"jot": Jot}, {"calls": Calls}))
