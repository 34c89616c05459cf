"""ekuiper._metrics: counters, histogram, health verdicts, rendering, settings."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from ekuiper import _metrics
from ekuiper._metrics import (
    BUCKETS_S,
    COUNTERS,
    Health,
    MetricsSettings,
    SymbolFacts,
    SymbolStats,
    evaluate,
    health_document,
    render_prometheus,
    settings_from_env,
)

SETTINGS = MetricsSettings("/m", stuck_s=2.0, blocked_s=3.0)
LABELS = {"plugin": "p", "kind": "sink", "symbol": "s", "rule": "r", "op": "o",
          "instance": "0"}
NOW_NS = 10**12
NOW = 1_000_000.0


def facts(kind: str = "sink", alive: bool = True, stopping: bool = False,
          raised: bool = False, hears: float = 0.0) -> SymbolFacts:
    return SymbolFacts(kind, alive, stopping, raised, hears)


def stats(kind: str = "sink", **values: int) -> SymbolStats:
    s = SymbolStats({**LABELS, "kind": kind}, NOW)
    for name, value in values.items():
        setattr(s, name, value)
    return s


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(x.name, frozenset(x.labels.items())): x.value
            for family in text_string_to_metric_families(text) for x in family.samples}


# -- counters and histogram -------------------------------------------------------------

def test_every_counter_slot_is_annotated() -> None:
    """Each COUNTERS row has its SymbolStats annotation, starting at zero."""
    s = SymbolStats(LABELS)
    for slot, *_ in COUNTERS:
        assert slot in SymbolStats.__annotations__
        assert s.counter(slot) == 0


def test_observe_puts_a_bound_in_its_own_bucket() -> None:
    """A latency equal to a bucket's bound counts in that bucket (le is inclusive)."""
    s = SymbolStats(LABELS)
    s.observe(round(BUCKETS_S[3] * 1e9))
    assert s.hist[3] == 1 and sum(s.hist) == 1


def test_observe_beyond_the_last_bound_is_inf() -> None:
    """A latency above the last bound lands in the +Inf bucket."""
    s = SymbolStats(LABELS)
    s.observe(round(BUCKETS_S[-1] * 1e9) + 1)
    assert s.hist[-1] == 1


def test_fail_counts_and_keeps_the_last_error() -> None:
    """fail() counts an error and keeps its (bounded) text and time."""
    s = SymbolStats(LABELS)
    s.fail("first", 1.0)
    s.fail("x" * 1000, 2.0)
    assert s.errors == 2 and s.last_error == "x" * 500 and s.last_error_at == 2.0


def test_sample_moves_last_activity_only_on_change() -> None:
    """The exporter's sample notes the time activity last changed, not every tick."""
    s = SymbolStats(LABELS, 5.0)
    s.sample(6.0)
    assert s.last_activity == 5.0
    s.rows += 1
    s.sample(7.0)
    s.sample(8.0)
    assert s.last_activity == 7.0


# -- health -----------------------------------------------------------------------------

def test_running_symbol_is_healthy() -> None:
    """A symbol with activity and nothing wrong is running and healthy."""
    health = evaluate(stats(rows=3), facts(), NOW_NS, NOW, SETTINGS)
    assert health == Health("running", "") and health.healthy


def test_no_activity_yet_is_starting() -> None:
    """A started symbol that has done nothing yet is 'starting', which is healthy."""
    assert evaluate(stats(), facts(), NOW_NS, NOW, SETTINGS).state == "starting"


def test_open_raised_is_failed() -> None:
    """A runtime whose open() raised is failed, with the error in the detail."""
    s = stats()
    s.fail("ConnectionError: db down", NOW)
    s.open_failed = True
    health = evaluate(s, facts(), NOW_NS, NOW, SETTINGS)
    assert health.state == "failed" and "db down" in health.detail and not health.healthy


def test_call_past_the_stuck_limit_is_stuck() -> None:
    """A call in progress with no activity for longer than stuck_s is stuck; under, not."""
    s = stats(rows=1)
    s.in_call = True
    s.last_activity = NOW - 2.5
    assert evaluate(s, facts(), NOW_NS, NOW, SETTINGS).state == "stuck"
    s.last_activity = NOW - 1.5
    assert evaluate(s, facts(), NOW_NS, NOW, SETTINGS).state == "running"


def test_quiet_without_a_call_is_not_stuck() -> None:
    """A sink with nothing to do for long is idle, not stuck."""
    s = stats(rows=1)
    s.last_activity = NOW - 100
    assert evaluate(s, facts(), NOW_NS, NOW, SETTINGS).state == "running"


def test_emit_waiting_past_the_limit_is_blocked() -> None:
    """A source emit waiting on eKuiper longer than blocked_s is blocked."""
    s = stats("source", rows=1)
    s.blocked_since_ns = NOW_NS - int(4e9)
    assert evaluate(s, facts("source"), NOW_NS, NOW, SETTINGS).state == "blocked"


