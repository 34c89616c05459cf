"""Benchmarks of this SDK against the official ``ekuiper==2.4.2`` and eKuiper's Go SDK.

``make bench`` (= ``.venv/bin/python -m bench.run``) measures, in one run and on the
same kuiperd (v2.4.2; EKUIPER_VERSION picks another), each figure for all three SDKs and
reports it as a ratio to the baselines measured in the same run:

1. source rate: a source emitting one small row as fast as it can, rule
   ``SELECT * FROM s`` -> ``nop``; rows/s of ``source_<stream>_0_records_in_total``;
2. function rate: ``SELECT benchrevert_<sdk>(name) AS r FROM bsim`` where ``bsim`` is
   eKuiper's built-in ``simulator`` source (one row per 1 µs tick; its own rate into
   ``nop`` is measured too, to show it is far above the function's); calls/s of
   ``op_2_project_0_records_in_total``;
3. sink rate: ``SELECT * FROM bsim`` into the plugin sink, sendSingle true/false x
   requireAck true/false; rows/s of ``sink_<sink>_0_0_records_out_total`` (the Go SDK
   sends no acks, so it has only the two requireAck=false cases);
4. cold start: spawn -> control handshake against a stand-in REP socket, and the cost
   of ``import ekuiper`` (bench/coldstart.py);
5. idle cost: RSS, CPU time and wakeups of each plugin process with one idle source
   running, all three at once for 30 s;
6. an emit microbench without kuiperd (bench/micro.py), this SDK (both transports), the
   official SDK, and raw sends of a pre-encoded frame (the floors: pynng, plain socket);
7. scaling (bench/scaling.py) and 8. the cost of per-symbol metrics, on vs off
   (bench/metrics_cost.py);

then profiles this SDK's plugin process with py-spy under the source, sink and function
loads. Each rate is a fixed window (5 s) after a warm-up (2 s), repeated 3 times with the
SDK order rotated per repetition (so drift hits every SDK alike); results keep every
sample, the median, min and max.

Each SDK runs in its own kuiperd, because ``portable.pythonBin`` is one setting per
kuiperd: ours with this repo's .venv python, the official one with the python of
bench/.work/official; the Go plugin gets a third. Plugin, symbol and rule names
(``bench*``) differ per SDK, so the three kuiperds never share an IPC path under /tmp,
and no test uses them.

Writes bench/results/<date>.json, bench/results/<date>.png, the raw profiles under
bench/results/<date>-profiles/, and the results section of bench/README.md.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any, Callable, TypeVar

from bench import coldstart, metrics_cost, profiling, report, scaling
from bench.env import (
    BENCH,
    FLOORPLUGIN,
    OFFICIAL_PACKAGE,
    REPO,
    TOOLS_PACKAGES,
    WORK,
    FloorUnavailable,
    GoUnavailable,
    Sdk,
    build_floor_plugin,
    build_go_plugin,
    ensure_venv,
    lay_out_plugin,
    log,
    pip_version,
)
from bench.kuiperbench import BenchKuiperd, QuietGate, RateSample, measure_idle
from tests.e2e.kuiper import DEFAULT_VERSION as KUIPERD_VERSION
from tests.e2e.kuiper import kuiperd_dist

RESULTS = BENCH / "results"
README = BENCH / "README.md"
START_MARK = "<!-- bench:results:start -->"
END_MARK = "<!-- bench:results:end -->"
RATE_CASES = list(report.CASES)
T = TypeVar("T")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--metrics-reps", type=int, default=6,
                        help="off/on pairs per case of the metrics cost, whose 5%% target "
                             "needs more pairs than a rate's spread allows with --reps")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before a window")
    parser.add_argument("--window", type=float, default=5.0, help="seconds counted per rate")
    parser.add_argument("--idle", type=float, default=30.0, help="idle window, seconds")
    parser.add_argument("--handshake-runs", type=int, default=10)
    parser.add_argument("--import-runs", type=int, default=10)
    parser.add_argument("--micro-seconds", type=float, default=2.0)
    parser.add_argument("--profile-seconds", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true",
                        help="1 rep, short windows: checks the harness, not for results")
    parser.add_argument("--no-readme", action="store_true", help="leave bench/README.md alone")
    parser.add_argument("--render", metavar="JSON", type=Path,
                        help="measure nothing: redo the PNG and README section of a results file")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.warmup, args.window, args.idle = 1, 0.5, 1.0, 3.0
        args.handshake_runs = args.import_runs = 3
        args.micro_seconds = args.profile_seconds = 1.0
        args.no_readme = True
    return args


class Run:
    """Collects results and errors; an error in one measurement does not end the run."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def attempt(self, what: str, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except Exception as exc:
            log(f"FAILED {what}: {exc}")
            self.errors.append(f"{what}: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            return None


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine_info() -> dict[str, Any]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gb": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_start": os.getloadavg()}


