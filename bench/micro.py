"""Microbenchmark of a source's emit path, without kuiperd. Standalone script.

    <python> bench/micro.py VARIANT URL SECONDS

prints one JSON object: ``{"variant", "rate", "count", "seconds", "cpu_us_per_emit"}``.
The bench harness starts a drain process (bench/drain.py, always this repo's venv)
listening on URL first, so every variant pushes into the same fast reader. VARIANT is one of

- ``sdk``: this SDK's real path, ``SymbolContext.emit`` on a channel from
  ``SocketTransport.source`` (the default transport: SP over the Unix socket);
- ``sdk_pynng``: the same on ``NngTransport.source`` (a pynng Push0, EKUIPER_TRANSPORT=pynng);
- ``official``: the official SDK's ``ContextImpl.emit`` on its ``SourceChannel``
  (run with the official venv's python; the channel always dials under /tmp);
- ``raw``: ``Push0.send`` of one pre-encoded frame in a loop: the floor for pynng;
- ``raw_socket``: ``socket.send`` of one pre-encoded SP frame: the floor for Python;
- ``sdk_encode``: this SDK's frame encoding alone (``encode_source_frame``), no socket.

The emit cases of values plugin code produces (a row with a 100-float numpy array,
``NUMPY_ROW``), on the SDK's real path (``SymbolContext.emit``, socket transport):

- ``sdk_numpy``: emit the row with its numpy array, the encoder the SDK picks (orjson when
  the ``fast`` extra is installed);
- ``sdk_numpy_json``: the baseline: the standard library's encoder
  (``_encoding.use("json")``) and the array made a list first (``.tolist()`` per emit);
- ``sdk_json``: ``ROW`` with the standard library's encoder, against ``sdk``'s choice;
- ``encode_numpy`` / ``encode_numpy_json``: the same two encodings alone, no socket.

Each variant emits the same row for a 0.3 s warm-up, then counts emits over SECONDS.

    python -m bench.micro compare [SECONDS] [REPS]

runs the emit cases (and ``sdk``, ``sdk_encode``) REPS times each, alternating, with the
drain the harness uses, and prints the rates and the ratios to their baselines as JSON.

    python -m bench.micro interleave [SECONDS]

runs each numpy pair (``sdk_numpy`` against ``sdk_numpy_json``, ``encode_numpy`` against
``encode_numpy_json``) in one process, alternating blocks of 20 ms for SECONDS, and
prints the ratio of their times per emit. Load on a shared machine changes what a µs
buys within seconds (``compare``'s paired ratios of separate runs spread 2x and more
while the instruction counts of both paths stay put); blocks this short see the same
load, so the ratio of their sums barely moves.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable

ROW: dict[str, Any] = {"name": "benchmark", "value": 42}
NUMPY_FLOATS = 100
WARMUP_S = 0.3
BATCH = 200
# (emit one row, send raw bytes on the same socket, close)
Step = tuple[Callable[[], object], Callable[[bytes], object], Callable[[], None]]


def timed(step: Callable[[], object], seconds: float) -> tuple[int, float, float]:
    """Emits counted over ``seconds`` after the warm-up: (count, wall s, CPU s)."""
    clock = time.perf_counter
    end = clock() + WARMUP_S
    while clock() < end:
        for _ in range(BATCH):
            step()
    count = 0
    cpu = time.process_time()
    start = clock()
    end = start + seconds
    while True:
        for _ in range(BATCH):
            step()
        count += BATCH
        now = clock()
        if now >= end:
            return count, now - start, time.process_time() - cpu


def rule_of(url: str) -> str:
    # ipc:///tmp/<rule>_op_0.ipc
    name = url.rsplit("/", 1)[1]
    return name[: -len("_op_0.ipc")]


def numpy_array() -> Any:
    import numpy as np

    return np.random.default_rng(42).random(NUMPY_FLOATS)


def sdk_step(url: str, transport_name: str = "socket",
             make_row: Callable[[], Any] | None = None) -> Step:
    """``make_row`` builds the row of each emit (default: ``ROW`` itself)."""
    import logging
    import os

    from ekuiper._protocol import Meta
    from ekuiper._runtime.context import SymbolContext
    from ekuiper._transport import NngTransport, SocketTransport

    meta = Meta(rule_of(url), "op", 0)
    ipc_dir = os.path.dirname(url[len("ipc://"):])
    transport = SocketTransport(ipc_dir) if transport_name == "socket" else NngTransport(ipc_dir)
    channel = transport.source(meta, 1000)
    ctx = SymbolContext("source", "micro", meta, logging.getLogger("bench.micro"))
    ctx.attach_emitter(channel)
    emit = ctx.emit
    if make_row is None:
        return (lambda: emit(ROW, None)), channel.send, channel.close
    return (lambda: emit(make_row(), None)), channel.send, channel.close


def _use(encoder: str) -> None:
    from ekuiper import _encoding

    _encoding.use(encoder)


def sdk_numpy_step(url: str) -> Step:
    """The numpy row as it is, with the encoder the SDK picks."""
    row = {"name": "benchmark", "values": numpy_array()}
    return sdk_step(url, make_row=lambda: row)


def sdk_numpy_json_step(url: str) -> Step:
    """The baseline: the same row made JSON-ready by hand, the standard library encoding."""
    _use("json")
    values = numpy_array()
    return sdk_step(url, make_row=lambda: {"name": "benchmark", "values": values.tolist()})


def sdk_json_step(url: str) -> Step:
    _use("json")
    return sdk_step(url)


def encode_numpy_step(url: str) -> Step:
    from ekuiper._protocol import encode_source_frame

    row = {"name": "benchmark", "values": numpy_array()}
    return (lambda: encode_source_frame(row, None)), (lambda _: None), (lambda: None)


def encode_numpy_json_step(url: str) -> Step:
    values = numpy_array()
    encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    def encode() -> bytes:
        frame = {"message": {"name": "benchmark", "values": values.tolist()}, "meta": None}
        return encoder.encode(frame).encode("utf-8")

    return encode, (lambda _: None), (lambda: None)


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


def raw_socket_step(url: str) -> Step:
    import socket
    import struct

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(url[len("ipc://"):])
    sock.sendall(b"\x00SP\x00\x00\x50\x00\x00")  # PUSH
    sock.recv(8)
    body = json.dumps({"message": ROW, "meta": None}, separators=(",", ":")).encode()
    frame = struct.pack(">BQ", 1, len(body)) + body
    send = sock.send

    def send_raw(data: bytes) -> None:
        sock.sendall(struct.pack(">BQ", 1, len(data)) + data)

    return (lambda: send(frame)), send_raw, sock.close


def encode_step(url: str) -> Step:
    from ekuiper._protocol import encode_source_frame

    return (lambda: encode_source_frame(ROW, None)), (lambda _: None), (lambda: None)


VARIANTS = {"sdk": sdk_step, "sdk_pynng": lambda url: sdk_step(url, "pynng"),
            "official": official_step, "raw": raw_step, "raw_socket": raw_socket_step,
            "sdk_encode": encode_step, "sdk_numpy": sdk_numpy_step,
            "sdk_numpy_json": sdk_numpy_json_step, "sdk_json": sdk_json_step,
            "encode_numpy": encode_numpy_step, "encode_numpy_json": encode_numpy_json_step}
# (case, baseline) pairs `compare` reports as ratios of emits/s.
COMPARE = (("sdk_numpy", "sdk_numpy_json"), ("encode_numpy", "encode_numpy_json"),
           ("sdk", "sdk_json"))


def compare(seconds: float, reps: int) -> dict[str, Any]:
    """Every case of COMPARE, REPS times, alternating; medians and paired ratios."""
    from pathlib import Path
    from statistics import median

    from bench.run import micro_sample

    python = Path(sys.executable)
    names = [name for pair in COMPARE for name in pair]
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            sample = micro_sample(name, python, seconds)
            rates[name].append(sample["rate"])
            cpus[name].append(sample["cpu_us_per_emit"])
    # The rate ratio is of two processes' wall clocks, minutes apart on a shared machine,
    # each sharing the CPU with its drain; the CPU ratio is of the emitting process's own
    # time (its send system calls included), which other load disturbs far less.
    ratios = {f"{case} / {base}": {
        "median": median(rates[case]) / median(rates[base]),
        "paired": [a / b for a, b in zip(rates[case], rates[base])],
        "cpu_median": median(cpus[base]) / median(cpus[case]),
        "cpu_paired": [b / a for a, b in zip(cpus[case], cpus[base])]}
        for case, base in COMPARE}
    return {"seconds": seconds, "reps": reps,
            "rates": {n: {"median": median(r), "us_per_emit": 1e6 / median(r), "all": r,
                          "cpu_us_per_emit": median(cpus[n]), "cpu_all": cpus[n]}
                      for n, r in rates.items()},
            "ratios": ratios}


def interleave(seconds: float, block_s: float = 0.02) -> dict[str, Any]:
    """The numpy pairs, each in this process, in alternating blocks: ratios of time per emit."""
    import subprocess
    from pathlib import Path

    from ekuiper import _encoding

    url = "ipc:///tmp/bench_micro_interleave_op_0.ipc"
    drain = subprocess.Popen([sys.executable, str(Path(__file__).parent / "drain.py"), url],
                             stdout=subprocess.PIPE, text=True)
    assert drain.stdout is not None
    drain.stdout.readline()  # "listening"
    chosen = _encoding.use()
    pairs = {"sdk_numpy / sdk_numpy_json": (sdk_numpy_step(url), sdk_numpy_json_step(url)),
             "encode_numpy / encode_numpy_json": (encode_numpy_step(url),
                                                  encode_numpy_json_step(url))}
    # Which encoder each step runs with (the *_json steps' baseline is the standard one).
    encoders = (chosen, "json")
    out: dict[str, Any] = {"seconds": seconds, "block_s": block_s, "ratios": {}}
    clock = time.perf_counter
    try:
        for name, steps in pairs.items():
            spent, counts = [0.0, 0.0], [0, 0]
            for i, (step, _, _) in enumerate(steps):  # warm-up
                _encoding.use(encoders[i])
                timed(step, 0.0)
            end = clock() + seconds
            while clock() < end:
                for i, (step, _, _) in enumerate(steps):
                    _encoding.use(encoders[i])
                    start = clock()
                    stop = start + block_s
                    n = 0
                    while True:
                        for _ in range(20):
                            step()
                        n += 20
                        now = clock()
                        if now >= stop:
                            break
                    spent[i] += now - start
                    counts[i] += n
            per = [1e6 * spent[i] / counts[i] for i in (0, 1)]
            out["ratios"][name] = {"us_per_emit": per, "ratio": per[1] / per[0]}
    finally:
        # END behind every row: the drain stops there and removes its socket file.
        pairs["sdk_numpy / sdk_numpy_json"][0][1](b"END")
        time.sleep(0.2)
        for steps in pairs.values():
            for _, _send, close in steps:
                close()
        try:
            drain.wait(15)
        except subprocess.TimeoutExpired:
            drain.kill()
            drain.wait()
    return out


def main(argv: list[str]) -> int:
    if argv and argv[0] == "interleave":
        print(json.dumps(interleave(float(argv[1]) if len(argv) > 1 else 5.0), indent=2))
        return 0
    if argv and argv[0] == "compare":
        seconds = float(argv[1]) if len(argv) > 1 else 2.0
        reps = int(argv[2]) if len(argv) > 2 else 5
        print(json.dumps(compare(seconds, reps), indent=2))
        return 0
    variant, url, seconds = argv[0], argv[1], float(argv[2])
    step, send, close = VARIANTS[variant](url)
    count, elapsed, cpu = timed(step, seconds)
    send(b"END")  # behind every row on the same pipe: the drain process stops there
    time.sleep(0.2)  # nng drops what is still queued when a socket closes
    close()
    print(json.dumps({"variant": variant, "rate": count / elapsed, "count": count,
                      "seconds": elapsed, "cpu_us_per_emit": 1e6 * cpu / count}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