def test_source_open_returned_quiet_is_returned() -> None:
    """A returned open() with no emit for longer than stuck_s is 'returned'."""
    s = stats("source", rows=5)
    s.last_activity = NOW - 10
    health = evaluate(s, facts("source", alive=False), NOW_NS, NOW, SETTINGS)
    assert health.state == "returned" and not health.healthy


def test_source_open_returned_with_emitting_threads_is_running() -> None:
    """A returned open() whose threads emitted recently is still running."""
    s = stats("source", rows=5)
    s.last_activity = NOW - 1
    assert evaluate(s, facts("source", alive=False), NOW_NS, NOW, SETTINGS).state == "running"


def test_source_open_returned_before_its_first_row_is_running() -> None:
    """A returned open() not emitted from yet is running until stuck_s (callbacks emit later)."""
    s = stats("source", calls=1)
    s.last_activity = NOW - 1
    assert evaluate(s, facts("source", alive=False), NOW_NS, NOW, SETTINGS).state == "running"


def test_sink_retrying_is_not_stuck() -> None:
    """A sink in its retry backoff counts each retry as activity, so it is not stuck."""
    s = stats(rows=1)
    s.sample(NOW)
    s.last_activity = NOW - 10
    s.in_call = True
    s.retries += 1
    s.sample(NOW)
    assert evaluate(s, facts(), NOW_NS, NOW + 1.5, SETTINGS).state == "running"


def test_ended_loop_is_lost() -> None:
    """A sink or function whose loop ended while not stopping is lost."""
    for kind in ("sink", "function"):
        assert evaluate(stats(kind, rows=1), facts(kind, alive=False), NOW_NS, NOW,
                        SETTINGS).state == "lost"


def test_stopping_symbol_without_thread_is_not_lost() -> None:
    """A loop that ended because the symbol is stopping is no failure."""
    health = evaluate(stats(rows=1), facts(alive=False, stopping=True), NOW_NS, NOW, SETTINGS)
    assert health.state == "running"


def test_function_not_heard_from_is_lost() -> None:
    """A function whose loop has not beaten (no request, no idle timeout) for keepalive +
    blocked_s is lost: its channel is down, being redialled."""
    s = stats("function", rows=1)
    s.last_activity = NOW - 9
    assert evaluate(s, facts("function", hears=5.0), NOW_NS, NOW, SETTINGS).state == "lost"
    s.last_activity = NOW - 7
    assert evaluate(s, facts("function", hears=5.0), NOW_NS, NOW, SETTINGS).state == "running"


def test_every_state_has_a_verdict() -> None:
    """The states table says healthy or not for each state evaluate can return."""
    assert set(_metrics.HEALTHY_STATES) == {"running", "starting", "returned", "failed",
                                            "blocked", "stuck", "lost"}


# -- rendering --------------------------------------------------------------------------

def test_render_parses_with_the_reference_parser() -> None:
    """The text format parses with prometheus_client's parser, values as counted."""
    s = stats(calls=4, rows=4, bytes=100, acks_ok=3, acks_error=1, errors=1)
    s.observe(2_000)
    s.observe(3_000_000)
    text = render_prometheus("p", [(s, Health("running", ""))], True)
    got = samples(text)
    base = frozenset(LABELS.items())
    assert got[("ekuiper_plugin_rows_total", base)] == 4
    assert got[("ekuiper_plugin_acks_total", base | {("result", "error")})] == 1
    assert got[("ekuiper_plugin_latency_seconds_count", base)] == 2
    assert got[("ekuiper_plugin_latency_seconds_bucket", base | {("le", "0.001")})] == 1
    assert got[("ekuiper_plugin_latency_seconds_bucket", base | {("le", "+Inf")})] == 2
    assert math.isclose(got[("ekuiper_plugin_latency_seconds_sum", base)], 0.003002)
    assert got[("ekuiper_plugin_control_connected", frozenset({("plugin", "p")}))] == 1
    assert got[("ekuiper_plugin_healthy", base | {("state", "running")})] == 1


def test_render_shows_acks_for_sinks_only() -> None:
    """acks_total has no series for sources and functions."""
    text = render_prometheus("p", [(stats("source"), Health("running", ""))], True)
    assert "ekuiper_plugin_acks_total{" not in text
    assert "ekuiper_plugin_latency_seconds_bucket{" not in text


@given(st.text(min_size=0, max_size=40))
def test_any_label_value_survives_rendering(rule: str) -> None:
    """A rule id with quotes, backslashes or newlines comes back as it was."""
    s = SymbolStats({**LABELS, "rule": rule})
    families = list(text_string_to_metric_families(
        render_prometheus("p", [(s, Health("running", ""))], False)))
    rows = [x for f in families if f.name == "ekuiper_plugin_rows" for x in f.samples]
    assert [x.labels["rule"] for x in rows] == [rule]


