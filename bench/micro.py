"""Microbenchmark of a source's emit path, without kuiperd. Standalone script.

    <python> bench/micro.py VARIANT URL SECONDS

prints one JSON object: ``{"variant", "rate", "count", "seconds"}``. The bench harness
starts a drain process (bench/drain.py, always this repo's venv) listening on URL first,
so every variant pushes into the same fast reader. VARIANT is one of

- ``sdk``: this SDK's real path, ``SymbolContext.emit`` on a channel from
  ``NngTransport.source`` (a pynng Push0 dialled to URL, as in a running plugin);
- ``official``: the official SDK's ``ContextImpl.emit`` on its ``SourceChannel``
  (run with the official venv's python; the channel always dials under /tmp);
- ``raw``: ``Push0.send`` of one pre-encoded frame in a loop: the floor;
- ``sdk_encode``: this SDK's frame encoding alone (``encode_source_frame``), no socket.

Each variant emits the same row for a 0.3 s warm-up, then counts emits over SECONDS.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable

ROW: dict[str, Any] = {"name": "benchmark", "value": 42}
WARMUP_S = 0.3
BATCH = 200
# (emit one row, send raw bytes on the same socket, close)
Step = tuple[Callable[[], object], Callable[[bytes], object], Callable[[], None]]


def timed(step: Callable[[], object], seconds: float) -> tuple[int, float]:
    clock = time.perf_counter
    end = clock() + WARMUP_S
    while clock() < end:
        for _ in range(BATCH):
            step()
    count = 0
    start = clock()
    end = start + seconds
    while True:
        for _ in range(BATCH):
            step()
        count += BATCH
        now = clock()
        if now >= end:
            return count, now - start


def rule_of(url: str) -> str:
    # ipc:///tmp/<rule>_op_0.ipc
    name = url.rsplit("/", 1)[1]
    return name[: -len("_op_0.ipc")]


def sdk_step(url: str) -> Step:
    import logging
    import os

    from ekuiper._protocol import Meta
    from ekuiper._runtime.context import SymbolContext
    from ekuiper._transport import NngTransport

    meta = Meta(rule_of(url), "op", 0)
    channel = NngTransport(os.path.dirname(url[len("ipc://"):])).source(meta, 1000)
    ctx = SymbolContext("source", "micro", meta, logging.getLogger("bench.micro"))
    ctx.attach_emitter(channel)
    emit = ctx.emit
    return (lambda: emit(ROW, None)), channel.send, channel.close


def official_step(url: str) -> Step:
    from ekuiper.runtime.connection import SourceChannel  # type: ignore[import-not-found]
    from ekuiper.runtime.contextimpl import ContextImpl  # type: ignore[import-not-found]

    meta = {"ruleId": rule_of(url), "opId": "op", "instanceId": 0}
    channel = SourceChannel(meta)
    if url != f"ipc:///tmp/{meta['ruleId']}_op_0.ipc":
        raise SystemExit("the official SourceChannel only dials under /tmp")
    ctx = ContextImpl(meta)
    ctx.set_emitter(channel)
    emit = ctx.emit
    return (lambda: emit(ROW, None)), channel.send, channel.close


def raw_step(url: str) -> Step:
    import pynng  # type: ignore[import-untyped]

    sock = pynng.Push0(send_timeout=1000)
    sock.dial(url, block=True)
    frame = json.dumps({"message": ROW, "meta": None}, separators=(",", ":")).encode()
    send = sock.send
    return (lambda: send(frame)), send, sock.close


def encode_step(url: str) -> Step:
    from ekuiper._protocol import encode_source_frame

    return (lambda: encode_source_frame(ROW, None)), (lambda _: None), (lambda: None)


VARIANTS = {"sdk": sdk_step, "official": official_step, "raw": raw_step,
            "sdk_encode": encode_step}


def main(argv: list[str]) -> int:
    variant, url, seconds = argv[0], argv[1], float(argv[2])
    step, send, close = VARIANTS[variant](url)
    count, elapsed = timed(step, seconds)
    send(b"END")  # behind every row on the same pipe: the drain process stops there
    time.sleep(0.2)  # nng drops what is still queued when a socket closes
    close()
    print(json.dumps({"variant": variant, "rate": count / elapsed, "count": count,
                      "seconds": elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
