"""One kuiperd per SDK, driven through REST, and the rate and idle measurements on it.

Rates come from eKuiper's own rule metrics, read twice around a fixed window after a
warm-up: ``(count_end - count_start) / (t_end - t_start)``, each time taken halfway
through its status request. Every rule sets ``disableBufferFullDiscard`` so a fast
upstream waits for a slow operator instead of dropping (and logging) rows.
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.env import Sdk, log
from bench.report import SINK_CASES
from tests.e2e.kuiper import DEFAULT_VERSION, Kuiperd

SIM_CONF_KEY = "bench"
SIM_STREAM = "bsim"
RULE_OPTIONS = {"disableBufferFullDiscard": True}
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class RateSample:
    rule_id: str
    rate: float  # per second
    count: int
    seconds: float
    status: str
    exceptions: int
    plugin_cpu_s: float  # CPU time of the plugin process in the window
    kuiperd_cpu_s: float
    busy_cores: float  # the whole machine's busy cores in the window (/proc/stat)
    other_cores: float  # of which neither this kuiperd nor its plugin
    waited_s: float = 0.0  # time spent waiting for a quiet machine before kuiperd started

    @property
    def plugin_us_per_item(self) -> float:
        return 1e6 * self.plugin_cpu_s / self.count if self.count else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "plugin_us_per_item": self.plugin_us_per_item}


@dataclass
class ProcSample:
    rss_kb: int
    hwm_kb: int
    cpu_ticks: int
    threads: int
    ctx_switches: int


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return total - values[3] - values[4], total


def cpu_ticks(pid: int) -> int:
    """utime + stime (fields 14 and 15 of /proc/<pid>/stat) of a process, in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    after = stat[stat.rindex(")") + 2:].split()
    return int(after[11]) + int(after[12])


class QuietGate:
    """Waits (bounded, with a run-wide budget) until other processes leave the CPUs alone.

    The machine may be shared; a rate measured while something else keeps a core busy
    says little. Before each case's kuiperd starts, the gate samples the machine's busy
    cores for 0.5 s (nothing of ours runs then) and waits while they exceed ``threshold``.
    """

    def __init__(self, threshold: float = 0.3, max_wait: float = 10.0,
                 budget: float = 90.0) -> None:
        self.threshold = threshold
        self.max_wait = max_wait
        self.budget = budget

    def wait(self) -> float:
        start = time.monotonic()
        while True:
            b0, t0 = machine_jiffies()
            time.sleep(0.5)
            b1, t1 = machine_jiffies()
            cores = (os.cpu_count() or 1) * (b1 - b0) / max(t1 - t0, 1)
            waited = time.monotonic() - start
            if cores <= self.threshold or waited >= min(self.max_wait, self.budget):
                self.budget = max(0.0, self.budget - waited)
                return waited


def proc_sample(pid: int) -> ProcSample:
    """VmRSS/VmHWM, utime+stime and context switches (all threads) of a process."""
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    cpu = cpu_ticks(pid)
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split(":")[1])
        except OSError:
            continue
    return ProcSample(int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0]), cpu,
                      int(fields["Threads"]), switches)