def sdk_info(sdk: Sdk) -> dict[str, Any]:
    info: dict[str, Any] = {"label": sdk.label, "plugin": sdk.plugin,
                            "symbols": [sdk.source, sdk.idle_source, sdk.sink, sdk.function]}
    if sdk.python is not None:
        # Relative to the checkout: results name no machine's paths.
        python = sdk.python.absolute()
        info["python"] = (str(python.relative_to(REPO)) if python.is_relative_to(REPO)
                          else python.name)
        info["pynng"] = pip_version(sdk.python, "pynng")
    return info


def micro_once(variant: str, python: Path, seconds: float) -> float:
    return float(micro_sample(variant, python, seconds)["rate"])


def micro_sample(variant: str, python: Path, seconds: float) -> dict[str, Any]:
    """One run of bench/micro.py against a fresh drain: its JSON (rate, CPU per emit)."""
    url = f"ipc:///tmp/bench_micro_{variant}_op_0.ipc"
    drain = subprocess.Popen([sys.executable, str(BENCH / "drain.py"), url],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert drain.stdout is not None
        drain.stdout.readline()  # "listening"
        out = subprocess.run([str(python), str(BENCH / "micro.py"), variant, url, str(seconds)],
                             check=True, capture_output=True, text=True, timeout=60).stdout
    finally:
        try:
            drain.wait(15)
        except subprocess.TimeoutExpired:
            drain.kill()
            drain.wait()
    return dict(json.loads(out))


def numpy_interleave(python: Path, seconds: float) -> dict[str, Any]:
    """bench/micro.py's numpy pairs, interleaved in one process: ratios of time per emit."""
    out = subprocess.run([str(python), "-m", "bench.micro", "interleave", str(seconds)],
                         cwd=REPO, check=True, capture_output=True, text=True,
                         timeout=60 + 4 * seconds).stdout
    return dict(json.loads(out))


def profile_case(bench: BenchKuiperd, case: str, py_spy: Path, seconds: float,
                 out_dir: Path) -> dict[str, Any]:
    """Profiles of the plugin process under one load: all samples, and GIL holders."""
    sql, actions, metric = bench.case_rule(case)
    active, gil = out_dir / f"{case}.txt", out_dir / f"{case}-gil.txt"
    with bench.running_rule(f"bench_{bench.sdk.tag}_prof_{case}", sql, actions, metric):
        time.sleep(1.0)
        profiling.record(py_spy, bench.plugin_pid(), seconds, active)
        profiling.record(py_spy, bench.plugin_pid(), seconds, gil, gil=True)
    return {"active": profiling.summarize(active), "gil": profiling.summarize(gil)}


def _rate(bench: BenchKuiperd, case: str, rule_id: str, warmup: float,
          window: float) -> RateSample:
    return bench.rate(case, rule_id, warmup, window)


def cleanup_sockets(sdks: list[Sdk]) -> None:
    """Remove the IPC files of our own names that stopped kuiperds leave in /tmp."""
    tmp = Path("/tmp")
    names = [tmp / f"plugin_{s.plugin}.ipc" for s in sdks]
    names += [tmp / f"func_{s.function}.ipc" for s in sdks]
    names += list(tmp.glob("bench_*.ipc"))
    for path in names:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def update_readme(text: str) -> None:
    report.replace_section(README, START_MARK, END_MARK, text)


def publish(out: Path, tools_python: Path, run: Run, readme: bool) -> None:
    """The PNG next to a results JSON, and (``readme``) the results section of README."""
    results = json.loads(out.read_text())
    stem = out.stem
    png = out.with_suffix(".png")
    run.attempt("plot", partial(
        subprocess.run, [str(tools_python), "-m", "bench.plot", str(out), str(png)], cwd=REPO,
        check=True, capture_output=True, text=True))
    summary = report.markdown(results)
    profiles = report.profiles_markdown(results["profiles"])
    errors = results.get("errors", [])
    if readme:
        update_readme(
            f"{summary}\n\n![rates](results/{png.name})\n\n"
            f"Profiles of this SDK's plugin process (py-spy; raw stacks in "
            f"`results/{stem}-profiles/`):\n{profiles}\n\n"
            f"Raw samples, machine and SDK details: [`results/{out.name}`](results/{out.name})."
            + (f"\n\nErrors during the run: {len(errors)} (see the JSON)." if errors else ""))
    print(summary)
    print(profiles)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = Run()
    if args.render:
        publish(args.render.resolve(), ensure_venv(WORK / "tools", TOOLS_PACKAGES), run,
                readme=not args.no_readme)
        return 1 if run.errors else 0
    # Compare installed-like SDKs: the official one was byte-compiled by pip; this one is
    # an editable checkout, so compile it here and let plugin processes use the .pyc files
    # (a PYTHONDONTWRITEBYTECODE in the caller's environment would make them recompile
    # the SDK on every start and skew the cold-start figures).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(REPO / "sdk" / "src"), quiet=1)
    started = time.monotonic()
    date = dt.date.today().isoformat()
    stem = f"{date}-quick" if args.quick else date
    results: dict[str, Any] = {
        "date": date, "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {"reps": args.reps, "warmup_s": args.warmup, "window_s": args.window,
                   "idle_s": args.idle, "handshake_runs": args.handshake_runs,
                   "import_runs": args.import_runs, "micro_s": args.micro_seconds,
                   "profile_s": args.profile_seconds, "quick": args.quick,
                   "rule_options": {"disableBufferFullDiscard": True},
                   "simulator": {"interval": "1us", "data": [{"name": "benchmark"}]}},
        "rates": {}, "raw_rates": {}, "simulator": {}, "cold_start": {}, "import": {},
        "idle": {}, "micro": {}, "profiles": {}, "plugin_cpu_us_per_item": {},
    }

    # -- what runs ------------------------------------------------------------------------
    dist = kuiperd_dist(KUIPERD_VERSION)
    results["kuiperd"] = KUIPERD_VERSION
    official_python = ensure_venv(WORK / "official", (OFFICIAL_PACKAGE,))
    tools_python = ensure_venv(WORK / "tools", TOOLS_PACKAGES)
    ours = Sdk("py", "this SDK", "benchpy", Path(sys.executable))
    official = Sdk("official", f"official {OFFICIAL_PACKAGE.split('==')[1]}", "benchofficial",
                   official_python)
    sdks = [ours, official]
    go_binary: Path | None = None
    try:
        log("building the Go plugin")
        build = build_go_plugin()
        go_binary = build.binary
        sdks.append(Sdk("go", "Go SDK (eKuiper v2.4.0)", "benchgo", None))
        results["go"] = {"available": True, "sdk_version": build.sdk_version,
                         "sdk_source": build.sdk_source, "go": build.go_version}
    except GoUnavailable as exc:
        log(f"Go baseline skipped: {exc}")
        results["go"] = {"available": False, "reason": str(exc)}
    results["sdks"] = {s.tag: sdk_info(s) for s in sdks}
    import ekuiper

    results["sdks"]["py"].update(
        version=ekuiper.__version__, git_commit=git("rev-parse", "HEAD").strip(),
        sdk_uncommitted_changes=git("status", "--porcelain", "--", "sdk").splitlines())
    results["sdks"]["official"]["version"] = pip_version(official_python, "ekuiper")
    folders = {s.tag: lay_out_plugin(s, WORK / "plugins", go_binary) for s in sdks}
    # The function case's floor: a C plugin answering every call from a constant
    # (bench/floorplugin/floor.c), the nearest a plugin gets to costing nothing.
    # Its Python twin (floor.py) tells the interpreter's share from the SDK's.
    floor: Sdk | None = None
    pyfloor = Sdk("pyfloor", "floor plugin (Python, raw sockets, constant answers)",
                  "benchpyfloor", ours.python)
    try:
        floor_binary = build_floor_plugin()
        floor = Sdk("floor", "floor plugin (C, constant answers)", "benchfloor", None)
        folders[floor.tag] = lay_out_plugin(floor, WORK / "plugins", program=floor_binary)
        folders[pyfloor.tag] = lay_out_plugin(pyfloor, WORK / "plugins",
                                              program=FLOORPLUGIN / "floor.py")
    except FloorUnavailable as exc:
        log(f"function floor skipped: {exc}")
        results["function_floor"] = {"available": False, "reason": str(exc)}
    every_sdk = [*sdks, *([floor, pyfloor] if floor else [])]
    cleanup_sockets(every_sdk)

    # -- 4. cold start (before any kuiperd holds the control sockets) ---------------------
    for sdk in sdks:
        log(f"cold start: {sdk.plugin}")
        samples = run.attempt(f"cold start {sdk.tag}", partial(
            coldstart.handshake_samples, sdk, folders[sdk.tag], args.handshake_runs))
        if samples:
            results["cold_start"][sdk.tag] = report.series([x * 1000 for x in samples])
        if sdk.python is not None:
            cost = run.attempt(f"import {sdk.tag}",
                               partial(coldstart.import_cost, sdk.python, args.import_runs))
            if cost:
                results["import"][sdk.tag] = cost

    # -- 6. microbench ---------------------------------------------------------------------
    # name -> (micro.py variant, interpreter); raw_official: the floor with the official
    # venv's pynng, to tell the SDK's cost from the pynng version's.
    variants = {"raw": ("raw", ours.python), "sdk": ("sdk", ours.python),
                "sdk_pynng": ("sdk_pynng", ours.python),
                "official": ("official", official_python),
                "raw_official": ("raw", official_python),
                "raw_socket": ("raw_socket", ours.python),
                "sdk_encode": ("sdk_encode", ours.python)}
    micro: dict[str, list[float]] = {v: [] for v in variants}
    for rep in range(args.reps):
        names = list(variants)
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            log(f"microbench rep {rep + 1}/{args.reps}: {name}")
            variant, python = variants[name]
            assert python is not None
            rate = run.attempt(f"micro {name}",
                               partial(micro_once, variant, python, args.micro_seconds))
            if rate:
                micro[name].append(rate)
    results["micro"] = {v: report.series(s) for v, s in micro.items() if s}
    # A row with a 100-float numpy array: as it is with the SDK's encoder, against the
    # standard library's after .tolist(); both in one process, in alternating blocks.
    numpy_runs: list[dict[str, Any]] = []
    for rep in range(args.reps):
        log(f"microbench rep {rep + 1}/{args.reps}: numpy row, interleaved")
        assert ours.python is not None
        pair = run.attempt("micro numpy", partial(numpy_interleave, ours.python,
                                                  args.micro_seconds))
        if pair:
            numpy_runs.append(pair)
    results["micro_numpy"] = report.numpy_series(numpy_runs)

    # -- 5. idle cost: fresh kuiperds and plugin processes, all three at once ------------
    benches: list[BenchKuiperd] = []
    try:
        for sdk in sdks:
            log(f"starting kuiperd for {sdk.label}")
            bench = BenchKuiperd(sdk, WORK / "homes" / sdk.tag, dist, folders[sdk.tag])
            benches.append(bench)
            bench.start()
        version = benches[0].k.get("/").body
        results["machine"]["kuiperd"] = version if isinstance(version, dict) else str(version)
        log(f"idle: {args.idle:g} s with one idle source per SDK")
        idle = run.attempt("idle", partial(measure_idle, benches, args.idle))
        if idle:
            results["idle"] = idle
    finally:
        for bench in benches:
            run.attempt(f"stop kuiperd {bench.sdk.tag}", bench.stop)
        cleanup_sockets(every_sdk)

    # Every measurement below gets a kuiperd of its own (fresh home, fresh plugin
    # process), started once the machine is quiet: no state carries over between cases,
    # and a baseline that mishandles a stop cannot spoil the next case.
    gate = QuietGate()

    def on_fresh_kuiperd(sdk: Sdk, what: str, fn: Callable[[BenchKuiperd], T],
                         env: dict[str, str] | None = None) -> tuple[T | None, float]:
        waited = gate.wait()
        bench = BenchKuiperd(sdk, WORK / "homes" / sdk.tag, dist, folders[sdk.tag], env)
        try:
            bench.start()
            return run.attempt(what, partial(fn, bench)), waited
        except Exception as exc:
            run.errors.append(f"{what}: kuiperd: {type(exc).__name__}: {exc}")
            log(f"FAILED {what}: kuiperd: {exc}")
            return None, waited
        finally:
            run.attempt(f"stop kuiperd after {what}", bench.stop)
            cleanup_sockets(every_sdk)

    # -- upstream of the function and sink cases -------------------------------------------
    for sdk in sdks:
        log(f"simulator upstream rate, {sdk.tag} kuiperd")
        sample, _ = on_fresh_kuiperd(sdk, f"simulator {sdk.tag}", lambda b: b.rate(
            "simulator", f"bench_{b.sdk.tag}_sim", args.warmup, args.window / 2))
        if sample:
            results["simulator"][sdk.tag] = report.series([sample.rate])

    # -- 1-3. rates, SDK order rotated per repetition --------------------------------------
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {c: {} for c in RATE_CASES}
    for rep in range(args.reps):
        for sdk in sdks[rep % len(sdks):] + sdks[:rep % len(sdks)]:
            for case in RATE_CASES:
                if case in report.SINK_CASES and report.SINK_CASES[case][1] and not sdk.acks:
                    continue
                rule_id = f"bench_{sdk.tag}_{case}_{rep}"
                log(f"rep {rep + 1}/{args.reps} {sdk.tag:8} {case}")
                sample, waited = on_fresh_kuiperd(sdk, rule_id, partial(
                    _rate, case=case, rule_id=rule_id, warmup=args.warmup,
                    window=args.window))
                if sample:
                    sample.waited_s = waited
                    log(f"    {sample.rate:,.0f}/s; plugin {sample.plugin_us_per_item:.1f} "
                        f"CPU-us/item; other load {sample.other_cores:.2f} cores"
                        + (f"; waited {waited:.1f} s for quiet" if waited > 1 else ""))
                    raw[case].setdefault(sdk.tag, []).append(sample.as_dict())
    results["raw_rates"] = raw
    results["rates"] = {
        case: {tag: report.series([s["rate"] for s in samples])
               for tag, samples in by_sdk.items()}
        for case, by_sdk in raw.items()}
    results["plugin_cpu_us_per_item"] = {
        case: {tag: report.series([s["plugin_us_per_item"] for s in samples])
               for tag, samples in by_sdk.items()}
        for case, by_sdk in raw.items()}

    # -- the function case against its floor: fresh kuiperds, the order alternating -------
    if floor is not None:
        floor_reps: list[dict[str, Any]] = []
        # The floors wait for a call as the SDK does (EKUIPER_FUNCTION_SPIN_US unset);
        # the C floor also runs with that poll off, as a plugin that sleeps in recv.
        plugins: list[tuple[str, Sdk, dict[str, str]]] = [
            (ours.tag, ours, {}), (floor.tag, floor, {}), (pyfloor.tag, pyfloor, {}),
            (report.FLOOR_SLEEPING, floor, {"EKUIPER_FUNCTION_SPIN_US": "0"})]
        for rep in range(args.reps):
            by_sdk: dict[str, Any] = {}
            floor_reps.append(by_sdk)
            turn = rep % len(plugins)
            for tag, sdk, env in plugins[turn:] + plugins[:turn]:
                rule_id = f"bench_{tag}_floorfn_{rep}"
                log(f"function floor rep {rep + 1}/{args.reps}: {tag}")
                sample, _ = on_fresh_kuiperd(sdk, rule_id, partial(
                    _rate, case="function", rule_id=rule_id, warmup=args.warmup,
                    window=args.window), env)
                if sample:
                    log(f"    {sample.rate:,.0f} calls/s; plugin "
                        f"{sample.plugin_us_per_item:.1f} CPU-us/call")
                    by_sdk[tag] = sample.as_dict()
        results["function_floor"] = {"available": True, "label": floor.label,
                                     "python_label": pyfloor.label, "reps": floor_reps}

    # -- profiles of this SDK ----------------------------------------------------------------
    prof_dir = RESULTS / f"{stem}-profiles"
    prof_dir.mkdir(parents=True, exist_ok=True)
    py_spy = tools_python.parent / "py-spy"
    for case in ("source", "sink_single_ack", "sink_single_noack", "function"):
        log(f"profiling this SDK: {case}")
        prof, _ = on_fresh_kuiperd(ours, f"profile {case}", partial(
            profile_case, case=case, py_spy=py_spy, seconds=args.profile_seconds,
            out_dir=prof_dir))
        if prof:
            results["profiles"][case] = prof

    # -- scaling: 1, 10, 50 rules at once through one plugin (bench/scaling.py) -------------
    results["scaling"] = run.attempt("scaling", partial(
        scaling.measure, [ours, official], dist, gate, run.errors, quick=args.quick))
    # -- metrics cost: this SDK with EKUIPER_PLUGIN_METRICS_DIR set vs unset -------------
    results["metrics_cost"] = run.attempt("metrics cost", partial(
        metrics_cost.measure, dist, reps=1 if args.quick else args.metrics_reps,
        warmup=args.warmup, window=args.window, gate=gate))
    results["quiet_gate_budget_left_s"] = gate.budget

    # -- results ----------------------------------------------------------------------------
    results["ratios"] = report.compute_ratios(results["rates"])
    results["targets"] = report.compute_targets(results)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["duration_s"] = time.monotonic() - started
    results["errors"] = run.errors
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stem}.json"
    out.write_text(json.dumps(report.without_urls(results), indent=1) + "\n")
    log(f"wrote {out.relative_to(REPO)}")
    publish(out, tools_python, run, readme=not args.no_readme)
    log(f"done in {results['duration_s'] / 60:.1f} min; {len(run.errors)} error(s)")
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
