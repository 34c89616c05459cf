"""The function case's floor in Python: what any Python plugin pays, and no more.

Raw Unix sockets and nng's SP framing, like bench/floorplugin/floor.c: one function,
benchrevert_pyfloor, every Exec answered with a reply built once, no JSON parsed, one
``send`` and (usually) one ``recv`` per call. Between this and the C floor lies what the
interpreter costs; between this SDK and this floor lies what the SDK costs. It waits for
the next call as the C floor and the SDK do (EKUIPER_FUNCTION_SPIN_US). Not a plugin to
copy: it answers every control command "ok" and knows one symbol.
"""

import os
import socket
import struct
import sys
import threading
import time
from time import perf_counter_ns

PLUGIN, SYMBOL = "benchpyfloor", "benchrevert_pyfloor"
HEAD = struct.Struct(">BQ")
REQUEST_HEAD = struct.Struct(">BQI")
EXEC_REPLY = b'{"state":true,"result":"kramhcneb"}'
VALIDATE_REPLY = b'{"state":true,"result":""}'
AGGREGATE_REPLY = b'{"state":true,"result":false}'


def dial(path: str) -> socket.socket:
    """Connect to eKuiper's REP at ``path`` (it may not listen yet); swap SP headers."""
    for _ in range(600):
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(path)
            break
        except OSError:
            sock.close()
            time.sleep(0.1)
    else:
        sys.exit(f"benchpyfloor: nobody listens on {path}")
    sock.sendall(b"\x00SP\x00\x00\x30\x00\x00")
    recv_exact(sock, 8)
    return sock


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            sys.exit(0)  # eKuiper closed the channel: nothing left to serve
        data += more
    return data


def recv_spinning(sock: socket.socket, spin_ns: int) -> bytes:
    """recv, after polling for up to ``spin_ns`` first (as the SDK's ReqDialer does)."""
    deadline = perf_counter_ns() + spin_ns
    while True:
        try:
            return sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            if perf_counter_ns() > deadline:
                return sock.recv(65536)


def serve_function() -> None:
    sock = dial(f"/tmp/func_{SYMBOL}.ipc")
    recv, send = sock.recv, sock.send
    spin_ns = int(os.environ.get("EKUIPER_FUNCTION_SPIN_US") or 100) * 1000
    request_id, reply, quick = 1, b"handshake", False
    while True:
        send(REQUEST_HEAD.pack(1, len(reply) + 4, request_id | 0x80000000) + reply)
        request_id += 1
        began = perf_counter_ns()
        data = recv_spinning(sock, spin_ns) if quick else recv(65536)
        quick = perf_counter_ns() - began < spin_ns
        if len(data) < 9:
            data += recv_exact(sock, 9 - len(data))
        _, size = HEAD.unpack_from(data)
        while len(data) < 9 + size:
            more = recv(65536)
            if not more:
                sys.exit(0)
            data += more
        call = data[13:]
        if call.startswith(b'{"func":"Exec"'):
            reply = EXEC_REPLY
        elif b'"Validate"' in call:
            reply = VALIDATE_REPLY
        else:
            reply = AGGREGATE_REPLY


def main() -> None:
    control = dial(f"/tmp/plugin_{PLUGIN}.ipc")
    request_id, reply, serving = 1, b"handshake", False
    while True:
        control.sendall(REQUEST_HEAD.pack(1, len(reply) + 4, request_id | 0x80000000) + reply)
        request_id += 1
        _, size = HEAD.unpack(recv_exact(control, 9))
        command = recv_exact(control, size)[4:]
        if not serving and SYMBOL.encode() in command and b"start" in command:
            threading.Thread(target=serve_function, daemon=True).start()
            serving = True
        reply = b"ok"


if __name__ == "__main__":
    main()