class BenchKuiperd:
    """A kuiperd with one SDK's bench plugin dropped in, plus the streams every case uses."""

    def __init__(self, sdk: Sdk, home: Path, dist: Path, plugin_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.sdk = sdk
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        # One pythonBin per kuiperd: each SDK gets its own kuiperd (Go ignores it).
        python = sdk.python or Path(sys.executable)
        self.k = Kuiperd(DEFAULT_VERSION, home, dist,
                         env={"KUIPER__PORTABLE__PYTHONBIN": str(python), **(env or {})})
        self.k.lay_out()
        self.k.drop_in(plugin_dir)

    @property
    def source_stream(self) -> str:
        return f"bsrc_{self.sdk.tag}"

    @property
    def idle_stream(self) -> str:
        return f"bidle_{self.sdk.tag}"

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self.k.start()
        resp = self.k.put(f"/metadata/sources/simulator/confKeys/{SIM_CONF_KEY}",
                          {"data": [{"name": "benchmark"}], "interval": "1us", "loop": True})
        assert resp.status == 200, resp
        resp = self.k.post("/streams", {"sql": f'CREATE STREAM {SIM_STREAM} () WITH '
                                               f'(TYPE="simulator", CONF_KEY="{SIM_CONF_KEY}", '
                                               f'FORMAT="json")'})
        assert resp.status in (200, 201), resp
        self.attach()

    def attach(self) -> None:
        """Wait for this SDK's plugin to run and create its streams (``start`` does)."""
        deadline = time.monotonic() + 30
        while self.k.plugin_status(self.sdk.plugin).get("status") != "running":
            if time.monotonic() > deadline:
                raise RuntimeError(f"plugin {self.sdk.plugin} never ran: "
                                   f"{self.k.plugin_status(self.sdk.plugin)}\n{self.k.log()[-3000:]}")
            time.sleep(0.1)
        self.k.create_stream(self.source_stream, self.sdk.source, "bench")
        self.k.create_stream(self.idle_stream, self.sdk.idle_source, "bench")

    def sibling(self, sdk: Sdk, plugin_dir: Path) -> BenchKuiperd:
        """``sdk``'s bench plugin in this same kuiperd, its cases run as this one's are.

        Call before ``start``, and the sibling's ``attach`` after it; ``stop`` this one.
        Both SDKs run under the same pythonBin (this one's).
        """
        self.k.drop_in(plugin_dir)
        other = copy.copy(self)
        other.sdk = sdk
        return other

    def stop(self) -> None:
        pids = self.k.plugin_pids()
        self.k.stop()
        deadline = time.monotonic() + 5
        for pid in pids:
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                log(f"plugin process {pid} outlived kuiperd; killing it")
                os.kill(pid, 9)

    def plugin_pid(self) -> int:
        pids = self.k.plugin_pids(self.sdk.plugin)
        if len(pids) != 1:
            raise RuntimeError(f"expected one {self.sdk.plugin} process, found {pids}")
        return pids[0]

    # -- rules ------------------------------------------------------------------------

    def create_rule(self, rule_id: str, sql: str, actions: list[dict[str, Any]]) -> None:
        resp = self.k.post("/rules", {"id": rule_id, "sql": sql, "actions": actions,
                                      "options": RULE_OPTIONS})
        if resp.status not in (200, 201):
            raise RuntimeError(f"cannot create rule {rule_id}: {resp}")

    def delete_rule(self, rule_id: str) -> None:
        self.k.delete(f"/rules/{rule_id}")
        deadline = time.monotonic() + 10
        while self.k.get(f"/rules/{rule_id}/status").status == 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"rule {rule_id} was not deleted")
            time.sleep(0.05)

    def _read(self, rule_id: str, metric: str) -> tuple[int, float, dict[str, Any]]:
        before = time.monotonic()
        status = self.k.rule_status(rule_id)
        after = time.monotonic()
        if metric not in status:
            raise RuntimeError(f"rule {rule_id} has no metric {metric}: {sorted(status)[:40]}")
        return int(status[metric]), (before + after) / 2, status

    @contextmanager
    def running_rule(self, rule_id: str, sql: str, actions: list[dict[str, Any]],
                     metric: str) -> Iterator[None]:
        """A rule that runs (``metric`` has started counting) until the block ends."""
        self.create_rule(rule_id, sql, actions)
        try:
            deadline = time.monotonic() + 20
            while True:
                count, _, status = self._read(rule_id, metric)
                if count > 0:
                    break
                if time.monotonic() > deadline or str(status.get("status")) != "running":
                    raise RuntimeError(f"rule {rule_id} produced nothing: "
                                       f"{ {k: v for k, v in status.items() if 'exception' in k} }")
                time.sleep(0.05)
            yield
        finally:
            self.delete_rule(rule_id)

    def measure_rate(self, rule_id: str, sql: str, actions: list[dict[str, Any]],
                     metric: str, warmup: float, window: float) -> RateSample:
        """Run a rule, count ``metric`` over ``window`` seconds after ``warmup``, delete it.

        Also takes the CPU time of the plugin process and of kuiperd over the window, and
        how busy the whole machine was (to tell a noisy sample from a slow SDK).
        """
        assert self.k.proc is not None
        kuiperd = self.k.proc.pid
        with self.running_rule(rule_id, sql, actions, metric):
            time.sleep(warmup)
            plugin = self.plugin_pid()
            p0, k0, (b0, j0) = cpu_ticks(plugin), cpu_ticks(kuiperd), machine_jiffies()
            c0, t0, _ = self._read(rule_id, metric)
            time.sleep(window)
            c1, t1, status = self._read(rule_id, metric)
            p1, k1, (b1, j1) = cpu_ticks(plugin), cpu_ticks(kuiperd), machine_jiffies()
        exceptions = sum(int(v) for k, v in status.items() if k.endswith("_exceptions_total"))
        seconds = t1 - t0
        cores = os.cpu_count() or 1
        busy = cores * (b1 - b0) / max(j1 - j0, 1)
        plugin_s, kuiperd_s = (p1 - p0) / CLK_TCK, (k1 - k0) / CLK_TCK
        return RateSample(rule_id, (c1 - c0) / seconds, c1 - c0, seconds,
                          str(status.get("status")), exceptions, plugin_s, kuiperd_s, busy,
                          max(0.0, busy - (plugin_s + kuiperd_s) / seconds))

    def case_rule(self, case: str) -> tuple[str, list[dict[str, Any]], str]:
        """(sql, actions, metric) of a benchmark case: source, function or sink_*."""
        if case == "source":
            return (f"SELECT * FROM {self.source_stream}", [{"nop": {}}],
                    f"source_{self.source_stream}_0_records_in_total")
        if case == "function":
            return (f"SELECT {self.sdk.function}(name) AS r FROM {SIM_STREAM}", [{"nop": {}}],
                    "op_2_project_0_records_in_total")
        if case == "simulator":
            return (f"SELECT * FROM {SIM_STREAM}", [{"nop": {}}],
                    f"source_{SIM_STREAM}_0_records_in_total")
        send_single, require_ack = SINK_CASES[case]
        action = {self.sdk.sink: {"sendSingle": send_single, "requireAck": require_ack}}
        return (f"SELECT * FROM {SIM_STREAM}", [action],
                f"sink_{self.sdk.sink}_0_0_records_out_total")

    def rate(self, case: str, rule_id: str, warmup: float, window: float) -> RateSample:
        sql, actions, metric = self.case_rule(case)
        return self.measure_rate(rule_id, sql, actions, metric, warmup, window)

    def start_idle(self, rule_id: str) -> None:
        self.create_rule(rule_id, f"SELECT * FROM {self.idle_stream}", [{"nop": {}}])
        self.k.wait_status(rule_id, lambda s: s.get("status") == "running")


