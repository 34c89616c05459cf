"""asyncplug: async symbols beside a sync one, for the e2e tests of async support.

- ``ticks`` (source): an async generator yielding {"seq": n, "datasource": ds}; it also
  starts a heartbeat task, so a stop must cancel a task the source created.
- ``store`` (sink): an async collect with four messages in flight; appends each row to
  $ASYNCPLUG_OUT/rows.jsonl when it finishes.
- ``live_threads(x)`` (sync function): the names of the plugin's live threads.
- ``pushes`` (source): an async configure turning the conf's ``step`` (a string in its
  YAML) into an int, and an async open awaiting ``ctx.emit_async`` for ``limit`` rows
  {"seq": n, "value": n * step, ...}, one row and a list of two in turn.
- ``acked`` (sink): an async collect acking each message itself (``ack_error`` for the
  seq in the action's ``nack_seq``); it declares four in flight, which requireAck
  overrides. Appends each row to $ASYNCPLUG_OUT/rows.jsonl.
- ``asyncfn(x)`` (async function): {"x": x, "thread": ..., "loop": ...}, read on the loop.

Lifecycle events go to $ASYNCPLUG_OUT/events.jsonl, one JSON object a line.
"""

import asyncio
import json
import os
import threading
from typing import Any, List

from ekuiper import Context, Function, PluginConfig, Sink, Source, plugin

_lock = threading.Lock()


def _append(name: str, record: Any) -> None:
    out = os.environ.get("ASYNCPLUG_OUT")
    if not out:
        return
    with _lock, open(os.path.join(out, name), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def event(name: str, **fields: Any) -> None:
    _append("events.jsonl", {"event": name, **fields})


class Ticks(Source):
    def configure(self, datasource: str, conf: dict) -> None:
        self.datasource = datasource
        self.interval = float(conf.get("interval", 0.002))
        self.limit = int(conf.get("limit", 0))

    async def _heartbeat(self, rule: str) -> None:
        try:
            while True:
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            event("heartbeat_cancelled", rule=rule)
            raise

    async def open(self, ctx: Context):
        rule = ctx.get_rule_id()
        tasks = sorted(t.get_name() for t in asyncio.all_tasks())
        event("open", rule=rule, tasks=tasks, thread=threading.current_thread().name)
        asyncio.get_running_loop().create_task(self._heartbeat(rule), name=f"heartbeat {rule}")
        seq = 0
        try:
            while not self.limit or seq < self.limit:
                yield {"seq": seq, "datasource": self.datasource}
                seq += 1
                await asyncio.sleep(self.interval)
            await asyncio.sleep(3600)
        finally:
            # A stop cancels the generator where it waits: CancelledError at an await,
            # GeneratorExit at a yield; either way this runs.
            event("open_ended", rule=rule, emitted=seq)

    def close(self, ctx: Context) -> None:
        event("close", symbol="ticks", rule=ctx.get_rule_id())


class Store(Sink):
    decode_rows = True
    max_in_flight = 4

    def open(self, ctx: Context) -> None:
        self.running = 0
        self.peak = 0

    async def collect(self, ctx: Context, data: Any) -> None:
        for row in data:
            event("collect_start", seq=row.get("seq"), rule=ctx.get_rule_id())
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            # Every third message takes longer, so completions interleave.
            first = data[0].get("seq", 0) if data else 0
            await asyncio.sleep(0.03 if first % 3 == 0 else 0.01)
            for row in data:
                _append("rows.jsonl", {"rule": ctx.get_rule_id(), **row})
        finally:
            self.running -= 1

    async def close(self, ctx: Context) -> None:
        event("close", symbol="store", rule=ctx.get_rule_id(), peak=self.peak)


def _loop_id() -> int:
    # Only code running on an event loop has one; rows carry it so a test can tell that
    # configure, open and exec of different symbols ran on the same loop.
    return id(asyncio.get_running_loop())


class Pushes(Source):
    async def configure(self, datasource: str, conf: dict) -> None:
        await asyncio.sleep(0)  # suspends, so the rest runs only if the loop resumes it
        self.datasource = datasource
        self.step = int(conf["step"])
        self.limit = int(conf.get("limit", 0))
        self.configured_on = threading.current_thread().name
        self.configured_loop = _loop_id()

    def _row(self, seq: int, loop: int) -> dict:
        return {"seq": seq, "value": seq * self.step, "configured_on": self.configured_on,
                "configured_loop": self.configured_loop, "loop": loop}

    async def open(self, ctx: Context) -> None:
        rule = ctx.get_rule_id()
        loop = _loop_id()
        seq = 0
        try:
            while seq < self.limit:
                if seq % 3 == 0:
                    await ctx.emit_async(self._row(seq, loop))
                    seq += 1
                else:
                    pair = [self._row(n, loop) for n in range(seq, min(seq + 2, self.limit))]
                    await ctx.emit_async(pair)
                    seq += len(pair)
            await asyncio.sleep(3600)  # a source stays open until the rule stops
        finally:
            event("open_ended", symbol="pushes", rule=rule, emitted=seq)


class Acked(Sink):
    decode_rows = True
    max_in_flight = 4  # requireAck overrides it: one message at a time

    def configure(self, conf: dict) -> None:
        self.nack_seq = conf.get("nack_seq")

    def open(self, ctx: Context) -> None:
        self.running = 0
        self.peak = 0

    async def collect(self, ctx: Context, data: Any) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0.005)  # a real await: overlapping collects would show
            for row in data:
                _append("rows.jsonl", {"rule": ctx.get_rule_id(), **row})
            if any(row.get("seq") == self.nack_seq for row in data):
                ctx.ack_error(f"acked refuses seq {self.nack_seq}")
            else:
                ctx.ack_ok()
        finally:
            self.running -= 1

    def close(self, ctx: Context) -> None:
        event("close", symbol="acked", rule=ctx.get_rule_id(), peak=self.peak)


class AsyncFn(Function):
    def validate(self, args: List[Any]) -> str:
        return "" if len(args) == 1 else "asyncfn takes one argument"

    def is_aggregate(self) -> bool:
        return False

    async def exec(self, args: List[Any], ctx: Context) -> Any:
        await asyncio.sleep(0)
        return {"x": args[0], "thread": threading.current_thread().name, "loop": _loop_id()}


class LiveThreads(Function):
    def validate(self, args: List[Any]) -> str:
        return "" if len(args) == 1 else "live_threads takes one argument"

    def exec(self, args: List[Any], ctx: Context) -> Any:
        return sorted(t.name for t in threading.enumerate())


if __name__ == "__main__":
    plugin.start(PluginConfig("asyncplug", {"ticks": Ticks, "pushes": Pushes},
                              {"store": Store, "acked": Acked},
                              {"live_threads": LiveThreads, "asyncfn": AsyncFn}))
