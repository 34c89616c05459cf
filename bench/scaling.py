"""How cost grows with work: 1, 10 and 50 rules at once through one plugin.

For this SDK and the official ``ekuiper==2.4.2``, interleaved, each (kind, SDK, rule
count) on a fresh kuiperd (bench/kuiperbench.py ``BenchKuiperd``):

- ``source``: N streams of the bench plugin's source, rule i ``SELECT * FROM s_i`` ->
  ``nop``; rows/s of ``source_<s_i>_0_records_in_total``, summed over the rules;
- ``function``: N rules ``SELECT benchrevert_<sdk>(name) AS r FROM bsim`` -> ``nop``
  (``bsim`` being eKuiper's built-in ``simulator``, one instance per rule); calls/s of
  ``op_2_project_0_records_in_total``, summed.

All N rules run at once; after a warm-up, one fixed window measures: each rule's count
twice (its own timestamps, halfway through each status request), the CPU ticks of the
plugin process(es) and of kuiperd, the machine's busy cores, and VmRSS and thread count
of the plugin process sampled through the window. Running symbols are what kuiperd
logged as started ("started symbol <name>"): one per source rule, but a portable
function is a singleton per symbol in eKuiper (one REQ socket behind a mutex shared by
every rule), so the function case always has one.

The plugins get names of their own (``benchscpy``, ``benchscofficial``) so a scaling
run never shares an IPC path with a ``make bench`` running the other cases.

``make bench`` runs this as one of its cases (results["scaling"] of its JSON);
``python -m bench.scaling`` runs it alone and writes bench/results/<date>-scaling.json
and the scaling section of bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import report
from bench.env import BENCH, OFFICIAL_PACKAGE, REPO, WORK, Sdk, ensure_venv, lay_out_plugin, log
from bench.kuiperbench import (
    CLK_TCK,
    SIM_STREAM,
    BenchKuiperd,
    QuietGate,
    cpu_ticks,
    machine_jiffies,
    proc_sample,
)

KINDS = ("source", "function")
COUNTS = (1, 10, 50)
QUICK_COUNTS = (1, 3)
SCALING = WORK / "scaling"
RESULTS = BENCH / "results"
README = BENCH / "README.md"
START_MARK = "<!-- bench:scaling:start -->"
END_MARK = "<!-- bench:scaling:end -->"
RULE_PREFIX = "bench_sc_"


@dataclass(frozen=True)
class Config:
    kinds: tuple[str, ...] = KINDS
    counts: tuple[int, ...] = COUNTS
    reps: int = 1
    warmup_s: float = 3.0
    window_s: float = 5.0
    sample_every_s: float = 0.5

    @classmethod
    def quick(cls) -> Config:
        return cls(counts=QUICK_COUNTS, warmup_s=0.5, window_s=1.0, sample_every_s=0.25)


# -- pure: the plan and the figures ---------------------------------------------------


def plan(kinds: tuple[str, ...], counts: tuple[int, ...], tags: list[str],
         reps: int) -> list[tuple[int, str, int, str]]:
    """(rep, kind, rules, tag) in run order: every SDK back to back for each (kind, N).

    The SDK order flips from one (kind, N) to the next and from one repetition to the
    next, so a drift in the machine's load hits both SDKs alike.
    """
    steps = []
    index = 0
    for rep in range(reps):
        for kind in kinds:
            for count in counts:
                shift = (index + rep) % len(tags)
                steps += [(rep, kind, count, tag) for tag in tags[shift:] + tags[:shift]]
                index += 1
    return steps


@dataclass
class Readings:
    """What one window read: raw counters only, no derived figures."""

    before: dict[str, tuple[int, float]]  # rule id -> (count, monotonic time)
    after: dict[str, tuple[int, float]]
    cpu_window_s: float  # between the two reads of the CPU ticks
    plugin_ticks: int  # summed over the plugin's processes
    kuiperd_ticks: int
    busy_jiffies: int
    total_jiffies: int
    rss_kb: list[int]  # summed over the plugin's processes, one per sample
    threads: list[int]
    switches: int  # context switches of all the plugin's threads in the window
    plugin_processes: int
    not_running: int
    exceptions: int
    symbols: int
    cores: int
    clk_tck: int = CLK_TCK
    extra: dict[str, Any] = field(default_factory=dict)


def rule_rates(before: dict[str, tuple[int, float]],
               after: dict[str, tuple[int, float]]) -> dict[str, float]:
    """Rows/s of each rule, each over its own pair of timestamps."""
    rates = {}
    for rule, (c1, t1) in after.items():
        c0, t0 = before[rule]
        if t1 <= t0:
            raise ValueError(f"rule {rule}: the second count is not later than the first")
        rates[rule] = (c1 - c0) / (t1 - t0)
    return rates


def figures(r: Readings) -> dict[str, Any]:
    """The figures of one window: total rate, CPU per row, RSS and threads per symbol.

    CPU per row divides the plugin's CPU by the rows the measured rate gives over the
    CPU window (the two windows differ by the time the N status requests take).
    """
    rates = rule_rates(r.before, r.after)
    total = sum(rates.values())
    rows_in_cpu_window = total * r.cpu_window_s
    plugin_s = r.plugin_ticks / r.clk_tck
    kuiperd_s = r.kuiperd_ticks / r.clk_tck
    busy = r.cores * r.busy_jiffies / max(r.total_jiffies, 1)
    ours = (plugin_s + kuiperd_s) / r.cpu_window_s
    symbols = max(r.symbols, 1)
    rss_mb = max(r.rss_kb) / 1024 if r.rss_kb else 0.0
    threads = max(r.threads) if r.threads else 0
    return {
        "rules": len(rates),
        "symbols": r.symbols,
        "rate": total,
        "rule_rate_min": min(rates.values()),
        "rule_rate_max": max(rates.values()),
        "rule_rates": sorted(rates.values()),
        "count": sum(r.after[k][0] - r.before[k][0] for k in rates),
        "cpu_window_s": r.cpu_window_s,
        "plugin_cpu_s": plugin_s,
        "plugin_cores": plugin_s / r.cpu_window_s,
        "plugin_us_per_row": 1e6 * plugin_s / rows_in_cpu_window if rows_in_cpu_window else 0.0,
        "kuiperd_cpu_s": kuiperd_s,
        "kuiperd_cores": kuiperd_s / r.cpu_window_s,
        "kuiperd_us_per_row": (1e6 * kuiperd_s / rows_in_cpu_window
                               if rows_in_cpu_window else 0.0),
        "busy_cores": busy,
        "other_cores": max(0.0, busy - ours),
        "rss_mb": rss_mb,
        "rss_mb_per_symbol": rss_mb / symbols,
        "threads": threads,
        "threads_per_symbol": threads / symbols,
        # A GIL handed between many busy threads shows as switches per row.
        "switches_per_row": r.switches / rows_in_cpu_window if rows_in_cpu_window else 0.0,
        "plugin_processes": r.plugin_processes,
        "not_running": r.not_running,
        "exceptions": r.exceptions,
        **r.extra,
    }


# Figures summarised as median [min-max] over repetitions; the rest as their median.
SERIES = ("rate", "plugin_us_per_row")
MEDIANS = ("symbols", "plugin_cores", "kuiperd_cores", "kuiperd_us_per_row", "other_cores",
           "rss_mb", "rss_mb_per_symbol", "threads", "threads_per_symbol", "rule_rate_min",
           "rule_rate_max", "switches_per_row", "setup_s", "loadavg_1m")


def summarize(samples: dict[str, dict[str, dict[str, list[dict[str, Any]]]]]
              ) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """kind -> tag -> rules -> figures over the repetitions, plus the rate against 1 rule.

    ``vs_first``: total rate over that of the smallest rule count, per repetition pair's
    medians; ``marginal_rss_mb`` and ``marginal_threads``: what each symbol beyond the
    smallest count added.
    """
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for kind, by_tag in samples.items():
        for tag, by_count in by_tag.items():
            rows: dict[str, dict[str, Any]] = {}
            for count, runs in sorted(by_count.items(), key=lambda kv: int(kv[0])):
                if not runs:
                    continue
                row: dict[str, Any] = {k: report.series([s[k] for s in runs]) for k in SERIES}
                for k in MEDIANS:
                    values = [s[k] for s in runs if s.get(k) is not None]
                    if values:
                        row[k] = statistics.median(values)
                rows[count] = row
            if not rows:
                continue
            first = rows[min(rows, key=int)]
            for row in rows.values():
                row["vs_first"] = (row["rate"]["median"] / first["rate"]["median"]
                                   if first["rate"]["median"] else None)
                extra_symbols = row.get("symbols", 0) - first.get("symbols", 0)
                row["marginal_rss_mb"] = ((row["rss_mb"] - first["rss_mb"]) / extra_symbols
                                          if extra_symbols > 0 else None)
                row["marginal_threads"] = ((row["threads"] - first["threads"]) / extra_symbols
                                           if extra_symbols > 0 else None)
            out.setdefault(kind, {})[tag] = rows
    return out


_STARTED = re.compile(r"started symbol (\S+)")


def started_symbols(log_text: str, symbol: str) -> int:
    """How many times kuiperd's log says it started ``symbol`` (one per running instance)."""
    return sum(1 for name in _STARTED.findall(log_text) if name.strip("\"',") == symbol)


