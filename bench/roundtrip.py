"""The plugin's side of a function round trip, without kuiperd: time or instructions per call.

    python -m bench.roundtrip [CALLS]               # wall and CPU µs per call
    python -m bench.roundtrip --callgrind [N1 N2]   # instructions per call (valgrind)

A REP on a raw Unix socket, in a process of its own, stands in for eKuiper's function
channel: it answers every request with the same ``Exec`` of ``revert("benchmark")``, as
kuiperd v2 words it. The plugin's side is the SDK's own path: the channel from
``SocketTransport.function`` and ``FunctionRuntime.handle``, in the loop the function
runtime runs (recv a request, handle it, send the reply as the next request).

``--callgrind`` runs the plugin's side under ``valgrind --tool=callgrind`` for N1 and N2
calls (1000 and 5000) and prints the difference over N2 - N1: start-up cancels out, and
the count, unlike a time, barely moves with other load on the machine. The peer is not
counted. ``PYTHONHASHSEED`` is fixed so that two runs hash alike.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

SYMBOL = "revert"
# What kuiperd v2 sends for revert(name) on a row {"name": "benchmark"}.
REQUEST = (b'{"func":"Exec","arg":["benchmark","{\\"ruleId\\":\\"bench_fn\\",'
           b'\\"opId\\":\\"op_2_project\\",\\"instanceId\\":0,\\"funcId\\":0}"]}')
_HEAD = struct.Struct(">BQ")


def serve(path: str) -> None:
    """The REP: each request frame is answered with REQUEST under the request's id."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    print("listening", flush=True)
    while True:
        conn, _ = listener.accept()
        conn.sendall(b"\x00SP\x00\x00\x31\x00\x00")  # REP
        buf = bytearray()
        header = 8  # the dialler's SP header, before its first frame
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data
                if header:
                    taken = min(header, len(buf))
                    del buf[:taken]
                    header -= taken
                out = []
                while len(buf) >= 9:
                    _, length = _HEAD.unpack_from(buf)
                    if len(buf) < 9 + length:
                        break
                    request_id = bytes(buf[9:13])
                    del buf[:9 + length]
                    out.append(_HEAD.pack(1, 4 + len(REQUEST)) + request_id + REQUEST)
                if out:
                    conn.sendall(b"".join(out))
        except OSError:
            pass  # the plugin's side closed mid-reply
        finally:
            conn.close()


def drive(calls: int, ipc_dir: str) -> dict[str, float]:
    """The plugin's side: ``calls`` round trips after 100 unmeasured ones."""
    import logging
    from typing import Any

    from ekuiper import Context, Function, _protocol
    from ekuiper._kinds import FUNCTION
    from ekuiper._protocol import Control, Meta
    from ekuiper._runtime.function import FunctionRuntime
    from ekuiper._transport import SocketTransport

    class Revert(Function):
        def validate(self, args: list[Any]) -> str:
            return ""

        def exec(self, args: list[Any], ctx: Context) -> Any:
            return str(args[0])[::-1]

        def is_aggregate(self) -> bool:
            return False

    transport = SocketTransport(ipc_dir)
    runtime = FunctionRuntime(Control(SYMBOL, FUNCTION.wire, Meta("", "", 0)), Revert(),
                              "bench", transport, logging.getLogger("bench.roundtrip"))
    channel = transport.function(SYMBOL, 5000)
    channel.send(_protocol.HANDSHAKE)
    recv, send, handle = channel.recv, channel.send, runtime.handle
    for _ in range(100):
        send(handle(recv()))
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        send(handle(recv()))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    channel.close()
    return {"calls": calls, "wall_us_per_call": 1e6 * wall / calls,
            "cpu_us_per_call": 1e6 * cpu / calls}


def _with_peer(run: Callable[[str], T]) -> T:
    ipc_dir = tempfile.mkdtemp(prefix="ekuiper-roundtrip-")
    peer = subprocess.Popen([sys.executable, "-m", "bench.roundtrip", "--serve",
                             os.path.join(ipc_dir, f"func_{SYMBOL}.ipc")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert peer.stdout is not None
        peer.stdout.readline()  # "listening"
        return run(ipc_dir)
    finally:
        peer.kill()
        peer.wait()
        shutil.rmtree(ipc_dir, ignore_errors=True)


def callgrind(n1: int, n2: int) -> dict[str, float]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")

    def count(ipc_dir: str, calls: int) -> int:
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             "-m", "bench.roundtrip", "--drive", str(calls), ipc_dir],
            env=env, capture_output=True, text=True, check=True)
        return int(re.findall(r"Collected : (\d+)", done.stderr)[-1])

    def both(ipc_dir: str) -> dict[str, float]:
        first, second = count(ipc_dir, n1), count(ipc_dir, n2)
        return {"n1": n1, "n2": n2, "instructions_per_call": (second - first) / (n2 - n1)}

    return _with_peer(both)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        serve(argv[1])
        return 0
    if argv[:1] == ["--drive"]:
        print(json.dumps(drive(int(argv[1]), argv[2])))
        return 0
    if argv[:1] == ["--callgrind"]:
        n1, n2 = (int(argv[1]), int(argv[2])) if len(argv) > 2 else (1000, 5000)
        print(json.dumps(callgrind(n1, n2)))
        return 0
    calls = int(argv[0]) if argv else 20000
    print(json.dumps(_with_peer(lambda ipc_dir: drive(calls, ipc_dir))))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main(sys.argv[1:]))
