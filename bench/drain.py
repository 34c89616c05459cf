"""Drain process for bench/micro.py: a pynng Pull0 listening on URL, reading as fast as it
can until an ``END`` frame (or 5 s of silence); prints how many frames it read.

    python bench/drain.py URL
"""

from __future__ import annotations

import sys

import pynng  # type: ignore[import-untyped]


def main(url: str) -> int:
    frames = 0
    with pynng.Pull0(recv_timeout=5000) as sock:
        sock.listen(url)
        print("listening", flush=True)
        recv = sock.recv
        try:
            while recv() != b"END":
                frames += 1
        except pynng.Timeout:
            pass
    print(frames, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
