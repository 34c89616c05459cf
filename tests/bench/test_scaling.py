"""The scaling case's plan, figures, summary and table (bench/scaling.py, bench/report.py)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import report, scaling
from tests.conftest import REPO


def readings(counts: list[tuple[int, int]], seconds: float = 5.0, ticks: int = 100,
             rss_kb: tuple[int, ...] = (10240, 20480), symbols: int = 2) -> scaling.Readings:
    """Readings of rules whose counts go from a to b over ``seconds`` each."""
    before = {f"r{i}": (a, 10.0 + i * 0.01) for i, (a, _) in enumerate(counts)}
    after = {f"r{i}": (b, 10.0 + seconds + i * 0.02) for i, (_, b) in enumerate(counts)}
    return scaling.Readings(before=before, after=after, cpu_window_s=seconds,
                            plugin_ticks=ticks, kuiperd_ticks=2 * ticks, busy_jiffies=50,
                            total_jiffies=100, rss_kb=list(rss_kb), threads=[3, 4],
                            switches=500, plugin_processes=1, not_running=0, exceptions=0,
                            symbols=symbols, cores=2, clk_tck=100)


def test_plan_runs_every_sdk_back_to_back_per_case() -> None:
    """Each (rep, kind, N) has every SDK exactly once, in consecutive steps."""
    steps = scaling.plan(("source", "function"), (1, 10, 50), ["py", "official"], 2)
    assert len(steps) == 2 * 2 * 3 * 2
    for i in range(0, len(steps), 2):
        pair = steps[i:i + 2]
        assert {s[:3] for s in pair} == {pair[0][:3]}
        assert sorted(s[3] for s in pair) == ["official", "py"]


def test_plan_flips_the_sdk_order_from_case_to_case() -> None:
    """The SDK that goes first alternates, so drift does not always hit the same one."""
    steps = scaling.plan(("source",), (1, 10, 50), ["py", "official"], 1)
    assert [steps[i][3] for i in range(0, len(steps), 2)] == ["py", "official", "py"]


def test_rule_rates_use_each_rules_own_timestamps() -> None:
    """A rule's rate is its count delta over its own pair of times."""
    rates = scaling.rule_rates({"a": (100, 1.0), "b": (0, 1.5)}, {"a": (600, 2.0), "b": (100, 3.5)})
    assert rates == {"a": 500.0, "b": 50.0}


def test_rule_rates_refuse_a_second_count_not_later() -> None:
    """Timestamps that do not move forward are an error naming the rule, not a rate."""
    with pytest.raises(ValueError, match="rule a"):
        scaling.rule_rates({"a": (0, 2.0)}, {"a": (5, 2.0)})


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 10**6)), min_size=1,
                max_size=60),
       st.floats(0.5, 30), st.integers(0, 10**5), st.integers(1, 60),
       st.lists(st.integers(1, 10**7), min_size=1, max_size=20))
def test_figures_are_consistent(counts: list[tuple[int, int]], seconds: float, ticks: int,
                                symbols: int, rss: list[int]) -> None:
    """Total = sum of rule rates; CPU per row x rows = CPU; per symbol x symbols = total."""
    counts = [(a, a + d) for a, d in counts]
    f = scaling.figures(readings(counts, seconds, ticks, tuple(rss), symbols))
    assert f["rules"] == len(counts)
    assert math.isclose(f["rate"], sum(f["rule_rates"]))
    assert f["rule_rate_min"] <= f["rate"] / len(counts) <= f["rule_rate_max"] * (1 + 1e-9)
    assert math.isclose(f["plugin_us_per_row"] * f["rate"] * seconds / 1e6, ticks / 100,
                        abs_tol=1e-9)
    assert math.isclose(f["rss_mb_per_symbol"] * symbols, max(rss) / 1024)
    assert math.isclose(f["threads_per_symbol"] * symbols, 4)


def test_figures_of_a_window_without_rows() -> None:
    """A window in which nothing moved gives zero per-row figures, not a division error."""
    f = scaling.figures(readings([(7, 7)]))
    assert f["rate"] == 0 and f["plugin_us_per_row"] == 0 and f["switches_per_row"] == 0


def test_figures_split_the_machine_load() -> None:
    """Other load = the machine's busy cores minus what the plugin and kuiperd used."""
    f = scaling.figures(readings([(0, 1000)], seconds=5.0, ticks=50))
    # 2 cores x 50/100 busy = 1.0; plugin 0.1 + kuiperd 0.2 cores.
    assert math.isclose(f["busy_cores"], 1.0) and math.isclose(f["other_cores"], 0.7)


