"""Per-symbol metrics and health, pure: the counters, the health verdict, the renderers.

No sockets, no threads: ``_runtime/instrument.py`` updates a SymbolStats at the counting
points, ``_runtime/exporter.py`` serves what this module renders.

Threads: a SymbolStats is written mostly by its symbol's own thread, but not only: an
async sink with ``max_in_flight > 1`` counts failures from its event loop's thread, and
``ctx.ack_*`` may be called from any thread the sink's code uses. The updates are plain
attribute increments with no lock (a row costs a few tens of nanoseconds); under the GIL
an increment from two threads at once may, rarely, lose one count, so the counters are
exact in practice, not guaranteed. The exporter's thread reads them and may see a row's
counters half updated: their sum across fields may lag by one row. ``last_activity``/
``seen`` are written by the exporter thread only.

Adding a counter: a row in COUNTERS below (its slot, metric name, labels and help come
from it) and its annotation in SymbolStats, then ``stats.<name> += 1`` where it happens
(``if self.stats is not None:`` in a runtime's error path).
"""

from __future__ import annotations

import json
import math
import os
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUCKETS_S",
    "COUNTERS",
    "DIR_ENV",
    "HEALTHY_STATES",
    "Health",
    "MetricsSettings",
    "SymbolFacts",
    "SymbolStats",
    "evaluate",
    "health_document",
    "merge_expositions",
    "render_prometheus",
    "settings_from_env",
]

DIR_ENV = "EKUIPER_PLUGIN_METRICS_DIR"
STUCK_ENV = "EKUIPER_PLUGIN_HEALTH_STUCK_S"
BLOCKED_ENV = "EKUIPER_PLUGIN_HEALTH_BLOCKED_S"
INTERVAL_ENV = "EKUIPER_PLUGIN_METRICS_INTERVAL_S"
LATENCY_EVERY_ENV = "EKUIPER_PLUGIN_LATENCY_SAMPLE"
# Time one call in this many by default: two clock reads and a histogram update cost
# some 250 ns, 8 ns a row at 1 in 32 (counts stay exact whatever the sample).
DEFAULT_LATENCY_EVERY = 32

# The one table of counters: slot, metric name (after ekuiper_plugin_), extra labels,
# the kinds it is shown for, help. Several slots may share a metric when their extra
# labels tell them apart.
_ALL = ("source", "sink", "function")
COUNTERS: tuple[tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...], str], ...] = (
    ("calls", "calls_total", (), ("source", "function"),
     "Calls into the symbol's code: function requests; a source's open() (a sink's "
     "collect() calls are its rows_total)"),
    ("errors", "errors_total", (), _ALL,
     "Failures: exceptions from the symbol's code, source error frames, failed requests"),
    ("rows", "rows_total", (), _ALL,
     "Rows a source emitted, messages a sink received, results a function returned"),
    ("bytes", "bytes_total", (), _ALL,
     "Payload bytes on the data channel: sent by a source, received by a sink or function"),
    ("acks_ok", "acks_total", (("result", "ok"),), ("sink",), "Acks a sink sent to eKuiper"),
    ("acks_error", "acks_total", (("result", "error"),), ("sink",),
     "Acks a sink sent to eKuiper"),
    ("replaced", "errors_replaced_total", (), ("function",),
     "Rows whose failure the function's on_error policy turned into its value (null or "
     "the default); they count as rows, not errors"),
    ("retries", "retries_total", (), ("sink",),
     "collect() calls made again by the sink's retry policy"),
    ("retries_exhausted", "retries_exhausted_total", (), ("sink",),
     "Messages acked as failed after the retry policy's last attempt"),
)

# Latency buckets (upper bounds, seconds) of function requests and sink collect().
BUCKETS_S: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
_BOUNDS_NS: tuple[int, ...] = tuple(round(b * 1e9) for b in BUCKETS_S)

# Health states; the table's bool says whether the state counts as healthy.
HEALTHY_STATES: dict[str, bool] = {
    "running": True,    # doing its job (or idle, waiting for eKuiper)
    "starting": True,   # start command answered, first activity not seen yet
    "returned": False,  # a source's open() returned and nothing was emitted since
    "failed": False,    # a source's or sink's open() raised
    "blocked": False,   # a source's emit has waited on eKuiper for too long
    "stuck": False,     # a sink's collect() or a function's request runs too long
    "lost": False,      # the symbol's channel to eKuiper is gone (loop ended, or redialling)
}