# -- I/O: one case on a kuiperd -------------------------------------------------------


def scaling_sdk(sdk: Sdk) -> Sdk:
    """The same SDK under plugin and symbol names no other bench case uses."""
    return Sdk(f"sc{sdk.tag}", sdk.label, f"benchsc{sdk.tag}", sdk.python)


def _read_counts(bench: BenchKuiperd, metrics: dict[str, str]
                 ) -> tuple[dict[str, tuple[int, float]], dict[str, dict[str, Any]]]:
    counts, statuses = {}, {}
    for rule, metric in metrics.items():
        before = time.monotonic()
        status = bench.k.rule_status(rule)
        after = time.monotonic()
        if metric not in status:
            raise RuntimeError(f"rule {rule} has no metric {metric}: {sorted(status)[:40]}")
        counts[rule] = (int(status[metric]), (before + after) / 2)
        statuses[rule] = status
    return counts, statuses


def _rules(bench: BenchKuiperd, kind: str, count: int) -> Iterator[tuple[str, str, str]]:
    """(rule id, sql, metric) of the ``count`` rules of a case."""
    sdk = bench.sdk
    for i in range(count):
        rule = f"{RULE_PREFIX}{sdk.tag}_{kind}_{count}_{i}"
        if kind == "source":
            stream = f"bsc_{sdk.tag}_{i}"
            yield rule, f"SELECT * FROM {stream}", f"source_{stream}_0_records_in_total"
        elif kind == "function":
            yield (rule, f"SELECT {sdk.function}(name) AS r FROM {SIM_STREAM}",
                   "op_2_project_0_records_in_total")
        else:
            raise ValueError(f"unknown scaling kind {kind!r}: use one of {', '.join(KINDS)}")