def sample(rate: float, symbols: int, rss_mb: float, threads: int) -> dict[str, Any]:
    return {"rate": rate, "plugin_us_per_row": 10.0, "symbols": symbols, "plugin_cores": 0.5,
            "kuiperd_cores": 1.0, "kuiperd_us_per_row": 30.0, "other_cores": 0.1,
            "rss_mb": rss_mb, "rss_mb_per_symbol": rss_mb / symbols, "threads": threads,
            "threads_per_symbol": threads / symbols, "rule_rate_min": rate / symbols,
            "rule_rate_max": rate / symbols, "switches_per_row": 0.5, "setup_s": 1.0,
            "loadavg_1m": 1.0}


SAMPLES = {"source": {"py": {"1": [sample(1000, 1, 14, 3)], "10": [sample(2000, 10, 14.9, 12)],
                             "50": []}}}


def test_summary_sets_each_count_against_the_smallest() -> None:
    """vs_first is the rate over the smallest count's; marginal figures per added symbol."""
    row = scaling.summarize(SAMPLES)["source"]["py"]["10"]
    assert row["vs_first"] == 2.0
    assert math.isclose(row["marginal_rss_mb"], 0.1)
    assert row["marginal_threads"] == 1.0


def test_summary_leaves_out_a_count_with_no_samples() -> None:
    """A case that failed every time leaves a gap, not a row of zeros."""
    assert list(scaling.summarize(SAMPLES)["source"]["py"]) == ["1", "10"]


def test_started_symbols_counts_only_that_symbol() -> None:
    """kuiperd's "started symbol" lines are counted for the exact name, quotes and all."""
    log = ('level=info msg="started symbol benchsrc_scpy" caller=x\n'
           'level=info msg="started symbol benchsrc_scpy2" caller=x\n'
           'level=info msg="started symbol benchsrc_scpy" caller=x\n'
           'level=info msg="starting symbol benchsrc_scpy" caller=x\n')
    assert scaling.started_symbols(log, "benchsrc_scpy") == 2


def test_scaling_sdk_names_differ_from_the_other_cases() -> None:
    """The scaling plugin shares no plugin or symbol name with make bench's other cases."""
    from bench.env import Sdk

    ours = Sdk("py", "this SDK", "benchpy", None)
    mapped = scaling.scaling_sdk(ours)
    assert mapped.plugin == f"bench{mapped.tag}"  # benchmain.py derives the tag so
    assert {mapped.plugin, mapped.source, mapped.function}.isdisjoint(
        {ours.plugin, ours.source, ours.function})


SCALING = {"config": {"counts": [1, 10], "reps": 1, "window_s": 5, "warmup_s": 3},
           "labels": {"py": "this SDK"}, "loadavg_start": [1.5, 1, 1],
           "loadavg_end": [2.5, 1, 1], "samples": SAMPLES,
           "summary": scaling.summarize(SAMPLES)}


def test_scaling_table_has_a_row_per_sdk_and_count() -> None:
    """The table shows each (SDK, N) with its rate, ratio and per-symbol figures."""
    text = report.scaling_markdown(SCALING)
    rows = [line for line in text.splitlines() if line.startswith("| this SDK |")]
    assert len(rows) == 2
    assert "| 10 | 10 | 2,000 [2,000\u20132,000] | 2.00x |" in rows[1]
    assert "| 1.49 | 102 |" in rows[1]  # MB per symbol, marginal KB per added symbol


def test_scaling_table_notes_the_load_average() -> None:
    """The load average at both ends of the case is part of the report."""
    assert "at the start 1.50, 1.00, 1.00, at the end 2.50" in report.scaling_markdown(SCALING)


def test_main_report_includes_scaling_when_measured() -> None:
    """make bench's section shows the scaling table only when its run measured it."""
    recorded = json.loads((REPO / "bench" / "results" / "2026-11-28.json").read_text())
    assert "Scaling:" not in report.markdown(recorded)
    assert "Scaling:" in report.markdown({**recorded, "scaling": SCALING})


@pytest.mark.parametrize("argv", [["--counts", "1,x"], ["--counts", "0"],
                                  ["--kinds", "sink"]])
def test_bad_arguments_are_usage_errors(argv: list[str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A bad --counts or --kinds exits 2 with what to pass instead."""
    with pytest.raises(SystemExit) as exc:
        scaling.parse_args(argv)
    assert exc.value.code == 2
    assert argv[0] in capsys.readouterr().err
