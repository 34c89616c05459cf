"""Statistics, ratios and targets over the raw samples, and their Markdown summary."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

OURS, OFFICIAL, GO = "py", "official", "go"
DASH = "\u2013"

# case key -> (label, unit)
CASES: dict[str, tuple[str, str]] = {
    "source": ("source -> nop (rows/s)", "rows/s"),
    "function": ("revert() on simulator rows (calls/s)", "calls/s"),
    "sink_single_ack": ("sink sendSingle=true requireAck=true (rows/s)", "rows/s"),
    "sink_single_noack": ("sink sendSingle=true requireAck=false (rows/s)", "rows/s"),
    "sink_array_ack": ("sink sendSingle=false requireAck=true (rows/s)", "rows/s"),
    "sink_array_noack": ("sink sendSingle=false requireAck=false (rows/s)", "rows/s"),
}
SINK_CASES = {  # case -> (sendSingle, requireAck)
    "sink_single_ack": (True, True),
    "sink_single_noack": (True, False),
    "sink_array_ack": (False, True),
    "sink_array_noack": (False, False),
}

# Targets the SDK owner set (ratios are this SDK / baseline, on medians).
SOURCE_VS_OFFICIAL = 2.0
SOURCE_VS_GO = 0.8
FUNCTION_VS_OFFICIAL = 1.5
SINK_VS_OFFICIAL = 2.0
COLD_START_MS = 150.0
IDLE_RSS_MB = 25.0
IDLE_CPU_PERCENT = 0.5  # "~0": at most 0.15 s of CPU in 30 s
SOURCE_CPU_VS_GO = 1.0  # plugin CPU per row, this SDK / Go SDK: at or below
NUMPY_EMIT_VS_JSON = 3.0  # numpy row: stdlib json after .tolist() / the SDK's encoder
FUNCTION_OF_FLOOR = 0.95  # function rate / the floor plugin's, as near zero-cost as it gets
METRICS_ON_VS_OFF = 1.05  # plugin CPU per row with per-symbol metrics on / off
# A metrics-cost case (bench/metrics_cost.py) -> (the rate case it runs, what it adds to
# kuiperd's environment). *_nopoll: with the poll for the next call or message, much of
# the plugin's CPU per row is its wait for eKuiper, spread over however many rows eKuiper
# sent meanwhile, so it moves with eKuiper's rate; without it, the CPU per row is the
# plugin's own work and wake-ups.
METRICS_CASES: dict[str, tuple[str, dict[str, str]]] = {
    "source": ("source", {}),
    "function": ("function", {}),
    "function_nopoll": ("function", {"EKUIPER_FUNCTION_SPIN_US": "0"}),
    "sink_single_noack": ("sink_single_noack", {}),
    "sink_nopoll": ("sink_single_noack", {"EKUIPER_SINK_SPIN_US": "0"}),
}
FLOOR, PYFLOOR = "floor", "pyfloor"
# The C floor with EKUIPER_FUNCTION_SPIN_US=0: sleeping in recv for every call.
FLOOR_SLEEPING = "floor_sleeping"
NUMPY_PAIR = "sdk_numpy / sdk_numpy_json"


# Recorded results name no host: an error text that quotes a URL keeps only "<url>".
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


def without_urls(value: Any) -> Any:
    """``value`` (nested dicts, lists, strings) with every URL in a string cut to <url>."""
    if isinstance(value, str):
        return _URL.sub("<url>", value)
    if isinstance(value, dict):
        return {key: without_urls(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_urls(item) for item in value]
    return value


def replace_section(readme: Path, start: str, end: str, text: str) -> None:
    """Put ``text`` between the ``start`` and ``end`` marks of ``readme`` (added at the end
    when missing), leaving the rest as it is."""
    content = readme.read_text()
    if start not in content or end not in content:
        content += f"\n{start}\n{end}\n"
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def series(samples: list[float]) -> dict[str, Any]:
    return {"samples": samples, "median": statistics.median(samples), "min": min(samples),
            "max": max(samples)}


def ratio(num: dict[str, Any] | None, den: dict[str, Any] | None) -> dict[str, Any] | None:
    """Ratio of medians, and the range of the per-repetition (paired) ratios."""
    if not num or not den or not den["median"]:
        return None
    paired = [a / b for a, b in zip(num["samples"], den["samples"]) if b]
    return {"median": num["median"] / den["median"], "min": min(paired) if paired else None,
            "max": max(paired) if paired else None, "paired": paired}


def compute_ratios(rates: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for case, by_sdk in rates.items():
        out[case] = {"vs_official": ratio(by_sdk.get(OURS), by_sdk.get(OFFICIAL)),
                     "vs_go": ratio(by_sdk.get(OURS), by_sdk.get(GO))}
    return out


def numpy_series(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """bench/micro.py interleave outputs -> per pair, the series of its ratios and of the
    µs per emit of both sides."""
    out: dict[str, Any] = {}
    for name in (runs[0]["ratios"] if runs else {}):
        pairs = [r["ratios"][name] for r in runs if name in r["ratios"]]
        out[name] = {"ratio": series([p["ratio"] for p in pairs]),
                     "us_per_emit": series([p["us_per_emit"][0] for p in pairs]),
                     "baseline_us_per_emit": series([p["us_per_emit"][1] for p in pairs])}
    return out


def floor_ratio(results: dict[str, Any], tag: str = FLOOR) -> dict[str, Any] | None:
    """This SDK's function rate over the floor plugin ``tag``'s: ratio of medians, and the
    range of the ratios within a repetition (both measured back to back)."""
    reps = results.get("function_floor", {}).get("reps", [])
    ours = [r[OURS]["rate"] for r in reps if OURS in r]
    floor = [r[tag]["rate"] for r in reps if tag in r]
    if not ours or not floor:
        return None
    paired = [r[OURS]["rate"] / r[tag]["rate"] for r in reps
              if OURS in r and tag in r and r[tag]["rate"]]
    return {"median": statistics.median(ours) / statistics.median(floor),
            "min": min(paired) if paired else None, "max": max(paired) if paired else None,
            "paired": paired, "ours": series(ours), "floor": series(floor)}


def kuiperd_us_per_item(results: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """case -> SDK -> series of kuiperd's own CPU µs per row or call, in the rate windows."""
    return {case: {tag: series(per) for tag, samples in by_sdk.items()
                   if (per := [1e6 * s["kuiperd_cpu_s"] / s["count"]
                               for s in samples if s.get("count")])}
            for case, by_sdk in results.get("raw_rates", {}).items()}


