"""testplug: symbols that misbehave on purpose, for the protocol and e2e tests.

Every lifecycle call is appended as a JSON line to $TESTPLUG_OUT/events.jsonl so tests
can see what ran, in which order, and how often.
"""

import json
import os
import threading
import time
from typing import Any, List

from ekuiper import Context, ErrorPolicy, Function, PluginConfig, Sink, Source, plugin

_lock = threading.Lock()


def record(event: str, out_dir: str = "", **fields: Any) -> None:
    # out_dir: a symbol's own place, for a kuiperd whose environment the test cannot set
    # (the compose stack's).
    out = out_dir or os.environ.get("TESTPLUG_OUT")
    if not out:
        return
    with _lock, open(os.path.join(out, "events.jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"event": event, **fields}) + "\n")


class Counter(Source):
    """Emits {"n": i, "datasource": ds} rows; conf: interval, batch (emit lists), limit,
    with_pid (add the process id to each row), record_emits (an event per emitted row)."""

    def configure(self, datasource: str, conf: dict) -> None:
        if conf.get("fail_configure"):
            raise ValueError("fail_configure was set")
        self.datasource = datasource
        self.conf = conf
        self.stop = threading.Event()
        record("configure", symbol="counter", datasource=datasource, conf=conf)

    def open(self, ctx: Context) -> None:
        record("open", symbol="counter", rule=ctx.get_rule_id())
        ctx.get_logger().info("counter open")
        n = 0
        interval = float(self.conf.get("interval", 0.01))
        batch = int(self.conf.get("batch", 0))
        limit = int(self.conf.get("limit", 0))
        extra = {"pid": os.getpid()} if self.conf.get("with_pid") else {}
        while not self.stop.is_set():
            if batch:
                ctx.emit([{"n": n + i, "datasource": self.datasource, **extra}
                          for i in range(batch)])
                n += batch
            else:
                ctx.emit({"n": n, "datasource": self.datasource, **extra}, {"seq": n})
                if self.conf.get("record_emits"):
                    record("emit", n=n, pid=os.getpid(), rule=ctx.get_rule_id())
                n += 1
            if limit and n >= limit:
                self.stop.wait()
                break
            time.sleep(interval)

    def close(self, ctx: Context) -> None:
        record("close", symbol="counter", rule=ctx.get_rule_id())
        self.stop.set()


class Stubborn(Source):
    """Ignores close(): its open() only ends because emit raises after stop."""

    def open(self, ctx: Context) -> None:
        record("open", symbol="stubborn")
        while True:
            ctx.emit({"x": 1})
            time.sleep(0.01)


class HangsOnClose(Source):
    """close() never returns in time; stop must not wait for it forever."""

    def open(self, ctx: Context) -> None:
        ctx.emit({"x": 1})

    def close(self, ctx: Context) -> None:
        record("close", symbol="hangs")
        time.sleep(60)


class Threaded(Source):
    """open() returns at once; `threads` threads each emit `rows` rows on their own."""

    def configure(self, datasource: str, conf: dict) -> None:
        self.threads = int(conf.get("threads", 4))
        self.rows = int(conf.get("rows", 250))

    def open(self, ctx: Context) -> None:
        def produce(worker: int) -> None:
            for i in range(self.rows):
                ctx.emit({"worker": worker, "i": i, "pad": "x" * (i % 50)})

        for worker in range(self.threads):
            threading.Thread(target=produce, args=(worker,), daemon=True).start()


class Broken(Source):
    """open() raises at once (conf ``bare``: an exception without a message)."""

    def configure(self, datasource: str, conf: dict[str, Any]) -> None:
        self.bare = bool(conf.get("bare"))

    def open(self, ctx: Context) -> None:
        if self.bare:
            raise KeyError
        raise RuntimeError("device unplugged")

    def close(self, ctx: Context) -> None:
        record("close", symbol="broken")


class Reporter(Source):
    """Reports an error with emit_error, then emits one row."""

    def open(self, ctx: Context) -> None:
        ctx.emit_error("sensor offline")
        ctx.emit({"after": "error"})


class Recorder(Sink):
    """Records every message; conf: fail_on (raise when text contains it),
    nack_on (ack_error when text contains it), manual_ack (ack itself),
    configure_wait (seconds configure() takes after recording it)."""

    def configure(self, conf: dict) -> None:
        self.conf = conf
        record("configure", symbol="recorder", conf=conf)
        time.sleep(float(conf.get("configure_wait", 0)))

    def open(self, ctx: Context) -> None:
        record("open", symbol="recorder", rule=ctx.get_rule_id())

    def collect(self, ctx: Context, data: Any) -> None:
        text = data.decode() if isinstance(data, bytes) else json.dumps(data)
        if self.conf.get("sleep"):
            time.sleep(float(self.conf["sleep"]))
        if not self.conf.get("quiet"):
            record("collect", symbol="recorder", data=text, type=type(data).__name__,
                   rule=ctx.get_rule_id())
        if self.conf.get("fail_on") and self.conf["fail_on"] in text:
            raise ValueError(f"cannot store {text}")
        if self.conf.get("nack_on") and self.conf["nack_on"] in text:
            ctx.ack_error("rejected by recorder")
            return
        if self.conf.get("manual_ack"):
            ctx.ack_ok()

    def close(self, ctx: Context) -> None:
        record("close", symbol="recorder", rule=ctx.get_rule_id())


class RowRecorder(Recorder):
    decode_rows = True


class BadOpenSink(Sink):
    def open(self, ctx: Context) -> None:
        raise ConnectionError("database down")

    def collect(self, ctx: Context, data: Any) -> None:
        record("collect", symbol="badopen")


class Flaky(Sink):
    """Raises on the first ``fail_times`` (conf, default 2) attempts of each message, then
    keeps it; retried by its class policy unless the action's collect* properties say
    otherwise. Records an "attempt" per call and a "collect" per message kept (in conf
    ``events_dir`` when set, else $TESTPLUG_OUT)."""

    on_error = ErrorPolicy.retry(3, 0.05, 0.2)

    def configure(self, conf: dict) -> None:
        self.fail_times = int(conf.get("fail_times", 2))
        self.attempts: dict = {}
        self.out_dir = str(conf.get("events_dir", ""))
        if self.out_dir:
            os.makedirs(self.out_dir, exist_ok=True)

    def collect(self, ctx: Context, data: Any) -> None:
        text = data.decode()
        self.attempts[text] = self.attempts.get(text, 0) + 1
        record("attempt", self.out_dir, symbol="flaky", data=text, n=self.attempts[text])
        if self.attempts[text] <= self.fail_times:
            raise ConnectionError(f"store unavailable (attempt {self.attempts[text]})")
        record("collect", self.out_dir, symbol="flaky", data=text, rule=ctx.get_rule_id())


class Upper(Function):
    def exec(self, args: List[Any], ctx: Context) -> Any:
        record("exec", symbol="upper", rule=ctx.get_rule_id(), ctx=id(ctx))
        return str(args[0]).upper()


class Fails(Function):
    def validate(self, args: List[Any]) -> str:
        return "" if len(args) == 1 else "fails takes one argument"

    def exec(self, args: List[Any], ctx: Context) -> Any:
        raise ZeroDivisionError("cannot divide by zero")

    def is_aggregate(self) -> bool:
        return True


class NullFails(Function):
    """Raises for odd numbers; its on_error policy makes those rows null."""

    on_error = ErrorPolicy.null()

    def exec(self, args: List[Any], ctx: Context) -> Any:
        if int(args[0]) % 2:
            raise ZeroDivisionError(f"odd {args[0]}")
        return int(args[0]) * 10


class DefaultFails(NullFails):
    """NullFails whose on_error policy gives the odd rows -1 instead of null."""

    on_error = ErrorPolicy.default(-1)


class Sleepy(Function):
    """Sleeps args[0] seconds, then returns it (a request that runs too long)."""

    def exec(self, args: List[Any], ctx: Context) -> Any:
        time.sleep(float(args[0]))
        return args[0]


class NotJson(Function):
    def exec(self, args: List[Any], ctx: Context) -> Any:
        return object()


def broken_factory() -> Source:
    raise RuntimeError("factory exploded")


if __name__ == "__main__":
    plugin.start(PluginConfig(
        "testplug",
        {"counter": Counter, "stubborn": Stubborn, "broken": Broken, "reporter": Reporter,
         "badfactory": broken_factory, "hangs": HangsOnClose,
         "threaded": Threaded},
        {"recorder": Recorder, "rows": RowRecorder, "badopen": BadOpenSink, "flaky": Flaky},
        {"upper": Upper, "fails": Fails, "notjson": NotJson, "nullfails": NullFails,
         "defaultfails": DefaultFails, "sleepy": Sleepy},
    ))
