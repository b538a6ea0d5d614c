"""The monitor's pure parts: reading the request log, window maths, percentiles, error rates, rules, alerts."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from flightdelay.core.config import MonitorParams, parse_params
from flightdelay.monitoring import alerts, rules, windows
from flightdelay.monitoring.requestlog import BadLine, Skipped, parse_request, read_requests
from tests.default_params import default_params
from tests.monitoring_fakes import FakePredictor, log_line

T0 = dt.datetime(2013, 12, 1, 10, 0, tzinfo=dt.UTC)


def summaries(lines: list[str], window: str | int = "1h", reference=None, min_psi_rows: int = 1):
    skipped = Skipped()
    mp = MonitorParams(window=window)
    out = list(
        windows.windows(read_requests(lines, skipped), window, mp.window_seconds(), reference, min_psi_rows, skipped)
    )
    return out, skipped


def test_a_log_line_parses_into_a_request():
    request = parse_request(log_line(200, 3.5, T0, [0.25, 0.5]), line=7)
    assert request.time == T0 and request.status == 200 and request.latency_ms == 3.5
    assert request.predictions == (0.25, 0.5) and request.line == 7 and request.features is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "200"}, "'status' is \"200\", not int"),
        ({"time": "2013-12-01T10:00:00"}, "not UTC ISO-8601 ending in Z"),
        ({"latency_ms": -1}, "not a finite number >= 0"),
        ({"predictions": [0.1, "x"]}, "'predictions' holds something other than numbers"),
        ({"features": [1, 2]}, "'features' is not an object"),
        ({"status": True}, "not int"),
    ],
)
def test_a_bad_line_names_the_key_and_the_rule(change, message):
    entry = {**json.loads(log_line(200, 1.0, T0, [0.5])), **change}
    with pytest.raises(BadLine, match=message):
        parse_request(json.dumps(entry))


def test_malformed_lines_are_counted_with_their_line_numbers_not_fatal():
    lines = [log_line(200, 1.0, T0), "{torn", "", "[1]", log_line(200, 2.0, T0), json.dumps({"time": "x"})]
    out, skipped = summaries(lines)
    assert out[0]["requests"] == 2
    assert skipped.count == 3
    assert skipped.examples[0] == "line 2: not JSON (a torn or hand-edited line?)"
    assert skipped.examples[1] == "line 4: not a JSON object"
    assert skipped.examples[2].startswith("line 6: no key")


def test_nearest_rank_percentiles_are_observed_values():
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert windows.nearest_rank(values, 50) == 50.0
    assert windows.nearest_rank(values, 95) == 95.0
    assert windows.nearest_rank(values, 99) == 99.0
    assert windows.nearest_rank([7.0], 99) == 7.0
    assert windows.nearest_rank([1.0, 2.0, 3.0], 50) == 2.0
    assert windows.nearest_rank([], 50) is None


def test_time_windows_are_aligned_hours_with_error_rates_and_percentiles():
    lines = []
    for i in range(100):  # 10:00-10:59: latencies 1..100 ms, one 500 and two 422s
        status = 500 if i == 0 else 422 if i in (1, 2) else 200
        lines.append(log_line(status, float(i + 1), T0 + dt.timedelta(seconds=30 * i), n=i))
    lines.append(log_line(200, 5.0, T0 + dt.timedelta(minutes=50), path="/health"))
    lines.append(log_line(200, 9.0, T0 + dt.timedelta(hours=2, minutes=5)))  # 12:00 window; 11:00 is empty
    out, skipped = summaries(lines)
    assert skipped.count == 0
    first, second = out
    assert (first["start"], first["end"]) == ("2013-12-01T10:00:00.000Z", "2013-12-01T11:00:00.000Z")
    assert (second["start"], second["end"]) == ("2013-12-01T12:00:00.000Z", "2013-12-01T13:00:00.000Z")
    assert first["requests"] == 100 and first["other_requests"] == 1 and second["requests"] == 1
    assert (first["errors"], first["client_errors"]) == (1, 2)
    assert first["error_rate"] == 0.01 and first["client_error_rate"] == 0.02
    assert first["latency_ms"] == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}


def test_time_windows_split_requests_at_the_hour():
    lines = [log_line(200, float(i + 1), T0 + dt.timedelta(minutes=i), n=i) for i in range(90)]  # 10:00..11:29
    lines[5] = log_line(500, 6.0, T0 + dt.timedelta(minutes=5))
    lines[6] = log_line(404, 7.0, T0 + dt.timedelta(minutes=6))
    lines.append(log_line(200, 1.0, T0 + dt.timedelta(minutes=10), path="/metrics"))
    out, _ = summaries(lines)
    assert [w["requests"] for w in out] == [60, 30]
    first = out[0]
    assert first["errors"] == 1 and first["client_errors"] == 1 and first["other_requests"] == 1
    assert first["error_rate"] == pytest.approx(1 / 60) and first["client_error_rate"] == pytest.approx(1 / 60)
    assert first["latency_ms"] == {"p50": 30.0, "p95": 57.0, "p99": 60.0, "max": 60.0}
    assert out[1]["latency_ms"]["p50"] == 75.0  # 61..90
    assert first["model_hashes"] == [FakePredictor.package_hash]


def test_count_windows_hold_n_scoring_requests_and_span_their_times():
    lines = [log_line(200, 1.0, T0 + dt.timedelta(seconds=i), n=i) for i in range(25)]
    lines.insert(3, log_line(200, 1.0, T0, path="/health"))
    out, _ = summaries(lines, window=10)
    assert [w["requests"] for w in out] == [10, 10, 5]
    assert out[0]["other_requests"] == 1
    assert (out[1]["start"], out[1]["end"]) == ("2013-12-01T10:00:10.000Z", "2013-12-01T10:00:19.000Z")


def test_a_line_slightly_out_of_order_is_kept_and_one_after_its_window_was_written_is_skipped():
    hour = dt.timedelta(hours=1)
    lines = [
        log_line(200, 1.0, T0),
        log_line(200, 1.0, T0 + hour),
        log_line(200, 1.0, T0 + dt.timedelta(minutes=59)),  # one window late: kept
        log_line(200, 1.0, T0 + 3 * hour),  # writes 10:00
        log_line(200, 1.0, T0 + dt.timedelta(minutes=1)),  # its window is written: skipped
    ]
    out, skipped = summaries(lines)
    assert [w["requests"] for w in out] == [2, 1, 1]
    assert skipped.count == 1 and skipped.examples[0].startswith("line 5: 2013-12-01T10:01:00.000Z arrived after")


def test_windows_are_written_as_the_log_moves_on():
    """Streaming: a window is yielded before the rest of the log is read."""
    consumed = []

    def lines():
        for i in range(5):
            consumed.append(i)
            yield log_line(200, 1.0, T0 + dt.timedelta(hours=i))

    skipped = Skipped()
    stream = windows.windows(read_requests(lines(), skipped), "1h", 3600, None, 1, skipped)
    first = next(stream)
    assert first["start"] == "2013-12-01T10:00:00.000Z"
    assert consumed == [0, 1, 2]


def test_psi_of_predictions_and_logged_features_against_the_reference():
    predictor = FakePredictor()
    lines = [
        log_line(200, 1.0, T0, [0.9] * 400, {"dep_hour": [22] * 400, "distance": [2400.0] * 400, "unknown": [1] * 400}),
        log_line(
            200, 1.0, T0 + dt.timedelta(seconds=1), [0.9] * 200, {"dep_hour": [22] * 200, "distance": [2400] * 200}
        ),
    ]
    out, _ = summaries(lines, reference=predictor.reference, min_psi_rows=500)
    psi = out[0]["psi"]
    assert out[0]["rows"] == 600
    assert set(psi["features"]) == {"dep_hour", "distance"}  # only columns the reference knows
    assert psi["prediction"] > 1 and psi["features"]["dep_hour"] > 1
    too_few, _ = summaries(lines[:1], reference=predictor.reference, min_psi_rows=500)
    assert too_few[0]["psi"] == {"prediction": None, "features": {}}


def window(**change):
    base = {
        "start": "2013-12-01T10:00:00.000Z",
        "end": "2013-12-01T11:00:00.000Z",
        "requests": 200,
        "error_rate": 0.0,
        "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0},
        "psi": {"prediction": 0.01, "features": {"month": 5.0, "distance": 0.05}},
    }
    return {**base, **change}


MP = MonitorParams(
    max_error_rate=0.01, max_p99_ms=100, max_psi=0.2, max_feature_psi=0.2, expected=("month",), min_requests=100
)


def test_a_quiet_window_breaks_no_rule_and_expected_features_never_alert():
    assert rules.judge(window(), MP) == []


@pytest.mark.parametrize(
    ("change", "rule", "subject", "value"),
    [
        ({"error_rate": 0.015}, "max_error_rate", "requests", 0.015),
        ({"latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 150.0, "max": 151.0}}, "max_p99_ms", "latency", 150.0),
        ({"psi": {"prediction": 0.3, "features": {}}}, "max_psi", "prediction", 0.3),
        ({"psi": {"prediction": 0.1, "features": {"distance": 0.25}}}, "max_feature_psi", "distance", 0.25),
    ],
)
def test_each_threshold_crossed_is_a_breach(change, rule, subject, value):
    (breach,) = rules.judge(window(**change), MP)
    assert (breach.rule, breach.subject, breach.value) == (rule, subject, value)
    assert breach.start == "2013-12-01T10:00:00.000Z"


def test_feature_psi_is_not_judged_without_max_feature_psi():
    drifted = window(psi={"prediction": 0.1, "features": {"distance": 5.0}})
    assert rules.judge(drifted, MonitorParams(min_requests=100)) == []
    assert [b.subject for b in rules.judge(drifted, MP)] == ["distance"]


def test_at_the_threshold_is_not_a_breach_and_small_windows_are_not_judged():
    assert rules.judge(window(error_rate=0.01), MP) == []
    assert rules.judge(window(requests=99, error_rate=0.5), MP) == []


def test_monitor_params_parse_with_a_time_or_a_count_window():
    assert parse_params(default_params()).monitor.window_seconds() == 3600
    assert parse_params(default_params({"monitor.window": 500})).monitor.window_seconds() is None
    assert MonitorParams(window="15m").window_seconds() == 900


@pytest.mark.parametrize(
    ("key", "value"), [("window", "1 hour"), ("window", 0), ("max_error_rate", 2), ("max_p99_ms", 0)]
)
def test_bad_monitor_params_are_rejected_naming_the_key(key, value):
    from flightdelay.core.config import ConfigError

    with pytest.raises(ConfigError, match=f"monitor.{key}"):
        parse_params(default_params({f"monitor.{key}": value}))


def an_alert():
    breaches = rules.judge(window(error_rate=0.02, psi={"prediction": 0.4, "features": {}}), MP)
    return alerts.build_alert(breaches, {"name": "model-ab", "hash": "ab" * 32}, "logs/requests.jsonl", 3)


def test_the_alert_names_rule_value_threshold_window_and_package():
    alert = an_alert()
    assert alert["windows"] == 3 and alert["windows_breached"] == 1
    assert alert["breaches"][0] == {
        "rule": "max_error_rate",
        "subject": "requests",
        "value": 0.02,
        "threshold": 0.01,
        "window": {"start": "2013-12-01T10:00:00.000Z", "end": "2013-12-01T11:00:00.000Z"},
    }
    text = alerts.render_markdown(alert)
    assert "| `max_psi` | prediction | 0.4 | 0.2 | 2013-12-01T10:00:00.000Z .. 2013-12-01T11:00:00.000Z |" in text
    assert "`model-ab`" in text and "logs/requests.jsonl" in text


def test_the_alert_file_name_is_stable_for_the_same_alert(tmp_path):
    first = alerts.write_alert(tmp_path, an_alert())
    second = alerts.write_alert(tmp_path, an_alert())
    assert first == second and first.name.startswith("monitor-20131201T1000-")
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".md"]
    assert json.loads(first.with_suffix(".json").read_text()) == an_alert()


def test_the_webhook_message_is_slack_compatible():
    message = alerts.slack_message(an_alert(), "reports/alerts/x.md")
    assert set(message) == {"text", "blocks"}
    assert message["text"].startswith("flightdelay monitor: 2 threshold breach(es) (max_error_rate, max_psi)")
    assert all(block["type"] in ("section", "context") for block in message["blocks"])
    assert "reports/alerts/x.md" in json.dumps(message)