def test_health_document_is_unhealthy_when_any_symbol_is() -> None:
    """One unhealthy symbol makes the plugin unhealthy; its detail and error are shown."""
    good, bad = stats(rows=1), stats(rows=1)
    bad.fail("boom", NOW - 3)
    document = health_document("p", 7, [(good, Health("running", "")),
                                         (bad, Health("stuck", "too long"))], True, NOW)
    assert document["healthy"] is False
    assert document["symbols"][1] == {**LABELS, "state": "stuck", "healthy": False,
                                      "detail": "too long", "last_activity_s_ago": 0.0,
                                      "last_error": "boom", "last_error_s_ago": 3.0}
    json.loads(_metrics.encode_health(document))


def test_health_document_is_unhealthy_when_control_is_down() -> None:
    """With the control channel down, the plugin is unhealthy even without symbols."""
    document = health_document("p", 7, [], False, NOW)
    assert document["healthy"] is False and document["control"] == "disconnected"


# -- settings ---------------------------------------------------------------------------

def test_settings_off_without_the_directory() -> None:
    """No (or an empty) EKUIPER_PLUGIN_METRICS_DIR: metrics are off."""
    assert settings_from_env({}) is None
    assert settings_from_env({_metrics.DIR_ENV: "  "}) is None


def test_settings_refuse_a_relative_directory() -> None:
    """A relative directory is refused, saying why."""
    with pytest.raises(ValueError, match="must be an absolute path"):
        settings_from_env({_metrics.DIR_ENV: "metrics"})


@pytest.mark.parametrize("bad", ["abc", "-1", "0", "nan", "inf"])
def test_bad_threshold_falls_back_and_says_so(bad: str) -> None:
    """A threshold that is not a positive number keeps its default and is reported."""
    settings = settings_from_env({_metrics.DIR_ENV: "/m", _metrics.STUCK_ENV: bad})
    assert settings is not None and settings.stuck_s == 30.0
    assert settings.problems == (f"{_metrics.STUCK_ENV}={bad!r} is not a positive number "
                                 "of seconds; using 30",)


def test_good_thresholds_are_taken() -> None:
    """Thresholds and the textfile interval come from their variables."""
    settings = settings_from_env({_metrics.DIR_ENV: "/m", _metrics.STUCK_ENV: "2",
                                  _metrics.BLOCKED_ENV: "3.5", _metrics.INTERVAL_ENV: "1"})
    assert settings == MetricsSettings("/m", 2.0, 3.5, 1.0, (), 32)


@pytest.mark.parametrize("bad", ["0", "-2", "x", "1.5", "99999999"])
def test_bad_latency_sample_falls_back_and_says_so(bad: str) -> None:
    """A latency sample that is not a whole number from 1 keeps 32 and is reported."""
    settings = settings_from_env({_metrics.DIR_ENV: "/m", _metrics.LATENCY_EVERY_ENV: bad})
    assert settings is not None and settings.latency_every == 32
    assert "must be a whole number from 1" in settings.problems[0]


def test_latency_sample_is_taken() -> None:
    """EKUIPER_PLUGIN_LATENCY_SAMPLE=1 times every call."""
    settings = settings_from_env({_metrics.DIR_ENV: "/m", _metrics.LATENCY_EVERY_ENV: "1"})
    assert settings is not None and settings.latency_every == 1


def test_lifecycle_and_cli_name_the_same_variable() -> None:
    """lifecycle and the CLI spell out DIR_ENV (to import nothing); they agree."""
    from ekuiper._cli import commands
    from ekuiper._runtime import lifecycle
    assert lifecycle.METRICS_DIR_ENV == commands.METRICS_DIR_ENV == _metrics.DIR_ENV


@given(st.dictionaries(st.sampled_from([_metrics.DIR_ENV, _metrics.STUCK_ENV,
                                        _metrics.BLOCKED_ENV, _metrics.INTERVAL_ENV,
                                        _metrics.LATENCY_EVERY_ENV]),
                       st.text(max_size=12)))
def test_any_environment_gives_settings_or_a_clear_refusal(env: dict[str, str]) -> None:
    """Whatever the variables hold: settings with positive values, None, or a ValueError."""
    try:
        settings = settings_from_env(env)
    except ValueError as exc:
        assert "must be an absolute path" in str(exc)
        return
    if settings is not None:
        assert settings.stuck_s > 0 and settings.blocked_s > 0 and settings.interval_s > 0
        assert settings.latency_every >= 1


def test_merged_expositions_declare_each_family_once() -> None:
    """Two plugins' scrapes merge into one valid exposition holding both's samples."""
    a, b = SymbolStats({**LABELS, "plugin": "a"}), SymbolStats({**LABELS, "plugin": "b"})
    a.rows, b.rows = 1, 2
    one = render_prometheus("a", [(a, Health("running", ""))], True)
    two = render_prometheus("b", [(b, Health("running", ""))], False)
    merged = _metrics.merge_expositions([one, two])
    assert merged.count("# TYPE ekuiper_plugin_rows_total counter") == 1
    got = samples(merged)
    rows = {dict(labels)["plugin"]: value for (name, labels), value in got.items()
            if name == "ekuiper_plugin_rows_total"}
    assert rows == {"a": 1, "b": 2}


def test_merging_nothing_is_empty() -> None:
    """No plugin answering: an empty exposition."""
    assert _metrics.merge_expositions([]) == ""