def run_case(bench: BenchKuiperd, kind: str, count: int, config: Config) -> dict[str, Any]:
    """Start ``count`` rules of ``kind`` at once, warm up, measure one window."""
    sdk = bench.sdk
    assert bench.k.proc is not None
    setup_start = time.monotonic()
    metrics: dict[str, str] = {}
    for rule, sql, metric in _rules(bench, kind, count):
        if kind == "source":
            stream = sql.rsplit(" ", 1)[1]
            bench.k.create_stream(stream, sdk.source, "bench")
        bench.create_rule(rule, sql, [{"nop": {}}])
        metrics[rule] = metric
    deadline = time.monotonic() + 30 + 0.5 * count
    waiting = set(metrics)
    while waiting:
        counts, statuses = _read_counts(bench, {r: metrics[r] for r in waiting})
        waiting = {r for r, (c, _) in counts.items() if c <= 0}
        stuck = [r for r in waiting if str(statuses[r].get("status")) != "running"]
        if stuck or (waiting and time.monotonic() > deadline):
            rule = (stuck or sorted(waiting))[0]
            raise RuntimeError(f"{len(waiting)} of {count} rules produced nothing, e.g. {rule}: "
                               f"{ {k: v for k, v in statuses[rule].items() if 'exception' in k} }")
        if waiting:
            time.sleep(0.1)
    setup_s = time.monotonic() - setup_start
    symbol = sdk.source if kind == "source" else sdk.function
    time.sleep(config.warmup_s)

    pids = bench.k.plugin_pids(sdk.plugin)
    if not pids:
        raise RuntimeError(f"no {sdk.plugin} process is running")
    kuiperd = bench.k.proc.pid
    w0 = time.monotonic()
    p0, k0, (b0, j0) = sum(cpu_ticks(p) for p in pids), cpu_ticks(kuiperd), machine_jiffies()
    before, _ = _read_counts(bench, metrics)
    rss, threads, switches = [], [], []
    end = time.monotonic() + config.window_s
    while True:
        samples = [proc_sample(p) for p in pids]
        rss.append(sum(s.rss_kb for s in samples))
        threads.append(sum(s.threads for s in samples))
        switches.append(sum(s.ctx_switches for s in samples))
        if time.monotonic() >= end:
            break
        time.sleep(min(config.sample_every_s, max(0.0, end - time.monotonic())))
    after, statuses = _read_counts(bench, metrics)
    p1, k1, (b1, j1) = sum(cpu_ticks(p) for p in pids), cpu_ticks(kuiperd), machine_jiffies()
    w1 = time.monotonic()
    readings = Readings(
        before=before, after=after, cpu_window_s=w1 - w0, plugin_ticks=p1 - p0,
        kuiperd_ticks=k1 - k0, busy_jiffies=b1 - b0, total_jiffies=j1 - j0, rss_kb=rss,
        threads=threads, switches=switches[-1] - switches[0], plugin_processes=len(pids),
        not_running=sum(1 for s in statuses.values() if str(s.get("status")) != "running"),
        exceptions=sum(int(v) for s in statuses.values() for k, v in s.items()
                       if k.endswith("_exceptions_total")),
        symbols=started_symbols(bench.k.log(), symbol), cores=os.cpu_count() or 1,
        extra={"setup_s": setup_s, "loadavg_1m": os.getloadavg()[0]})
    return figures(readings)