def _target(what: str, target: str, value: float | None, met: bool | None,
            shown: str) -> dict[str, Any]:
    return {"what": what, "target": target, "value": value, "shown": shown, "met": met}


def _ratio_target(what: str, r: dict[str, Any] | None, minimum: float) -> dict[str, Any]:
    if r is None:
        return _target(what, f">= {minimum:g}x", None, None, "not measured")
    return _target(what, f">= {minimum:g}x", r["median"], r["median"] >= minimum,
                   f"{r['median']:.2f}x")


def compute_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    ratios = results["ratios"]
    targets = [
        _ratio_target("source rate vs official", ratios["source"]["vs_official"],
                      SOURCE_VS_OFFICIAL),
        _ratio_target("source rate vs Go", ratios["source"]["vs_go"], SOURCE_VS_GO),
        _ratio_target("function rate vs official", ratios["function"]["vs_official"],
                      FUNCTION_VS_OFFICIAL),
    ]
    for case in SINK_CASES:
        label = CASES[case][0].replace(" (rows/s)", "")
        targets.append(_ratio_target(f"{label} vs official", ratios[case]["vs_official"],
                                     SINK_VS_OFFICIAL))
    cpu = results.get("plugin_cpu_us_per_item", {}).get("source", {})
    cpu_ratio = ratio(cpu.get(OURS), cpu.get(GO))
    targets.append(_target(
        "source plugin CPU per row vs Go", f"<= {SOURCE_CPU_VS_GO:g}x",
        cpu_ratio["median"] if cpu_ratio else None,
        cpu_ratio["median"] <= SOURCE_CPU_VS_GO if cpu_ratio else None,
        f"{cpu_ratio['median']:.2f}x ({cpu[OURS]['median']:.2f} vs {cpu[GO]['median']:.2f} µs)"
        if cpu_ratio else "not measured"))
    for tag, what in ((FLOOR, "function rate vs the floor plugin's (near zero-cost)"),
                      (FLOOR_SLEEPING, "function rate vs the C floor sleeping in recv")):
        floor = floor_ratio(results, tag)
        targets.append(_target(
            what, f">= {FUNCTION_OF_FLOOR:.0%}", floor["median"] if floor else None,
            floor["median"] >= FUNCTION_OF_FLOOR if floor else None,
            f"{floor['median']:.1%} ({floor['ours']['median']:,.0f} of "
            f"{floor['floor']['median']:,.0f} calls/s)" if floor else "not measured"))
    numpy = results.get("micro_numpy", {}).get(NUMPY_PAIR)
    targets.append(_target(
        "emit of a 100-float numpy row vs stdlib json after .tolist()",
        f">= {NUMPY_EMIT_VS_JSON:g}x", numpy["ratio"]["median"] if numpy else None,
        numpy["ratio"]["median"] >= NUMPY_EMIT_VS_JSON if numpy else None,
        f"{numpy['ratio']['median']:.2f}x ({numpy['us_per_emit']['median']:.1f} vs "
        f"{numpy['baseline_us_per_emit']['median']:.1f} µs)" if numpy else "not measured"))
    metrics = results.get("metrics_cost", {}).get("kuiperd", {})
    for case, (rate_case, env) in METRICS_CASES.items():
        cost = metrics.get(case) or {}
        cpu_ratio = cost.get("cpu_ratio")
        suffix = f" ({', '.join(f'{k}={v}' for k, v in env.items())})" if env else ""
        label = CASES[rate_case][0].replace(" (rows/s)", "").split(" (")[0] + suffix
        targets.append(_target(
            f"{label}: plugin CPU per row, metrics on vs off", f"< {METRICS_ON_VS_OFF:g}x",
            cpu_ratio, cpu_ratio < METRICS_ON_VS_OFF if cpu_ratio is not None else None,
            f"{cpu_ratio:.3f}x [{cost['cpu_ratio_range'][0]:.3f}{DASH}"
            f"{cost['cpu_ratio_range'][1]:.3f}] over {len(cost['pairs'])} pairs "
            f"({cost['cpu_us_per_row_off']:.2f} vs {cost['cpu_us_per_row_on']:.2f} µs)"
            if cpu_ratio is not None else "not measured"))
    cold = results["cold_start"].get(OURS)
    targets.append(_target("cold start to handshake (median)", f"<= {COLD_START_MS:g} ms",
                           cold["median"] if cold else None,
                           cold["median"] <= COLD_START_MS if cold else None,
                           f"{cold['median']:.0f} ms" if cold else "not measured"))
    idle = results["idle"].get(OURS)
    if idle:
        targets.append(_target("idle RSS (max over the window)", f"<= {IDLE_RSS_MB:g} MB",
                               idle["rss_mb_max"], idle["rss_mb_max"] <= IDLE_RSS_MB,
                               f"{idle['rss_mb_max']:.1f} MB"))
        targets.append(_target(f"idle CPU over {idle['seconds']:.0f} s",
                               f"~0 (<= {IDLE_CPU_PERCENT:g}% of a core)", idle["cpu_percent"],
                               idle["cpu_percent"] <= IDLE_CPU_PERCENT,
                               f"{idle['cpu_s']:.2f} s ({idle['cpu_percent']:.2f}%), "
                               f"{idle['wakeups_per_s']:.1f} wakeups/s"))
    return targets