class SymbolStats:
    """The counters of one symbol instance (a function: of one rule calling it)."""

    # One annotation per COUNTERS slot, for the type checker.
    calls: int
    errors: int
    rows: int
    bytes: int
    acks_ok: int
    acks_error: int
    replaced: int
    retries: int
    retries_exhausted: int

    __slots__ = (*(slot for slot, *_ignored in COUNTERS), "hist", "sum_ns", "in_call",
                 "heard", "last_taken", "blocked_since_ns", "last_error", "last_error_at",
                 "open_failed", "seen", "last_activity", "labels")

    def __init__(self, labels: Mapping[str, str], now: float = 0.0) -> None:
        for slot, *_ignored in COUNTERS:
            setattr(self, slot, 0)
        # Per bucket, not cumulative; the last one is +Inf.
        self.hist: list[int] = [0] * (len(_BOUNDS_NS) + 1)
        self.sum_ns = 0
        # True while collect() / a request runs: with activity unchanged since, it is the
        # same call (no clock read per row; the exporter's sampling tells how long). A
        # function's loop writes it; a sink's (and its rows) are the exporter's reading of
        # its loop's counts (instrument.sync_sink), so a message pays no write for them.
        self.in_call = False
        # A function: requests, and idle receive timeouts on a connected channel: its
        # loop's heartbeat, which stops while the channel is down and being redialled.
        # Not proof that eKuiper is alive: eKuiper speaks only to call, so a paused or
        # hung eKuiper with the connection up looks like an idle one.
        self.heard = 0
        # A sink: its runtime's ``delivered`` when the message in hand (or the last one)
        # arrived, -1 before the first; its rows and in_call are read off it (sync_sink).
        self.last_taken = -1
        # perf_counter_ns() when the emit waiting on eKuiper began (timeout path), else 0.
        self.blocked_since_ns = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.open_failed = False
        # Written by the exporter thread: the activity total it saw last, and when
        # (wall clock) that total last changed.
        self.seen = -1
        self.last_activity = now
        self.labels = dict(labels)

    def observe(self, elapsed_ns: int) -> None:
        """One call that took ``elapsed_ns``: the latency histogram's share of it."""
        self.hist[bisect_left(_BOUNDS_NS, elapsed_ns)] += 1
        self.sum_ns += elapsed_ns

    def fail(self, text: str, now: float) -> None:
        """One failure (the error paths only): counted, and kept as the last error."""
        self.errors += 1
        self.last_error = text[:500]
        self.last_error_at = now

    def activity(self) -> int:
        """A number that grows whenever the symbol does anything."""
        # retries: a sink in its retry backoff is working, not stuck.
        return (self.calls + self.rows + self.errors + self.retries
                + self.acks_ok + self.acks_error + self.heard)

    def sample(self, now: float) -> None:
        """Exporter thread: note when activity last changed (no clock read per row)."""
        total = self.activity()
        if total != self.seen:
            if self.seen != -1:
                self.last_activity = now
            self.seen = total

    def counter(self, slot: str) -> int:
        value: int = getattr(self, slot)
        return value


@dataclass(frozen=True)
class SymbolFacts:
    """What the exporter reads off a runtime to judge its health."""

    kind: str             # "source", "sink" or "function"
    thread_alive: bool    # the symbol's own thread (open / recv loop / request loop)
    stopping: bool
    open_raised: bool     # a source's or sink's open() raised
    # A function: its loop's heartbeat (``SymbolStats.heard``) beats at least this often
    # while its channel is connected.
    hears_within_s: float = 0.0


@dataclass(frozen=True)
class Health:
    state: str
    detail: str

    @property
    def healthy(self) -> bool:
        return HEALTHY_STATES[self.state]


@dataclass(frozen=True)
class MetricsSettings:
    directory: str
    stuck_s: float = 30.0
    blocked_s: float = 30.0
    interval_s: float = 5.0
    problems: tuple[str, ...] = field(default=())
    latency_every: int = DEFAULT_LATENCY_EVERY