def cleanup_sockets(sdks: list[Sdk]) -> None:
    """Remove the IPC files of the scaling plugins' and rules' names left in /tmp."""
    tmp = Path("/tmp")
    names = [tmp / f"plugin_{s.plugin}.ipc" for s in sdks]
    names += [tmp / f"func_{s.function}.ipc" for s in sdks]
    names += list(tmp.glob(f"{RULE_PREFIX}*.ipc"))
    for path in names:
        path.unlink(missing_ok=True)


def measure(sdks: list[Sdk], dist: Path, gate: QuietGate, errors: list[str],
            config: Config | None = None, quick: bool = False) -> dict[str, Any]:
    """Every (kind, rule count) for every SDK, each on a fresh kuiperd; errors appended.

    ``sdks`` are the SDKs as the other cases know them (Python ones only: the Go plugin
    is not part of this case); results are keyed by their tags. A failed case is logged,
    added to ``errors`` and leaves a gap; the others still run.
    """
    config = config or (Config.quick() if quick else Config())
    mapped = {s.tag: scaling_sdk(s) for s in sdks if s.python is not None}
    folders = {tag: lay_out_plugin(s, SCALING / "plugins") for tag, s in mapped.items()}
    samples: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        kind: {tag: {str(n): [] for n in config.counts} for tag in mapped}
        for kind in config.kinds}
    load_start = os.getloadavg()
    started = time.monotonic()
    cleanup_sockets(list(mapped.values()))
    for rep, kind, count, tag in plan(config.kinds, config.counts, list(mapped), config.reps):
        what = f"scaling {kind} x{count} {tag} rep {rep + 1}"
        log(f"{what}")
        waited = gate.wait()
        bench = BenchKuiperd(mapped[tag], SCALING / "homes" / mapped[tag].tag, dist,
                             folders[tag])
        try:
            bench.start()
            sample = run_case(bench, kind, count, config)
        except Exception as exc:
            log(f"FAILED {what}: {exc}")
            errors.append(f"{what}: {type(exc).__name__}: {exc}")
            continue
        finally:
            try:
                bench.stop()
            except Exception as exc:
                errors.append(f"{what}: stop: {type(exc).__name__}: {exc}")
            cleanup_sockets(list(mapped.values()))
        sample["waited_s"] = waited
        samples[kind][tag][str(count)].append(sample)
        log(f"    {sample['rate']:,.0f}/s total; plugin {sample['plugin_us_per_row']:.1f} "
            f"CPU-us/row, {sample['plugin_cores']:.2f} cores; kuiperd "
            f"{sample['kuiperd_cores']:.2f} cores; {sample['symbols']} symbols, "
            f"{sample['rss_mb']:.1f} MB, {sample['threads']} threads; other load "
            f"{sample['other_cores']:.2f} cores")
    return {
        "config": {"kinds": list(config.kinds), "counts": list(config.counts),
                   "reps": config.reps, "warmup_s": config.warmup_s,
                   "window_s": config.window_s, "sample_every_s": config.sample_every_s},
        "labels": {tag: s.label for tag, s in mapped.items()},
        "plugins": {tag: s.plugin for tag, s in mapped.items()},
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "duration_s": time.monotonic() - started,
        "samples": samples,
        "summary": summarize(samples),
    }


