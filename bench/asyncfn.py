"""What an ``async def exec`` costs against a sync one: calls per second, paired.

    python -m bench.asyncfn [SECONDS] [ROUNDS]

Two paths, each with a sync and an async function returning its argument, alternated
ROUNDS times for SECONDS each so that machine load hits both alike:

- ``inprocess``: FunctionRuntime.handle, the SDK's request path without sockets (parse,
  dispatch, the hop to the event loop and back for the async one, encode);
- ``process``: a real plugin process over its sockets, driven by ekuiper.testing's
  ProtocolHost as eKuiper drives a function (one request at a time).

Prints JSON: per path the median calls/s of each and the async/sync ratio.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ekuiper import Context, Function
from ekuiper._protocol import Control, Meta
from ekuiper._runtime.function import FunctionRuntime
from ekuiper.testing import MemoryTransport, PluginHost

_PLUGIN = '''
import asyncio
from ekuiper import Function, PluginConfig, plugin

class Echo(Function):
    def exec(self, args, ctx):
        return args[0]

class EchoAsync(Function):
    async def exec(self, args, ctx):
        return args[0]

plugin.start(PluginConfig("asyncfn", {}, {}, {"echo": Echo, "echo_async": EchoAsync}))
'''


class Echo(Function):
    def exec(self, args: list[Any], ctx: Context) -> Any:
        return args[0]


class EchoAsync(Function):
    async def exec(self, args: list[Any], ctx: Context) -> Any:  # type: ignore[override]
        return args[0]


def _rate(call: Callable[[], object], seconds: float) -> float:
    clock = time.perf_counter
    for _ in range(200):
        call()
    count, start = 0, clock()
    while clock() - start < seconds:
        for _ in range(50):
            call()
        count += 50
    return count / (clock() - start)


def _paired(sync: Callable[[], object], async_: Callable[[], object], seconds: float,
            rounds: int) -> dict[str, float]:
    rates: dict[str, list[float]] = {"sync": [], "async": []}
    for i in range(rounds):
        order = [("sync", sync), ("async", async_)]
        for name, call in order if i % 2 == 0 else reversed(order):
            rates[name].append(_rate(call, seconds))
    ratios = [a / s for a, s in zip(rates["async"], rates["sync"])]
    return {"sync_calls_per_s": round(statistics.median(rates["sync"])),
            "async_calls_per_s": round(statistics.median(rates["async"])),
            "async_over_sync": round(statistics.median(ratios), 3)}


def _inprocess(seconds: float, rounds: int) -> dict[str, float]:
    meta = json.dumps({"ruleId": "r", "opId": "o", "instanceId": 0, "funcId": 0})
    request = json.dumps({"func": "Exec", "arg": ["abc", meta]}).encode()
    log = logging.getLogger("bench.asyncfn")
    calls = []
    for function in (Echo(), EchoAsync()):
        runtime = FunctionRuntime(Control("echo", "func", Meta("", "", 0)), function, "p",
                                  MemoryTransport(), log)
        calls.append(lambda rt=runtime: rt.handle(request))
    return _paired(calls[0], calls[1], seconds, rounds)


def _process(seconds: float, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "asyncfn"
        folder.mkdir()
        (folder / "asyncfn.py").write_text(_PLUGIN)
        (folder / "asyncfn.json").write_text(json.dumps(
            {"version": "v0.0.1", "language": "python", "executable": "asyncfn.py",
             "functions": ["echo", "echo_async"]}))
        with PluginHost(folder) as host:
            return _paired(lambda: host.function("echo", "abc"),
                           lambda: host.function("echo_async", "abc"), seconds, rounds)


def main(argv: list[str]) -> None:
    seconds = float(argv[0]) if argv else 1.0
    rounds = int(argv[1]) if len(argv) > 1 else 5
    print(json.dumps({"seconds": seconds, "rounds": rounds,
                      "inprocess": _inprocess(seconds, rounds),
                      "process": _process(seconds, rounds)}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
