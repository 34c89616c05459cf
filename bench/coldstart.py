"""Cold start: process spawn to control handshake, and the cost of ``import ekuiper``.

Handshake: a stand-in for eKuiper's control side (a pynng REP listening on
``ipc:///tmp/plugin_<name>.ipc``, PROTOCOL.md "Control channel") is listening before the
plugin is spawned exactly as eKuiper spawns it; the time runs from just before
``Popen`` to the return of ``recv`` with the plugin's first request. The plugin is then
killed (eKuiper stops plugins with SIGKILL). One unmeasured run first writes the .pyc
files, as the kuiperd-started process would have.

Import: ``python -X importtime -c "import ekuiper"`` (the cumulative time of the
``ekuiper`` package, as Python reports it) and the wall time of ``python -c "import
ekuiper"`` minus that of ``python -c "pass"``, medians over many runs.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

import pynng  # type: ignore[import-untyped]

from bench.env import Sdk, plugin_command


def time_to_handshake(sdk: Sdk, folder: Path, timeout_s: float = 15.0) -> float:
    """Seconds from spawning the plugin to receiving its control handshake."""
    url = f"ipc:///tmp/plugin_{sdk.plugin}.ipc"
    with pynng.Rep0(recv_timeout=int(timeout_s * 1000)) as rep:
        rep.listen(url)
        start = time.perf_counter()
        proc = subprocess.Popen(plugin_command(sdk, folder), cwd=folder,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            message = rep.recv()
            elapsed = time.perf_counter() - start
        finally:
            proc.kill()
            proc.wait(10)
    if not message.startswith(b"h"):
        raise RuntimeError(f"{sdk.plugin}: first control request was {message[:40]!r}")
    return elapsed


def handshake_samples(sdk: Sdk, folder: Path, runs: int) -> list[float]:
    time_to_handshake(sdk, folder)  # writes .pyc files; not counted
    return [time_to_handshake(sdk, folder) for _ in range(runs)]


def _wall(python: Path, code: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(python), "-c", code], check=True)
    return time.perf_counter() - start


def import_cost(python: Path, runs: int) -> dict[str, object]:
    """``import ekuiper`` in a fresh interpreter: -X importtime and wall-clock deltas."""
    _wall(python, "import ekuiper")  # warm the page cache and .pyc files
    cumulative_us: list[int] = []
    subtree: list[tuple[str, int, int]] = []  # of the last run: (module, self, cumulative)
    for _ in range(runs):
        err = subprocess.run([str(python), "-X", "importtime", "-c", "import ekuiper"],
                             check=True, capture_output=True, text=True).stderr
        subtree = []
        for line in err.splitlines():
            parts = line.removeprefix("import time:").split("|")
            if len(parts) != 3 or not parts[0].strip().isdigit():
                continue
            name = parts[2].strip()
            if name == "ekuiper":
                cumulative_us.append(int(parts[1]))
                break
            if parts[2].startswith("  ") is False:  # a top-level import before ekuiper's
                subtree = []
                continue
            subtree.append((name, int(parts[0]), int(parts[1])))
    by_name = {name: cum for name, _, cum in subtree}
    heaviest = sorted(subtree, key=lambda m: -m[1])[:10]
    empty = [_wall(python, "pass") for _ in range(runs)]
    full = [_wall(python, "import ekuiper") for _ in range(runs)]
    return {
        "importtime_ms_samples": [us / 1000 for us in cumulative_us],
        "importtime_ms": statistics.median(cumulative_us) / 1000,
        "wall_pass_ms": statistics.median(empty) * 1000,
        "wall_import_ms": statistics.median(full) * 1000,
        "wall_delta_ms": (statistics.median(full) - statistics.median(empty)) * 1000,
        "runs": runs,
        # Where the time goes (last run): modules by their own (self) import time, and
        # the whole of pynng (it imports asyncio).
        "heaviest_self_ms": [[name, round(own / 1000, 1)] for name, own, _ in heaviest],
        "pynng_cumulative_ms": round(by_name.get("pynng", 0) / 1000, 1),
    }