def evaluate(stats: SymbolStats, facts: SymbolFacts, now_ns: int, now: float,
             settings: MetricsSettings) -> Health:
    """The health of one symbol; ``now_ns`` is perf_counter_ns(), ``now`` time.time()."""
    if facts.open_raised or stats.open_failed:
        return Health("failed", stats.last_error or "open() raised; see the plugin log")
    # Sampled by the exporter each second: when the activity total last changed.
    quiet_s = now - stats.last_activity
    if stats.in_call and quiet_s > settings.stuck_s:
        call = "collect()" if facts.kind == "sink" else "a request"
        return Health("stuck", f"{call} has been running for about {quiet_s:.0f} s "
                               f"(limit {settings.stuck_s:g} s, {STUCK_ENV})")
    if facts.hears_within_s and not stats.in_call and \
            quiet_s > facts.hears_within_s + settings.blocked_s:
        return Health("lost", f"the function's channel to eKuiper has been down for about "
                              f"{quiet_s:.0f} s (eKuiper's end is gone; the plugin keeps "
                              "redialling)")
    blocked = stats.blocked_since_ns
    if blocked and now_ns - blocked > settings.blocked_s * 1e9:
        return Health("blocked", f"emit() has waited {(now_ns - blocked) / 1e9:.0f} s for "
                                 f"eKuiper to take a row (limit {settings.blocked_s:g} s, "
                                 f"{BLOCKED_ENV})")
    if not facts.thread_alive and not facts.stopping:
        if facts.kind != "source":
            return Health("lost", "the channel to eKuiper is gone; the symbol answers "
                                  "nothing until the plugin restarts")
        # A returned open() is fine while threads or callbacks it set up keep emitting,
        # and for stuck_s after it returned before their first row.
        if quiet_s > settings.stuck_s:
            return Health("returned", f"open() returned; nothing emitted for {quiet_s:.0f} s")
        return Health("running", "open() returned; threads or callbacks it started emit")
    if stats.activity() == 0:
        return Health("starting", "no activity yet")
    return Health("running", "")


# -- rendering ------------------------------------------------------------------------

_LABEL_ORDER = ("plugin", "kind", "symbol", "rule", "op", "instance")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str], extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [(k, labels[k]) for k in _LABEL_ORDER if k in labels] + list(extra)
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render_prometheus(plugin: str, entries: Sequence[tuple[SymbolStats, Health]],
                      control_connected: bool) -> str:
    """The Prometheus text format (0.0.4) of every symbol's counters and health."""
    out: list[str] = []
    plugin_labels = {"plugin": plugin}

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP ekuiper_plugin_{name} {help_text}")
        out.append(f"# TYPE ekuiper_plugin_{name} {kind}")

    family("control_connected", "gauge",
           "1 while the plugin's control channel to eKuiper is connected")
    out.append(f"ekuiper_plugin_control_connected{_labels(plugin_labels)} "
               f"{int(control_connected)}")
    done: set[str] = set()
    for _slot, name, _extra, _kinds, help_text in COUNTERS:
        if name in done:
            continue
        done.add(name)
        family(name, "counter", help_text)
        for slot, other, extra, kinds, _ in COUNTERS:
            if other != name:
                continue
            for stats, _health in entries:
                if stats.labels.get("kind") not in kinds:
                    continue
                out.append(f"ekuiper_plugin_{name}{_labels(stats.labels, extra)} "
                           f"{stats.counter(slot)}")
    family("latency_seconds", "histogram",
           "Duration of function requests and sink collect() calls")
    for stats, _health in entries:
        if stats.labels.get("kind") == "source":
            continue
        cumulative = 0
        for bound, count in zip((*BUCKETS_S, math.inf), stats.hist):
            cumulative += count
            out.append(f"ekuiper_plugin_latency_seconds_bucket"
                       f"{_labels(stats.labels, (('le', _number(bound)),))} {cumulative}")
        out.append(f"ekuiper_plugin_latency_seconds_sum{_labels(stats.labels)} "
                   f"{_number(stats.sum_ns / 1e9)}")
        out.append(f"ekuiper_plugin_latency_seconds_count{_labels(stats.labels)} "
                   f"{cumulative}")
    family("healthy", "gauge", "1 while the symbol is healthy (see /health for why not)")
    for stats, health in entries:
        out.append(f"ekuiper_plugin_healthy{_labels(stats.labels, (('state', health.state),))} "
                   f"{int(health.healthy)}")
    family("last_activity_timestamp_seconds", "gauge",
           "Wall-clock time the symbol last did anything (sampled each second)")
    for stats, _health in entries:
        out.append(f"ekuiper_plugin_last_activity_timestamp_seconds{_labels(stats.labels)} "
                   f"{_number(round(stats.last_activity, 3))}")
    return "\n".join(out) + "\n"