# -- Markdown ---------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _spread(s: dict[str, Any] | None) -> str:
    if not s:
        return "n/a"
    return f"{_num(s['median'])} [{_num(s['min'])}{DASH}{_num(s['max'])}]"


def _ratio_cell(r: dict[str, Any] | None) -> str:
    if not r:
        return "n/a"
    if r["min"] is None:
        return f"{r['median']:.2f}x"
    return f"{r['median']:.2f}x [{r['min']:.2f}{DASH}{r['max']:.2f}]"


def _yes(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[met]


def markdown(results: dict[str, Any]) -> str:
    labels = {tag: info["label"] for tag, info in results["sdks"].items()}
    reps = results["config"]["reps"]
    lines = [
        f"Run of {results['date']} ({results['machine']['cpu']}, "
        f"{results['machine']['cores']} cores; {results['duration_s'] / 60:.1f} min). "
        f"Medians of {reps} interleaved repetitions, [min{DASH}max]; ratios are this SDK / "
        f"baseline on the medians, [min{DASH}max] of the per-repetition ratios.",
        "",
        f"| case | {labels.get(OURS, OURS)} | {labels.get(OFFICIAL, OFFICIAL)} | "
        f"{labels.get(GO, 'Go SDK')} | vs official | vs Go |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for case, (label, _) in CASES.items():
        by_sdk = results["rates"].get(case, {})
        r = results["ratios"].get(case, {})
        lines.append(f"| {label} | {_spread(by_sdk.get(OURS))} | "
                     f"{_spread(by_sdk.get(OFFICIAL))} | {_spread(by_sdk.get(GO))} | "
                     f"{_ratio_cell(r.get('vs_official'))} | {_ratio_cell(r.get('vs_go'))} |")
    cpu = results.get("plugin_cpu_us_per_item", {})
    if cpu:
        lines += ["", "CPU time of the plugin process per row or call (µs, median "
                  f"[min{DASH}max]); less sensitive than rates to other load on the machine:",
                  "", f"| case | {labels.get(OURS, OURS)} | {labels.get(OFFICIAL, OFFICIAL)} | "
                  f"{labels.get(GO, 'Go SDK')} |", "|---|---:|---:|---:|"]
        for case, (label, _) in CASES.items():
            by_sdk = cpu.get(case, {})
            lines.append(f"| {label.split(' (')[0]} | {_spread(by_sdk.get(OURS))} | "
                         f"{_spread(by_sdk.get(OFFICIAL))} | {_spread(by_sdk.get(GO))} |")
    lines += _kuiperd_cpu_markdown(results, labels)
    lines += _floor_markdown(results, labels)
    others = [s["other_cores"] for by_sdk in results.get("raw_rates", {}).values()
              for samples in by_sdk.values() for s in samples]
    if others:
        waits = [s.get("waited_s", 0.0) for by_sdk in results["raw_rates"].values()
                 for samples in by_sdk.values() for s in samples]
        lines += ["", f"Other processes on the machine during the rate windows: median "
                  f"{statistics.median(others):.2f}, max {max(others):.2f} busy cores "
                  f"(of {results['machine']['cores']}); waited for a quiet machine "
                  f"{sum(waits):.0f} s in all"
                  + (" (the whole budget: later cases did not wait)."
                     if results.get("quiet_gate_budget_left_s", 1.0) <= 0 else ".")]
    sim = results.get("simulator", {})
    if sim:
        lines += ["", "Upstream of the function and sink cases (built-in `simulator` into "
                  "`nop`, same kuiperds): " + ", ".join(
                      f"{labels.get(tag, tag)} {_spread(s)} rows/s" for tag, s in sim.items())]
    lines += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['what']} | {t['target']} | {t['shown']} | {_yes(t['met'])} |")
    lines += ["", "| SDK | spawn -> handshake (ms) | `import ekuiper`, -X importtime (ms) | "
              "`import ekuiper` wall minus bare python (ms) |", "|---|---:|---:|---:|"]
    for tag, cold in results["cold_start"].items():
        imp = results["import"].get(tag)
        imp_cells = (f"{imp['importtime_ms']:.1f} | {imp['wall_delta_ms']:.1f}" if imp
                     else "n/a | n/a")
        lines.append(f"| {labels.get(tag, tag)} | {_spread(cold)} | {imp_cells} |")
    lines += ["", f"| SDK, idle source for {results['config']['idle_s']:g} s | RSS (MB, max) | "
              "CPU (s) | CPU (% of a core) | wakeups/s | threads |",
              "|---|---:|---:|---:|---:|---:|"]
    for tag, idle in results["idle"].items():
        lines.append(f"| {labels.get(tag, tag)} | {idle['rss_mb_max']:.1f} | "
                     f"{idle['cpu_s']:.2f} | {idle['cpu_percent']:.2f} | "
                     f"{idle['wakeups_per_s']:.1f} | {idle['threads']} |")
    micro = results.get("micro", {})
    if micro:
        floor = micro.get("raw", {}).get("median")
        lines += ["", "| emit microbench (no kuiperd) | emits/s | µs per emit "
                  "| vs raw pynng floor |", "|---|---:|---:|---:|"]
        for variant, s in micro.items():
            rel = f"{s['median'] / floor:.2f}x" if floor else "n/a"
            lines.append(f"| {MICRO_LABELS.get(variant, variant)} | {_spread(s)} | "
                         f"{1e6 / s['median']:.1f} | {rel} |")
    numpy_pairs = results.get("micro_numpy", {})
    if numpy_pairs:
        lines += ["", "| numpy row (100 floats), one process, alternating 20 ms blocks | µs "
                  "per emit | baseline: stdlib json after `.tolist()` (µs) | speed-up |",
                  "|---|---:|---:|---:|"]
        for name, pair in numpy_pairs.items():
            what = ("`SymbolContext.emit` -> socket" if name == NUMPY_PAIR
                    else "`encode_source_frame` only")
            lines.append(f"| {what} | {_spread(pair['us_per_emit'])} | "
                         f"{_spread(pair['baseline_us_per_emit'])} | "
                         f"{_spread(pair['ratio'])}x |")
    if results.get("scaling"):
        lines += ["", scaling_markdown(results["scaling"])]
    return "\n".join(lines)


def _kuiperd_cpu_markdown(results: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """kuiperd's own CPU per row or call, per SDK."""
    per_item = kuiperd_us_per_item(results)
    if not per_item:
        return []
    lines = ["", "CPU time of kuiperd per row or call (µs, median [min" + DASH + "max]), "
             "same windows:", "", f"| case | {labels.get(OURS, OURS)} | "
             f"{labels.get(OFFICIAL, OFFICIAL)} | {labels.get(GO, 'Go SDK')} |",
             "|---|---:|---:|---:|"]
    for case, (label, _) in CASES.items():
        by_sdk = per_item.get(case, {})
        lines.append(f"| {label.split(' (')[0]} | {_spread(by_sdk.get(OURS))} | "
                     f"{_spread(by_sdk.get(OFFICIAL))} | {_spread(by_sdk.get(GO))} |")
    lines += ["", "kuiperd's CPU per call is no fixed cost: it falls as the plugin answers "
              "faster (compare the floor plugins below), so it sets no ceiling a rate can be "
              "held to; the function target is measured against the floor plugins instead."]
    return lines


def _floor_markdown(results: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """The function case against the floor plugin, measured back to back."""
    floor = floor_ratio(results)
    if floor is None:
        return []
    info = results["function_floor"]
    reps = info["reps"]
    lines = ["", "Function case against its floor: one function, every call answered from "
             "a constant, no JSON parsed (`bench/floorplugin/`); fresh kuiperds back to "
             "back, the order rotated. The floors wait for the next call as the SDK does "
             "(polling while calls come fast, `EKUIPER_FUNCTION_SPIN_US`); the last row is "
             "the C floor sleeping in recv for every call, as a plugin without that poll "
             "does:", "",
             "| plugin | calls/s | plugin CPU per call (µs) | share of the C floor's rate |",
             "|---|---:|---:|---:|"]
    names = {OURS: labels.get(OURS, OURS), FLOOR: info["label"],
             PYFLOOR: info.get("python_label", PYFLOOR),
             FLOOR_SLEEPING: f"{info['label']}, sleeping in recv (EKUIPER_FUNCTION_SPIN_US=0)"}
    floor_rates = series([r[FLOOR]["rate"] for r in reps if FLOOR in r])
    for tag in (OURS, PYFLOOR, FLOOR, FLOOR_SLEEPING):
        rates = [r[tag]["rate"] for r in reps if tag in r]
        if not rates:
            continue
        cpu = series([r[tag]["plugin_us_per_item"] for r in reps if tag in r])
        lines.append(f"| {names[tag]} | {_spread(series(rates))} | {_spread(cpu)} | "
                     f"{statistics.median(rates) / floor_rates['median']:.0%} |")
    return lines


MICRO_LABELS = {
    "sdk": "this SDK: `SymbolContext.emit` -> socket transport (default)",
    "sdk_pynng": "this SDK: `SymbolContext.emit` -> pynng transport (EKUIPER_TRANSPORT=pynng)",
    "official": "official 2.4.2: `ContextImpl.emit` -> pynng Push0",
    "raw": "raw `Push0.send` of a pre-encoded frame (floor)",
    "raw_official": "raw `Push0.send`, official venv's pynng (floor there)",
    "raw_socket": "raw `socket.send` of a pre-encoded SP frame (floor without pynng)",
    "sdk_encode": "this SDK: `encode_source_frame` only (no socket)",
}


def profiles_markdown(profiles: dict[str, Any], top: int = 8) -> str:
    kinds = {"active": "all non-idle samples", "gil": "GIL holders only"}
    lines: list[str] = []
    for case, by_kind in profiles.items():
        for kind, what in kinds.items():
            prof = by_kind.get(kind) or {}
            if not prof.get("samples"):
                continue
            lines += ["", f"**{case}**, {what} ({prof['samples']} samples)", "",
                      "| self (file:line) | % | inclusive (function) | % |",
                      "|---|---:|---|---:|"]
            rows = max(len(prof["self"][:top]), len(prof["inclusive"][:top]))
            for i in range(rows):
                s = prof["self"][i] if i < len(prof["self"]) else ["", ""]
                inc = prof["inclusive"][i] if i < len(prof["inclusive"]) else ["", ""]
                lines.append(f"| `{s[0]}` | {s[1]} | `{inc[0]}` | {inc[1]} |")
    return "\n".join(lines)


# -- scaling (bench/scaling.py) ---------------------------------------------------------

SCALING_KINDS = {
    "source": "sources: N rules, each `SELECT * FROM s_i` on its own stream of the plugin's "
              "source -> `nop`; rows/s summed over the rules",
    "function": "functions: N rules, each `SELECT benchrevert(name) AS r FROM bsim` "
                "(a simulator instance per rule) -> `nop`; calls/s summed over the rules",
}


def _opt(value: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def scaling_markdown(scaling: dict[str, Any]) -> str:
    """One table per kind: total rate, plugin CPU per row, RSS and threads per symbol."""
    labels = scaling.get("labels", {})
    config = scaling["config"]
    lines = [f"Scaling: {', '.join(map(str, config['counts']))} rules at once through one "
             f"plugin, a fresh kuiperd per (SDK, N), SDKs interleaved; one "
             f"{config['window_s']:g} s window after a {config['warmup_s']:g} s warm-up per "
             f"case, medians of {config['reps']} repetition(s). Symbols: instances kuiperd "
             f"started in the plugin. Plugin and kuiperd CPU in cores = CPU seconds per "
             f"second of the window. Switches: context switches of all the plugin's threads. "
             f"Marginal: what each symbol beyond the first count added."]
    for kind, by_tag in scaling.get("summary", {}).items():
        lines += ["", f"**{SCALING_KINDS.get(kind, kind)}**", "",
                  "| SDK | rules | symbols | rows/s total | vs 1 rule | per rule, min"
                  f"{DASH}max | plugin CPU µs/row | plugin cores | plugin switches/row | "
                  "kuiperd cores | kuiperd µs/row | RSS MB | MB/symbol | marginal KB | "
                  "threads | threads/symbol | marginal threads |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                  "---:|---:|---:|"]
        for tag, rows in by_tag.items():
            for count, row in rows.items():
                marginal = row.get("marginal_rss_mb")
                marginal_kb = None if marginal is None else 1024 * marginal
                lines.append(
                    f"| {labels.get(tag, tag)} | {count} | {row.get('symbols', 0):.0f} | "
                    f"{_spread(row['rate'])} | {_opt(row.get('vs_first'), '{:.2f}x')} | "
                    f"{_num(row['rule_rate_min'])}{DASH}{_num(row['rule_rate_max'])} | "
                    f"{_spread(row['plugin_us_per_row'])} | {row['plugin_cores']:.2f} | "
                    f"{_opt(row.get('switches_per_row'), '{:.3g}')} | "
                    f"{row['kuiperd_cores']:.2f} | {_num(row['kuiperd_us_per_row'])} | "
                    f"{row['rss_mb']:.1f} | {row['rss_mb_per_symbol']:.2f} | "
                    f"{_opt(marginal_kb, '{:.0f}')} | {row['threads']:.0f} | "
                    f"{row['threads_per_symbol']:.2f} | "
                    f"{_opt(row.get('marginal_threads'))} |")
    others = [s["other_cores"] for by_tag in scaling.get("samples", {}).values()
              for by_count in by_tag.values() for runs in by_count.values() for s in runs]
    start, end = scaling.get("loadavg_start"), scaling.get("loadavg_end")
    if start and end:
        lines += ["", f"Load average (1, 5, 15 min) at the start "
                  f"{', '.join(f'{v:.2f}' for v in start)}, at the end "
                  f"{', '.join(f'{v:.2f}' for v in end)}"
                  + (f"; other processes during the windows: median "
                     f"{statistics.median(others):.2f}, max {max(others):.2f} busy cores."
                     if others else ".")]
    return "\n".join(lines)
