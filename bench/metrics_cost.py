"""What per-symbol metrics cost: this SDK with EKUIPER_PLUGIN_METRICS_DIR set vs unset.

Three measurements, each a ratio of metrics on to metrics off taken in the same run:

- ``kuiperd``: the ``source``, ``function`` and ``sink_single_noack`` rate cases
  (bench/kuiperbench.py), and ``function`` and the sink again with their poll off
  (``function_nopoll``, ``sink_nopoll``; see report.METRICS_CASES), each in one kuiperd
  that runs the bench plugin twice, metrics off and on (see :func:`kuiperd`),
  alternating (off, on, on, off, ...): the plugin process's CPU per row
  (``plugin_us_per_item``) and the rate.
  The paired ratios' median is the figure; a pair during which other processes kept
  more than DISTURBED_CORES busy is set aside (kept under ``disturbed``) and taken again.
- ``instructions``: the same paths under callgrind (when valgrind is installed):
  instructions per row, which the machine's load does not move.
- ``inprocess``: the three row paths in one process, no sockets (a channel that drops
  what it is sent), metrics off and on alternating in rounds, CPU time per row: source
  ``ctx.emit`` of the bench row; sink: its message loop (``SinkRuntime._receive``, which
  metrics replace) over a batch of BATCH messages; function: its request loop
  (``FunctionRuntime._serve``, which metrics replace) over a batch of BATCH ``revert``
  requests. ``added_ns`` is what
  metrics add per row; the paths here cost less than in a plugin (no socket), so the
  share of it is an upper bound of the share in a plugin.

Target: metrics on adds under 5 % to the plugin's CPU per row (``ratio`` < 1.05).

    python -m bench.metrics_cost [--reps N] [--quick]   # writes results/<date>-metrics.json
    python -m bench.metrics_cost --inprocess-only       # results/<date>-metrics-inprocess.json

``make bench`` runs it as one of its cases (results["metrics_cost"]).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.env import BENCH, REPO, WORK, Sdk, lay_out_plugin, log
from bench.kuiperbench import BenchKuiperd, QuietGate
from bench.report import METRICS_CASES
from ekuiper.errors import ChannelClosedError

# What tells the bench plugin named in the first to turn metrics on, in the second's
# directory (bench/pyplugin/benchmain.py).
BENCH_METRICS_PLUGIN_ENV = "BENCH_METRICS_PLUGIN"
BENCH_METRICS_DIR_ENV = "BENCH_METRICS_DIR"
CASES = tuple(METRICS_CASES)
# Other processes' busy cores during a sample above which its pair is taken again: on two
# cores, kuiperd and the plugin already keep some 1.8 busy, so anything more slows both
# sides of the round trip by an amount that has nothing to do with metrics.
DISTURBED_CORES = 0.15
RESULTS = BENCH / "results"
TARGET_RATIO = 1.05
# Messages or requests the sink and function paths take per call (one pass of their loop
# each); the per-row figures divide by it.
BATCH = 100


# -- in-process ---------------------------------------------------------------------------

class _Drop:
    """A channel that takes every frame and drops it."""

    def send(self, data: bytes) -> None:
        pass

    def recv(self) -> bytes:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


def _rows_per_call(name: str) -> int:
    return 1 if name == "source" else BATCH


def _paths(metrics: bool) -> dict[str, Callable[[], object]]:
    """One call of each row path (_rows_per_call rows), metrics on or off, as the runtimes
    build them."""
    from ekuiper import Context, Function, Sink
    from ekuiper._kinds import FUNCTION, SINK, SOURCE
    from ekuiper._logging import symbol_logger
    from ekuiper._metrics import SymbolStats
    from ekuiper._protocol import Control, Meta
    from ekuiper._runtime.context import SymbolContext
    from ekuiper._runtime.function import FunctionRuntime
    from ekuiper._runtime.instrument import instrument
    from ekuiper._runtime.sink import SinkRuntime

    class Quiet(Sink):
        def collect(self, ctx: Context, data: Any) -> None:
            pass

    class Revert(Function):
        def exec(self, args: list[Any], ctx: Context) -> Any:
            return str(args[0])[::-1]

    meta = Meta("r", "op", 0)
    logger = symbol_logger("bench", None)
    paths: dict[str, Callable[[], object]] = {}

    source_ctx = SymbolContext(SOURCE.noun, "src", meta, logger)
    source_ctx.attach_emitter(_Drop())
    if metrics:
        class SourceLike:
            control = Control("src", SOURCE.wire, meta)
            ctx = source_ctx
            channel = _Drop()
            stats = SymbolStats({"kind": "source"})
        instrument(SourceLike())
    row = {"name": "benchmark", "value": 42}
    paths["source"] = lambda: source_ctx.emit(row, None)

    sink = SinkRuntime(Control("snk", SINK.wire, meta), Quiet(),
                       None, 1000, logger)  # type: ignore[arg-type]
    sink.acks = _Drop()
    messages = _Batches(b'[{"name":"benchmark","value":42}]')
    sink.data = messages  # type: ignore[assignment]
    if metrics:
        sink.stats = SymbolStats({"kind": "sink"})
        instrument(sink)
    paths["sink"] = messages.batch_of(lambda: sink._receive(None))

    function = FunctionRuntime(Control("revert", FUNCTION.wire, Meta("", "", 0)), Revert(),
                               "bench", None, logger)  # type: ignore[arg-type]
    function.channel = _Drop()
    if metrics:
        function.stats = SymbolStats({"kind": "function", "rule": ""})
        instrument(function)
    request = json.dumps({"func": "Exec", "arg": [
        "benchmark", json.dumps({"ruleId": "r", "opId": "op", "instanceId": 0,
                                 "funcId": 0})]}).encode()
    requests = _Batches(request)
    paths["function"] = requests.batch_of(lambda: function._serve(requests))
    return paths


class _Batches:
    """A channel that hands out one frame ``left`` times, then is closed; what it is
    sent it drops."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.left = 0

    def batch_of(self, loop: Callable[[], None]) -> Callable[[], None]:
        """``loop`` (a runtime's loop over this channel) run for BATCH frames."""
        def one_batch() -> None:
            self.left = BATCH
            try:
                loop()
            except ChannelClosedError:
                pass  # the function's loop ends so; the sink's returns
        return one_batch

    def recv(self) -> bytes:
        if not self.left:
            raise ChannelClosedError("batch served")
        self.left -= 1
        return self.frame

    def send(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def inprocess(rounds: int = 7, calls: int = 50_000) -> dict[str, Any]:
    """CPU ns per row of each path, metrics off and on, alternating rounds (median)."""
    off, on = _paths(False), _paths(True)
    out: dict[str, Any] = {}
    for name in off:
        samples: dict[str, list[float]] = {"off": [], "on": []}
        per_call = _rows_per_call(name)
        for fn in (off[name], on[name]):
            for _ in range(calls // 10 // per_call):
                fn()
        for round_ in range(rounds):
            order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
            for which in order:
                fn = (off if which == "off" else on)[name]
                gc.collect()
                start = time.process_time_ns()
                for _ in range(calls // per_call):
                    fn()
                samples[which].append((time.process_time_ns() - start) / calls)
        off_ns, on_ns = statistics.median(samples["off"]), statistics.median(samples["on"])
        out[name] = {"off_ns": round(off_ns, 1), "on_ns": round(on_ns, 1),
                     "added_ns": round(on_ns - off_ns, 1), "ratio": round(on_ns / off_ns, 4),
                     "samples": samples}
    return out


def _run_path(name: str, metrics: bool, calls: int) -> None:
    fn = _paths(metrics)[name]
    for _ in range(calls // _rows_per_call(name)):
        fn()


def instructions(calls: int = 5_000) -> dict[str, Any] | None:
    """Instructions per row of each path, metrics off and on, under callgrind.

    Instruction counts do not move with the machine's load, as CPU time does. Each count
    is (run with ``calls`` rows) - (run with none), so start-up is left out (hash seed fixed,
everything byte-compiled first, so both runs start alike). None when
    valgrind is not installed.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"}
    # Byte-compile first: a run that writes .pyc files would count the compiler too.
    subprocess.run([sys.executable, "-c",
                    "import bench.metrics_cost as m; m._paths(True)"],
                   cwd=REPO, env=env, check=True)
    out: dict[str, Any] = {}
    for name in ("source", "sink", "function"):
        per_row = {}
        for which in ("off", "on"):
            totals = []
            for n in (0, calls):
                code = (f"from bench.metrics_cost import _run_path; "
                        f"_run_path({name!r}, {which == 'on'}, {n})")
                with tempfile.TemporaryDirectory() as tmp:
                    done = subprocess.run(
                        [valgrind, "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
                         sys.executable, "-c", code], cwd=REPO, capture_output=True,
                        text=True, env=env)
                    if done.returncode != 0:
                        raise RuntimeError(f"callgrind failed: {done.stderr[-2000:]}")
                    summary = [line for line in Path(f"{tmp}/cg.out").read_text().splitlines()
                               if line.startswith("summary:") or line.startswith("totals:")]
                totals.append(int(summary[-1].split()[1]))
            per_row[which] = (totals[1] - totals[0]) / calls
        out[name] = {"off_ir": round(per_row["off"]), "on_ir": round(per_row["on"]),
                     "added_ir": round(per_row["on"] - per_row["off"]),
                     "ratio": round(per_row["on"] / per_row["off"], 4)}
    return out


# -- kuiperd ------------------------------------------------------------------------------

def kuiperd(dist: Path, reps: int, warmup: float, window: float,
            gate: QuietGate | None = None,
            cases: tuple[str, ...] = CASES) -> dict[str, Any]:
    """Plugin CPU per row and rate of each case, metrics off/on in one kuiperd per case.

    The bench plugin runs twice in that kuiperd: ``benchpy`` without metrics and its twin
    ``benchpym`` with them (BENCH_METRICS_PLUGIN, see bench/pyplugin/benchmain.py), so a
    pair differs only in metrics: a fresh kuiperd per sample let kuiperd's own start-to-
    start spread (some 12% of a function's rate) into the pairs.
    """
    python = Path(sys.executable)
    off_sdk = Sdk("py", "this SDK, metrics off", "benchpy", python)
    on_sdk = Sdk("pym", "this SDK, metrics on", "benchpym", python)
    off_folder = lay_out_plugin(off_sdk, WORK / "metrics-plugins")
    on_folder = lay_out_plugin(on_sdk, WORK / "metrics-plugins")
    gate = gate or QuietGate()
    out: dict[str, Any] = {}
    for case in cases:
        rate_case, case_env = METRICS_CASES[case]
        pairs: list[dict[str, Any]] = []
        disturbed: list[dict[str, Any]] = []  # set aside, at most reps; then taken as they come
        directory = tempfile.mkdtemp(prefix="ekb-")
        env = {**case_env, BENCH_METRICS_PLUGIN_ENV: on_sdk.plugin,
               BENCH_METRICS_DIR_ENV: directory}
        off = BenchKuiperd(off_sdk, WORK / "homes" / "metrics", dist, off_folder, env=env)
        benches = {"off": off, "on": off.sibling(on_sdk, on_folder)}
        try:
            off.start()
            benches["on"].attach()
            if not (Path(directory) / f"{on_sdk.plugin}.sock").exists() or \
                    (Path(directory) / f"{off_sdk.plugin}.sock").exists():
                raise RuntimeError(f"metrics are not on in {on_sdk.plugin} alone: "
                                   f"{sorted(os.listdir(directory))}")
            rep = 0
            while len(pairs) < reps:
                pair: dict[str, Any] = {}
                for which in (("off", "on") if rep % 2 == 0 else ("on", "off")):
                    gate.wait()
                    sample = benches[which].rate(
                        rate_case, f"bench_metrics_{case}_{which}_{rep}", warmup, window)
                    pair[which] = sample.as_dict()
                    log(f"  {case} metrics {which}: {sample.rate:,.0f}/s, plugin "
                        f"{sample.plugin_us_per_item:.2f} CPU-us/row, other load "
                        f"{sample.other_cores:.2f} cores")
                rep += 1
                if max(p["other_cores"] for p in pair.values()) > DISTURBED_CORES \
                        and len(disturbed) < reps:
                    log(f"  {case}: other processes busy during the pair; taking it again")
                    disturbed.append(pair)
                else:
                    pairs.append(pair)
        finally:
            off.stop()
            shutil.rmtree(directory, ignore_errors=True)
        ratios = [p["on"]["plugin_us_per_item"] / p["off"]["plugin_us_per_item"]
                  for p in pairs if p["off"]["plugin_us_per_item"]]
        rates = [p["on"]["rate"] / p["off"]["rate"] for p in pairs if p["off"]["rate"]]
        out[case] = {
            "cpu_us_per_row_off": statistics.median(
                p["off"]["plugin_us_per_item"] for p in pairs),
            "cpu_us_per_row_on": statistics.median(p["on"]["plugin_us_per_item"] for p in pairs),
            "cpu_ratio": statistics.median(ratios) if ratios else None,
            "cpu_ratio_range": [min(ratios), max(ratios)] if ratios else None,
            "rate_ratio": statistics.median(rates) if rates else None,
            "pairs": pairs, "disturbed": disturbed}
    return out


def measure(dist: Path, reps: int = 3, warmup: float = 2.0, window: float = 5.0,
            gate: QuietGate | None = None, callgrind: bool = True,
            cases: tuple[str, ...] = CASES) -> dict[str, Any]:
    results: dict[str, Any] = {"target_ratio": TARGET_RATIO}
    log("metrics cost: in-process row paths, metrics off vs on")
    results["inprocess"] = inprocess()
    for name, figures in results["inprocess"].items():
        log(f"  {name}: +{figures['added_ns']:.0f} ns/row ({figures['off_ns']:.0f} -> "
            f"{figures['on_ns']:.0f} ns)")
    if callgrind:
        log("metrics cost: instructions per row under callgrind")
        results["instructions"] = instructions()
    log("metrics cost: kuiperd source, function and sink cases, metrics off vs on")
    results["kuiperd"] = kuiperd(dist, reps, warmup, window, gate, cases)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, help="off/on pairs per case (default 3; 1 quick)")
    parser.add_argument("--quick", action="store_true",
                        help="1 pair, 1 s warm-up, 3 s window, no callgrind")
    parser.add_argument("--case", action="append", choices=CASES,
                        help="only this kuiperd case (repeatable)")
    parser.add_argument("--inprocess-only", action="store_true", help="skip the kuiperd part")
    args = parser.parse_args(argv)
    from tests.e2e.kuiper import DEFAULT_VERSION, kuiperd_dist

    started = time.monotonic()
    if args.inprocess_only:
        results: dict[str, Any] = {"target_ratio": TARGET_RATIO, "inprocess": inprocess(),
                                   "instructions": instructions()}
    else:
        warmup, window = (1.0, 3.0) if args.quick else (2.0, 5.0)
        reps = args.reps or (1 if args.quick else 3)
        results = measure(kuiperd_dist(DEFAULT_VERSION), reps, warmup, window,
                          callgrind=not args.quick, cases=tuple(args.case or CASES))
    results.update(date=dt.date.today().isoformat(), duration_s=time.monotonic() - started,
                   loadavg_end=os.getloadavg(), cores=os.cpu_count())
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / (f"{results['date']}-metrics"
                     f"{'-inprocess' if args.inprocess_only else ''}.json")
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("kuiperd",)}
                     | {"kuiperd": {c: {k: v for k, v in f.items() if k != "pairs"}
                                    for c, f in results.get("kuiperd", {}).items()}},
                     indent=1, default=str))
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