def health_document(plugin: str, pid: int, entries: Sequence[tuple[SymbolStats, Health]],
                    control_connected: bool, now: float) -> dict[str, Any]:
    """The /health JSON: healthy when the control channel is up and every symbol is."""
    symbols = []
    for stats, health in entries:
        item: dict[str, Any] = {**stats.labels, "state": health.state,
                                "healthy": health.healthy}
        if health.detail:
            item["detail"] = health.detail
        item["last_activity_s_ago"] = round(max(0.0, now - stats.last_activity), 1)
        if stats.last_error is not None:
            item["last_error"] = stats.last_error
            item["last_error_s_ago"] = round(max(0.0, now - (stats.last_error_at or now)), 1)
        symbols.append(item)
    healthy = control_connected and all(h.healthy for _, h in entries)
    return {"plugin": plugin, "pid": pid, "healthy": healthy,
            "control": "connected" if control_connected else "disconnected",
            "symbols": symbols}


def encode_health(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=False) + "\n").encode()


def merge_expositions(texts: Iterable[str]) -> str:
    """Several plugins' /metrics as one exposition: each family declared once, in order.

    For ``render_prometheus`` output (a ``# HELP`` line opens each family); samples of the
    same family from every text follow its one HELP/TYPE pair.
    """
    order: list[str] = []
    heads: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for text in texts:
        current: str | None = None
        for line in text.splitlines():
            if line.startswith("# HELP "):
                current = line.split(" ", 3)[2]
                if current not in heads:
                    order.append(current)
                    heads[current] = [line]
                    samples[current] = []
            elif line.startswith("# TYPE ") and current is not None:
                if len(heads[current]) == 1:
                    heads[current].append(line)
            elif line and current is not None and not line.startswith("#"):
                samples[current].append(line)
    return "".join("\n".join([*heads[name], *samples[name]]) + "\n" for name in order)


# -- settings -------------------------------------------------------------------------

def _seconds(env: Mapping[str, str], name: str, default: float,
             problems: list[str]) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        problems.append(f"{name}={raw!r} is not a positive number of seconds; "
                        f"using {default:g}")
        return default
    return value


def settings_from_env(env: Mapping[str, str] | None = None) -> MetricsSettings | None:
    """The metrics settings, or None when metrics are off (DIR_ENV unset or empty).

    A bad threshold falls back to its default and is listed in ``problems`` (the
    exporter logs them); a relative directory is refused (ValueError): each plugin runs
    in its own folder, so it would name a different place per plugin.
    """
    env = os.environ if env is None else env
    directory = env.get(DIR_ENV, "").strip()
    if not directory:
        return None
    if not os.path.isabs(directory):
        raise ValueError(f"{DIR_ENV}={directory!r} must be an absolute path (each plugin "
                         "runs in its own folder, so a relative one differs per plugin)")
    problems: list[str] = []
    stuck = _seconds(env, STUCK_ENV, 30.0, problems)
    blocked = _seconds(env, BLOCKED_ENV, 30.0, problems)
    interval = _seconds(env, INTERVAL_ENV, 5.0, problems)
    raw = env.get(LATENCY_EVERY_ENV, "").strip()
    every = DEFAULT_LATENCY_EVERY
    if raw:
        if raw.isdigit() and 1 <= int(raw) <= 1_000_000:
            every = int(raw)
        else:
            problems.append(f"{LATENCY_EVERY_ENV}={raw!r} must be a whole number from 1 "
                            "(time every call) to 1000000; using 8")
    return MetricsSettings(directory, stuck, blocked, interval, tuple(problems), every)