def measure_idle(benches: list[BenchKuiperd], seconds: float,
                 settle: float = 2.0) -> dict[str, dict[str, Any]]:
    """Run one idle source per SDK at once and watch each plugin process for ``seconds``."""
    rules = {}
    for bench in benches:
        rule_id = f"bench_{bench.sdk.tag}_idle"
        bench.start_idle(rule_id)
        rules[bench.sdk.tag] = rule_id
    time.sleep(settle)
    pids = {b.sdk.tag: b.plugin_pid() for b in benches}
    first = {tag: proc_sample(pid) for tag, pid in pids.items()}
    rss: dict[str, list[int]] = {tag: [] for tag in pids}
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        for tag, pid in pids.items():
            rss[tag].append(proc_sample(pid).rss_kb)
    elapsed = time.monotonic() - t0
    results: dict[str, dict[str, Any]] = {}
    for bench in benches:
        tag = bench.sdk.tag
        last = proc_sample(pids[tag])
        results[tag] = {
            "pid": pids[tag],
            "seconds": elapsed,
            "rss_mb_samples": [kb / 1024 for kb in rss[tag]],
            "rss_mb": last.rss_kb / 1024,
            "rss_mb_max": max(rss[tag]) / 1024,
            "hwm_mb": last.hwm_kb / 1024,
            "cpu_s": (last.cpu_ticks - first[tag].cpu_ticks) / CLK_TCK,
            "cpu_percent": 100 * (last.cpu_ticks - first[tag].cpu_ticks) / CLK_TCK / elapsed,
            "threads": last.threads,
            "wakeups_per_s": (last.ctx_switches - first[tag].ctx_switches) / elapsed,
        }
        bench.delete_rule(rules[tag])
    return results
