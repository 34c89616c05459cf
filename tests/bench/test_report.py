"""The targets bench/report.py computes from a run's results."""

from __future__ import annotations

from typing import Any

from bench import report


def results(**extra: Any) -> dict[str, Any]:
    """A run's results with nothing measured but what ``extra`` adds."""
    base: dict[str, Any] = {"ratios": report.compute_ratios({}), "rates": {},
                            "cold_start": {}, "idle": {}}
    base["ratios"].update({case: {"vs_official": None, "vs_go": None}
                           for case in ("source", "function", *report.SINK_CASES)})
    return {**base, **extra}


def target(res: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The one target whose name starts with ``prefix``."""
    (found,) = [t for t in report.compute_targets(res) if t["what"].startswith(prefix)]
    return found


def interleave_run(ours_us: float, baseline_us: float) -> dict[str, Any]:
    """One output of ``bench.micro interleave`` with the numpy pair only."""
    return {"ratios": {report.NUMPY_PAIR: {"us_per_emit": [ours_us, baseline_us],
                                           "ratio": baseline_us / ours_us}}}


def test_source_cpu_against_go_is_the_ratio_of_medians() -> None:
    """Plugin CPU per row of the source, this SDK over Go, is met at or below 1x."""
    cpu = {"source": {report.OURS: report.series([4.0, 5.0, 6.0]),
                      report.GO: report.series([6.0, 7.0, 8.0])}}
    found = target(results(plugin_cpu_us_per_item=cpu), "source plugin CPU")
    assert found["value"] == 5.0 / 7.0 and found["met"] is True
    assert "5.00 vs 7.00" in found["shown"]


def test_source_cpu_against_go_unmeasured_without_go() -> None:
    """A run without the Go baseline says so instead of passing or failing."""
    cpu = {"source": {report.OURS: report.series([4.0])}}
    found = target(results(plugin_cpu_us_per_item=cpu), "source plugin CPU")
    assert found["met"] is None and found["shown"] == "not measured"


def floor_rep(ours: float, floor: float) -> dict[str, Any]:
    """One repetition of the function floor case: both rates, back to back."""
    return {report.OURS: {"rate": ours, "plugin_us_per_item": 40.0},
            report.FLOOR: {"rate": floor, "plugin_us_per_item": 10.0}}


def test_function_floor_share_is_the_ratio_of_median_rates() -> None:
    """The function target is this SDK's median rate over the floor plugin's."""
    reps = [floor_rep(9_000, 10_000), floor_rep(8_000, 10_000), floor_rep(9_500, 10_000)]
    found = target(results(function_floor={"reps": reps}), "function rate vs the floor")
    assert abs(found["value"] - 0.9) < 1e-9 and found["met"] is False
    assert "9,000 of 10,000" in found["shown"]


def test_function_floor_sleeping_in_recv_is_a_target_of_its_own() -> None:
    """The SDK's rate over the C floor that sleeps in recv is its own target row."""
    reps = [{**floor_rep(9_000, 20_000), report.FLOOR_SLEEPING: {"rate": 6_000}}]
    found = target(results(function_floor={"reps": reps}), "function rate vs the C floor sl")
    assert found["value"] == 1.5 and found["met"] is True
    assert "9,000 of 6,000" in found["shown"]
    assert target(results(function_floor={"reps": reps}),
                  "function rate vs the floor")["met"] is False


def test_function_floor_pairs_only_complete_repetitions() -> None:
    """A repetition where one side failed gives no paired ratio."""
    reps = [floor_rep(9_600, 10_000), {report.FLOOR: {"rate": 1.0}}]
    ratio = report.floor_ratio({"function_floor": {"reps": reps}})
    assert ratio is not None and ratio["paired"] == [0.96]


def test_function_floor_unmeasured_without_a_compiler() -> None:
    """A run that could not build the floor plugin leaves the target unmeasured."""
    res = results(function_floor={"available": False, "reason": "no C compiler"})
    assert target(res, "function rate vs the floor")["met"] is None


def test_function_floor_table_shows_the_sleeping_floor_against_the_polling_one() -> None:
    """The C floor that sleeps in recv gets its own row, as a share of the polling floor."""
    reps = [{**floor_rep(9_000, 10_000), report.FLOOR_SLEEPING:
             {"rate": 5_000, "plugin_us_per_item": 14.0}}]
    lines = report._floor_markdown({"function_floor": {"reps": reps, "label": "C floor"}},
                                   {report.OURS: "this SDK"})
    (sleeping,) = [line for line in lines if "sleeping in recv (" in line]
    assert sleeping.startswith("| C floor, sleeping in recv") and sleeping.endswith("| 50% |")


def test_kuiperd_cpu_skips_samples_without_a_count() -> None:
    """A sample that counted nothing adds no division by zero and no empty series."""
    raw = {"function": {report.OURS: [{"kuiperd_cpu_s": 1.0, "count": 0}],
                        report.OFFICIAL: [{"kuiperd_cpu_s": 2.0, "count": 1_000}]}}
    per = report.kuiperd_us_per_item({"raw_rates": raw})
    assert list(per["function"]) == [report.OFFICIAL]
    assert per["function"][report.OFFICIAL]["median"] == 2_000.0


def test_numpy_target_is_the_median_interleaved_speed_up() -> None:
    """The numpy emit target takes the median ratio over the repetitions."""
    runs = [interleave_run(10.0, 25.0), interleave_run(10.0, 40.0), interleave_run(10.0, 35.0)]
    found = target(results(micro_numpy=report.numpy_series(runs)), "emit of a 100-float")
    assert found["value"] == 3.5 and found["met"] is True


def test_numpy_series_of_no_run_is_empty() -> None:
    """No successful interleave run leaves the target unmeasured."""
    assert report.numpy_series([]) == {}
    assert target(results(micro_numpy={}), "emit of a 100-float")["met"] is None


def metrics_case(ratios: list[float]) -> dict[str, Any]:
    """One case of the metrics cost's kuiperd A/B with these paired on/off ratios."""
    return {"cpu_ratio": sorted(ratios)[len(ratios) // 2],
            "cpu_ratio_range": [min(ratios), max(ratios)],
            "cpu_us_per_row_off": 4.0, "cpu_us_per_row_on": 4.1,
            "pairs": [{} for _ in ratios]}


def test_metrics_cost_is_met_below_five_percent_per_case() -> None:
    """Each metrics case is its own target: the median paired CPU ratio under 1.05x."""
    res = results(metrics_cost={"kuiperd": {"source": metrics_case([1.01, 1.03, 1.02]),
                                            "function": metrics_case([1.04, 1.08, 1.06])}})
    source = target(res, "source -> nop: plugin CPU per row, metrics")
    function = target(res, "revert() on simulator rows: plugin CPU per row, metrics")
    sink = target(res, "sink sendSingle=true requireAck=false: plugin CPU per row, metrics")
    assert (source["met"], function["met"], sink["met"]) == (True, False, None)
    assert "1.020x [1.010" in source["shown"] and "over 3 pairs" in source["shown"]
    assert sink["shown"] == "not measured"


def test_metrics_cost_of_the_function_without_its_poll_is_a_row_of_its_own() -> None:
    """The function's metrics cost with EKUIPER_FUNCTION_SPIN_US=0 gets its own target."""
    cost = {"cpu_ratio": 1.02, "cpu_ratio_range": [1.0, 1.04], "pairs": [{}] * 6,
            "cpu_us_per_row_off": 40.0, "cpu_us_per_row_on": 40.8}
    res = results(metrics_cost={"kuiperd": {"function_nopoll": cost}})
    found = target(res, "revert() on simulator rows (EKUIPER_FUNCTION_SPIN_US=0): plugin CPU")
    assert found["met"] is True and "over 6 pairs" in found["shown"]


def test_metrics_cost_of_the_sink_without_its_poll_is_a_row_of_its_own() -> None:
    """The sink's metrics cost with EKUIPER_SINK_SPIN_US=0 gets its own target, named so."""
    cost = {"cpu_ratio": 1.07, "cpu_ratio_range": [1.0, 1.1], "pairs": [{}] * 6,
            "cpu_us_per_row_off": 3.0, "cpu_us_per_row_on": 3.2}
    res = results(metrics_cost={"kuiperd": {"sink_nopoll": cost}})
    found = target(res, "sink sendSingle=true requireAck=false (EKUIPER_SINK_SPIN_US=0): "
                        "plugin CPU")
    assert found["met"] is False and "over 6 pairs" in found["shown"]
