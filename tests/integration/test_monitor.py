"""`flightdelay monitor` and `flightdelay replay` end to end on 127.0.0.1: a stand-in service that logs requests per
the contract, a fake predictor with a training reference, a webhook receiver (tests/monitoring_fakes.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from flightdelay import cli
from flightdelay.monitoring import monitor
from tests.default_params import default_params, write_params
from tests.monitoring_fakes import (
    FakePredictor,
    flights,
    log_line,
    minutes,
    stand_in_service,
    webhook_receiver,
    write_month,
)

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2013, 12, 1, 10, 0, tzinfo=dt.UTC)
FAST_WEBHOOK = {"attempts": 3, "initial_wait": 0.01, "max_wait": 0.05, "timeout_s": 5}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working folder with params (short webhook waits, small windows judged) and the fake predictor."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    changes = {
        "data.schema": str(REPO / "config" / "schema.yaml"),
        "data.raw_dir": str(tmp_path / "raw"),
        "monitor.min_requests": 20,
        "monitor.min_psi_rows": 200,
        "monitor.max_feature_psi": 0.2,
        "monitor.webhook": FAST_WEBHOOK,
    }
    write_params(tmp_path / "params.yaml", default_params(changes))
    monkeypatch.setattr(monitor, "load_predictor", lambda path: FakePredictor())
    (tmp_path / "pkg").mkdir()
    return tmp_path


def write_log(path: Path, errors: int, requests: int = 100) -> Path:
    lines = [
        log_line(500 if i < errors else 200, float(i % 50), T0 + dt.timedelta(seconds=20 * i)) for i in range(requests)
    ]
    path.write_text("\n".join([*lines, "{not json"]) + "\n")
    return path


def run_monitor(workdir: Path, log: Path, *extra: str) -> int:
    return cli.main(
        ["monitor", "--request-log", str(log), "--package", "pkg", "--out", "reports/monitoring.jsonl",
         "--alerts", "alerts", *extra]
    )  # fmt: skip


def test_a_quiet_log_writes_its_windows_and_no_alert(workdir, capfd):
    assert run_monitor(workdir, write_log(workdir / "requests.jsonl", errors=1)) == 0
    lines = (workdir / "reports" / "monitoring.jsonl").read_text().splitlines()
    window = json.loads(lines[0])
    assert window["requests"] == 100 and window["error_rate"] == 0.01 and window["breaches"] == []
    assert lines[0] == json.dumps(window, sort_keys=True)
    assert not (workdir / "alerts").exists()
    assert "skipped 1 line(s)" in capfd.readouterr().err


def test_crossing_a_threshold_writes_the_alert_first_and_exits_non_zero(workdir, capfd):
    log = write_log(workdir / "requests.jsonl", errors=2)
    assert run_monitor(workdir, log) == 1
    (alert_json,) = (workdir / "alerts").glob("*.json")
    alert = json.loads(alert_json.read_text())
    assert alert["package"] == {"name": FakePredictor.name, "hash": FakePredictor.package_hash}
    assert [(b["rule"], b["value"], b["threshold"]) for b in alert["breaches"]] == [("max_error_rate", 0.02, 0.01)]
    assert "`max_error_rate`" in alert_json.with_suffix(".md").read_text()
    err = capfd.readouterr().err
    assert "5xx error rate 0.02 > 0.01 (max_error_rate)" in err and f"alert: alerts/{alert_json.stem}.md" in err


def test_the_output_and_the_figure_are_the_same_bytes_for_the_same_log(workdir):
    log = write_log(workdir / "requests.jsonl", errors=0)
    outputs = []
    for _ in range(2):
        assert run_monitor(workdir, log, "--figure", "fig.png") == 0
        outputs.append(((workdir / "reports" / "monitoring.jsonl").read_bytes(), (workdir / "fig.png").read_bytes()))
    assert outputs[0] == outputs[1]
    assert outputs[0][1].startswith(b"\x89PNG") and b"Software" not in outputs[0][1]


def test_the_webhook_is_retried_until_it_answers(workdir, monkeypatch, capfd):
    with webhook_receiver(fail_first=2) as (url, received):
        monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
        assert run_monitor(workdir, write_log(workdir / "requests.jsonl", errors=5)) == 1
    assert len(received) == 3  # two 500s, then 200
    assert received[0] == received[2] and received[0]["text"].startswith("flightdelay monitor: 1 threshold breach")
    err = capfd.readouterr().err
    assert "posted to the webhook (ALERT_WEBHOOK_URL) in 3 attempt(s)" in err
    assert "secret-token-xyz" not in err and "127.0.0.1" not in err


def test_a_webhook_that_keeps_failing_never_loses_the_alert_and_never_shows_its_url(workdir, monkeypatch, capfd):
    with webhook_receiver(fail_first=-1) as (url, received):
        monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
        assert run_monitor(workdir, write_log(workdir / "requests.jsonl", errors=5)) == 1
    assert len(received) == FAST_WEBHOOK["attempts"]
    assert len(list((workdir / "alerts").glob("monitor-*.json"))) == 1
    err = capfd.readouterr().err
    assert "the webhook (ALERT_WEBHOOK_URL) failed: HTTP 500; the alert is in alerts/monitor-" in err
    logged = (workdir / "logs" / "monitor.log").read_text()
    assert "secret-token-xyz" not in err + logged and "127.0.0.1" not in err + logged


def test_a_webhook_that_refuses_the_message_is_not_retried(workdir, monkeypatch, capfd):
    with webhook_receiver(fail_first=-1, fail_status=404) as (url, received):
        monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
        assert run_monitor(workdir, write_log(workdir / "requests.jsonl", errors=5)) == 1
    assert len(received) == 1
    assert "the webhook (ALERT_WEBHOOK_URL) failed: HTTP 404" in capfd.readouterr().err


def test_a_webhook_url_that_is_not_http_is_refused_without_showing_it(workdir, monkeypatch, capfd):
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "file:///etc/secret-token-xyz")
    assert run_monitor(workdir, write_log(workdir / "requests.jsonl", errors=5)) == 1
    err = capfd.readouterr().err
    assert "ALERT_WEBHOOK_URL is not an http(s) URL" in err and "secret-token-xyz" not in err
    assert len(list((workdir / "alerts").glob("monitor-*.md"))) == 1


def test_stage_prod_with_nothing_promoted_is_one_clear_line(workdir, capfd):
    (workdir / "registry").mkdir()
    (workdir / "registry" / "prod.json").write_text('{"artifact": "flight-delay", "stage": "prod", "promoted": null}')
    log = write_log(workdir / "requests.jsonl", errors=0)
    code = cli.main(["monitor", "--request-log", str(log), "--stage", "prod", "--out", "m.jsonl"])
    assert code == 1
    assert "nothing is promoted to prod; pass --package PATH" in capfd.readouterr().err


def test_a_missing_request_log_is_one_clear_line(workdir, capfd):
    assert run_monitor(workdir, workdir / "nope.jsonl") == 1
    assert "nope.jsonl: cannot read the request log (No such file or directory)" in capfd.readouterr().err


def replay(url: str, month: str, *extra: str) -> int:
    return cli.main(["replay", "--url", url, "--month", month, "--concurrency", "4", *extra])


def test_replay_sends_a_month_without_outcome_columns_and_counts_the_answers(workdir, capsys):
    write_month(workdir / "raw", "2013-12", flights("2013-12", 95, seed=2))
    log = workdir / "requests.jsonl"
    with stand_in_service(FakePredictor(), log, minutes(T0)) as url:
        assert replay(url, "2013-12", "--batch", "10") == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts == {
        "month": "2013-12", "sent": 10, "rows": 95, "ok": 10, "client_errors": 0, "server_errors": 0,
        "failed": 0, "statuses": {"200": 10},
    }  # fmt: skip
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(e["batch_size"] for e in entries) == [5] + [10] * 9


class RefusingPredictor(FakePredictor):
    def predict(self, flights):
        if "arr_delay" in flights or "dep_time" in flights:
            return super().predict(flights)  # an outcome column reached the service: answer 200, fail the test
        raise ValueError("refused")


def test_replay_does_not_retry_4xx_and_counts_a_dead_service_as_failed(workdir, capsys):
    write_month(workdir / "raw", "2013-12", flights("2013-12", 30, seed=2))
    with stand_in_service(RefusingPredictor(), workdir / "requests.jsonl", minutes(T0)) as url:
        assert replay(url, "2013-12", "--batch", "7") == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["sent"], counts["client_errors"], counts["ok"]) == (5, 5, 0)
    assert len((workdir / "requests.jsonl").read_text().splitlines()) == 5  # one request per batch: no retries
    assert replay(url, "2013-12", "--batch", "30") == 0  # the server is gone
    assert json.loads(capsys.readouterr().out)["failed"] == 1


@pytest.mark.parametrize(
    ("month", "message"), [("2013-13", "not a month like 2013-12"), ("2014-01", "no raw flights rows")]
)
def test_replay_of_a_bad_month_is_one_clear_line(workdir, capfd, month, message):
    assert replay("http://127.0.0.1:9", month) == 1
    assert message in capfd.readouterr().err


@pytest.mark.parametrize(
    ("shift", "breached"),
    [(False, []), (True, ["max_psi:prediction", "max_feature_psi:dep_hour", "max_feature_psi:distance"])],
)
def test_psi_of_a_replayed_drifting_month_crosses_the_threshold_and_a_steady_one_does_not(
    workdir, capsys, shift, breached
):
    write_month(workdir / "raw", "2014-01", flights("2014-01", 1000, seed=5, shift=shift))
    log = workdir / "requests.jsonl"
    with stand_in_service(FakePredictor(), log, minutes(T0)) as url:
        assert replay(url, "2014-01", "--batch", "20") == 0
    capsys.readouterr()
    assert run_monitor(workdir, log) == (1 if breached else 0)
    (window,) = [json.loads(line) for line in (workdir / "reports" / "monitoring.jsonl").read_text().splitlines()]
    assert window["requests"] == 50 and window["rows"] == 1000
    assert window["breaches"] == breached
    assert (window["psi"]["prediction"] > 0.2) is shift
