"""Drain process for bench/micro.py: reads frames on URL as fast as it can until an
``END`` frame (or 5 s of silence); prints how many frames it read.

    python bench/drain.py URL

It reads through this SDK's socket PULL (``ekuiper._transport.socket.PullListener``, a few µs per
frame), so the reader is not what caps a sender: a pynng Pull0 reader topped out at
15-18k frames/s, below what the SDK's socket transport sends.
"""

from __future__ import annotations

import sys
import threading

from ekuiper._transport.socket import PullListener


def main(url: str) -> int:
    frames = 0
    sock = PullListener(url[len("ipc://"):], url)
    print("listening", flush=True)
    # Silence for 5 s ends the drain, as the sender may have died.
    watchdog = threading.Timer(5.0, sock.close)
    watchdog.start()
    recv = sock.recv
    try:
        while recv() != b"END":
            frames += 1
            if frames % 4096 == 0:
                watchdog.cancel()
                watchdog = threading.Timer(5.0, sock.close)
                watchdog.start()
    except Exception:  # closed by the watchdog
        pass
    watchdog.cancel()
    sock.close()
    print(frames, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