# -- standalone entry -------------------------------------------------------------------


def update_readme(text: str) -> None:
    report.replace_section(README, START_MARK, END_MARK, text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Config()
    parser.add_argument("--counts", default=",".join(map(str, defaults.counts)),
                        help="rule counts, comma-separated")
    parser.add_argument("--kinds", default=",".join(defaults.kinds),
                        help=f"comma-separated, of: {', '.join(KINDS)}")
    parser.add_argument("--reps", type=int, default=defaults.reps)
    parser.add_argument("--warmup", type=float, default=defaults.warmup_s)
    parser.add_argument("--window", type=float, default=defaults.window_s)
    parser.add_argument("--quick", action="store_true",
                        help="1 and 3 rules, short windows: checks the harness, not for results")
    parser.add_argument("--no-readme", action="store_true", help="leave bench/README.md alone")
    parser.add_argument("--render", metavar="JSON", type=Path,
                        help="measure nothing: redo the README section of a results file")
    args = parser.parse_args(argv)
    try:
        args.counts = tuple(int(c) for c in args.counts.split(","))
    except ValueError:
        parser.error(f"--counts: {args.counts!r} is not a comma-separated list of integers")
    if any(c < 1 for c in args.counts):
        parser.error("--counts: every rule count must be at least 1")
    args.kinds = tuple(k.strip() for k in args.kinds.split(","))
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        parser.error(f"--kinds: unknown {', '.join(unknown)}; use {', '.join(KINDS)}")
    if args.quick:
        args.no_readme = True
    return args


def section(results: dict[str, Any], name: str) -> str:
    errors = results.get("errors", [])
    return (f"Standalone run of {results['date']} (`python -m bench.scaling`; "
            f"{results['machine']['cpu']}, {results['machine']['cores']} cores, kuiperd "
            f"{results['kuiperd']}):\n\n" + report.scaling_markdown(results["scaling"])
            + f"\n\nRaw samples: [`results/{name}`](results/{name})."
            + (f"\n\nErrors during the run: {len(errors)} (see the JSON)." if errors else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        recorded = json.loads(args.render.read_text())
        text = section(recorded, args.render.name)
        if not args.no_readme:
            update_readme(text)
        print(text)
        return 0
    from tests.e2e.kuiper import DEFAULT_VERSION, kuiperd_dist

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    date = dt.date.today().isoformat()
    dist = kuiperd_dist(DEFAULT_VERSION)
    official_python = ensure_venv(WORK / "official", (OFFICIAL_PACKAGE,))
    sdks = [Sdk("py", "this SDK", "benchpy", Path(sys.executable)),
            Sdk("official", f"official {OFFICIAL_PACKAGE.split('==')[1]}", "benchofficial",
                official_python)]
    config = (Config.quick() if args.quick else
              Config(kinds=args.kinds, counts=args.counts, reps=args.reps,
                     warmup_s=args.warmup, window_s=args.window))
    errors: list[str] = []
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    results: dict[str, Any] = {
        "date": date,
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "kuiperd": DEFAULT_VERSION,
    }
    import ekuiper

    results["sdks"] = {"py": {"version": ekuiper.__version__},
                       "official": {"version": OFFICIAL_PACKAGE.split("==")[1]}}
    results["scaling"] = measure(sdks, dist, QuietGate(), errors, config)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["errors"] = errors
    name = f"{date}-scaling{'-quick' if args.quick else ''}.json"
    out = RESULTS / name
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.without_urls(results), indent=1) + "\n")
    log(f"wrote {out.relative_to(REPO)}")
    text = section(results, name)
    if not args.no_readme:
        update_readme(text)
    print(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
