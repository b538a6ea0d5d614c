"""The HTTP service through FastAPI's TestClient, over the fake predictor (tests/fake_predictor.py): every endpoint,
every refusal (a defined 4xx with the JSON error shape), the request log, the metrics, reload, deploy and rollback."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flightdelay.core.config import ServeParams
from flightdelay.core.hashing import sha256_bytes
from flightdelay.release.package_format import MANIFEST_FORMAT, write_package
from flightdelay.serving.app import Settings, create_app
from flightdelay.serving.runtime import Deployed, Slot, read_history
from tests.fake_predictor import FLIGHT, FakePredictor, fake_loader

TOKEN = "s3cret-token"
LOG_KEYS = {
    "time", "request_id", "method", "path", "status", "latency_ms", "model_hash", "batch_size", "error", "predictions",
}  # fmt: skip


def make_package(parent: Path, tag: bytes) -> Path:
    """A real, verifiable package directory (its model bytes are a stand-in: the fake predictor never reads them)."""
    model = b"stand-in model " + tag
    manifest = {"format": MANIFEST_FORMAT, "model": {"sha256": sha256_bytes(model)}, "gate": {"decision": "pass"}}
    directory, _ = write_package(parent, model, manifest, b"{}")
    return directory


def tamper(package: Path) -> Path:
    (package / "model.skops").write_bytes(b"changed after it was built")
    return package


class Harness:
    def __init__(self, tmp: Path, params: ServeParams, token: str | None, first: FakePredictor | None = None) -> None:
        self.tmp = tmp
        self.predictors: dict[str, FakePredictor] = {}
        self.first_path = self.add(first or FakePredictor(), b"first")
        self.settings = Settings(params, tmp / "requests.jsonl", tmp / "history.jsonl", tmp / "alerts", token)
        loader = fake_loader(self.predictors)
        self.slot = Slot(current=Deployed(loader(self.first_path), self.first_path, None, "t0"))
        self.app = create_app(self.settings, self.slot, loader)

    def add(self, predictor: FakePredictor, tag: bytes) -> Path:
        path = make_package(self.tmp / "packages" / tag.decode(), tag)
        self.predictors[path.name] = predictor
        return path

    def log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.settings.request_log.read_text().splitlines()]


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 30  # the canary runs in a thread as the app starts
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the service never became ready"
        time.sleep(0.02)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    clients: list[TestClient] = []

    def build(
        token: str | None = TOKEN, first: FakePredictor | None = None, ready: bool = True, **params: Any
    ) -> tuple[TestClient, Harness]:
        harness = Harness(tmp_path, ServeParams(**params), token, first)
        client = TestClient(harness.app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        if ready:
            wait_ready(client)
        return client, harness

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"} and body["error"]["code"] == code, body
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return dict(body["error"])


def predict(client: TestClient, *flights: dict[str, Any]) -> Any:
    return client.post("/predict", json={"flights": list(flights)})


# --------------------------------------------------------------------------------------------------- predict


def test_predict_scores_one_flight_and_a_batch_in_order(make):
    client, harness = make()
    one = predict(client, FLIGHT)
    assert one.status_code == 200
    body = one.json()
    assert body["model"] == {"name": harness.first_path.name, "hash": body["model"]["hash"], "version": "v0.0.1"}
    assert len(body["model"]["hash"]) == 64
    [p] = body["predictions"]
    assert p == {"probability": pytest.approx(1730 / 2400 * 0.8), "label": 1, "context_fallback": False}
    batch = predict(client, {**FLIGHT, "sched_dep_time": 600}, FLIGHT, {**FLIGHT, "tailnum": None})
    got = batch.json()["predictions"]
    assert [r["label"] for r in got] == [0, 1, 1]
    assert [r["context_fallback"] for r in got] == [False, False, True]


def test_request_id_is_taken_from_the_header_or_generated_and_echoed(make):
    client, _ = make()
    given = client.post("/predict", json={"flights": [FLIGHT]}, headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42" == given.json()["request_id"]
    made_ids = []
    for header in ({}, {}, {"X-Request-ID": "bad id with spaces"}, {"X-Request-ID": "x" * 500}):
        made = client.post("/predict", json={"flights": [FLIGHT]}, headers=header)
        assert made.headers["x-request-id"] == made.json()["request_id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made.json()["request_id"])
        made_ids.append(made.json()["request_id"])
    assert len(set(made_ids)) == len(made_ids)  # a new id per request


def test_a_nullable_field_may_be_left_out(make):
    client, _ = make()
    flight = {k: v for k, v in FLIGHT.items() if k != "tailnum"}
    assert predict(client, flight).json()["predictions"][0]["context_fallback"] is True


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"month": "11"}, "month", "int_type"),
        ({"month": 11.5}, "month", "int_type"),
        ({"month": True}, "month", "int_type"),
        ({"month": 13}, "month", "less_than_equal"),
        ({"distance": -1}, "distance", "greater_than_equal"),
        ({"distance": "far"}, "distance", "float_type"),
        ({"distance": True}, "distance", "float_type"),
        ({"carrier": "ZZ"}, "carrier", "literal_error"),
        ({"origin": None}, "origin", "literal_error"),
        ({"dest": "X" * 5}, "dest", "string_too_long"),
        ({"tailnum": "N" * 10_000}, "tailnum", "string_too_long"),
        ({"runway": 4}, "runway", "extra_forbidden"),
        ({"arr_delay": 30}, "arr_delay", "extra_forbidden"),
    ],
)
def test_a_bad_value_is_422_naming_row_field_and_rule(make, change, field, rule):
    client, harness = make()
    response = predict(client, FLIGHT, {**FLIGHT, **change})
    error = error_of(response, 422, "invalid_input")
    assert (error["row"], error["field"], error["rule"]) == (1, field, rule)
    assert error["message"].startswith(f"flights[1].{field}: ")
    assert harness.predictors[harness.first_path.name].calls == []  # nothing was scored


def test_a_missing_field_and_a_non_object_flight_are_422(make):
    client, _ = make()
    missing = {k: v for k, v in FLIGHT.items() if k != "carrier"}
    assert error_of(predict(client, missing), 422, "invalid_input")["rule"] == "missing"
    assert error_of(predict(client, [FLIGHT]), 422, "invalid_input")["rule"] == "model_type"  # type: ignore[arg-type]


def test_strings_over_serve_max_string_length_are_422_even_where_the_field_allows_more(make):
    client, _ = make(max_string_length=5)
    error = error_of(predict(client, {**FLIGHT, "tailnum": "N123456"}), 422, "invalid_input")
    assert (error["field"], error["rule"]) == ("tailnum", "string_too_long")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "invalid_json"),
        (b"{", 400, "invalid_json"),
        (b"\xff\xfe\x00", 400, "invalid_json"),
        (b'{"flights": [{"distance": NaN}]}', 400, "invalid_json"),
        (b'{"flights": [{"distance": Infinity}]}', 400, "invalid_json"),
        (b'{"flights": [{"distance": -Infinity}]}', 400, "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),
        (b'{"flights": [{"year": 1' + b"0" * 5000 + b"}]}", 400, "invalid_json"),
        (b"[]", 422, "invalid_body"),
        (b'"flights"', 422, "invalid_body"),
        (b'{"flights": {}}', 422, "invalid_body"),
        (b'{"flights": [], "extra": 1}', 422, "invalid_body"),
        (b'{"flights": []}', 422, "empty_batch"),
    ],
)
def test_malformed_bodies_are_defined_4xx(make, body, status, code):
    client, _ = make()
    error_of(client.post("/predict", content=body, headers={"Content-Type": "application/json"}), status, code)


def test_a_number_too_large_for_a_float_is_422_not_infinity(make):
    client, _ = make()
    body = json.dumps({"flights": [{**FLIGHT, "distance": 1}]}).replace('"distance": 1', '"distance": 1e400')
    error = error_of(client.post("/predict", content=body), 422, "invalid_input")
    assert error["field"] == "distance"


def test_over_the_batch_cap_is_413_naming_the_limit(make):
    client, _ = make(max_batch=3)
    assert predict(client, *[FLIGHT] * 3).status_code == 200
    error = error_of(predict(client, *[FLIGHT] * 4), 413, "batch_too_large")
    assert error["limit"] == 3 and "serve.max_batch = 3" in error["message"]


def test_a_body_over_the_byte_limit_is_413_by_length_and_when_chunked(make):
    client, _ = make(max_body_bytes=2000)
    big = json.dumps({"flights": [FLIGHT] * 20}).encode()
    assert len(big) > 2000
    error = error_of(client.post("/predict", content=big), 413, "body_too_large")
    assert error["limit"] == 2000

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 256):
            yield big[start : start + 256]

    error_of(client.post("/predict", content=chunks()), 413, "body_too_large")
    small = json.dumps({"flights": [FLIGHT]}).encode()
    assert client.post("/predict", content=iter([small[:10], small[10:]])).status_code == 200


def test_scoring_past_the_timeout_is_504(make):
    client, _ = make(first=FakePredictor(delay_s=0.5), timeout_s=0.05)
    error = error_of(predict(client, FLIGHT), 504, "timeout")
    assert error["limit"] == 0.05


def test_timed_out_work_still_running_on_every_thread_makes_new_requests_503_not_queued(make):
    client, harness = make(first=FakePredictor(delay_s=1.0), timeout_s=0.05)
    threads = harness.app.state.service.pool._max_workers
    for _ in range(threads):  # each times out while its scoring keeps a pool thread for a second
        error_of(predict(client, FLIGHT), 504, "timeout")
    started = len(harness.predictors[harness.first_path.name].calls)
    busy = predict(client, FLIGHT)
    error_of(busy, 503, "busy")
    assert busy.headers["retry-after"] == "1"
    assert len(harness.predictors[harness.first_path.name].calls) == started  # refused, never queued
    deadline = time.monotonic() + 30
    while predict(client, FLIGHT).status_code != 504:  # the threads come back when the slow work ends
        assert time.monotonic() < deadline, "the scoring threads never came back"
        time.sleep(0.1)


def test_queued_work_of_a_timed_out_request_is_cancelled_and_never_counted(make):
    client, harness = make(first=FakePredictor(delay_s=0.5), timeout_s=0.1)
    service = harness.app.state.service
    answers: list[int] = []
    callers = [
        threading.Thread(target=lambda: answers.append(predict(client, FLIGHT).status_code))
        for _ in range(3 * service.pool._max_workers)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert set(answers) <= {503, 504} and 504 in answers
    deadline = time.monotonic() + 30
    while service.orphans.running:  # only work that ran was counted, and it ended
        assert time.monotonic() < deadline, f"{service.orphans.running} orphans never ended"
        time.sleep(0.05)
    assert len(harness.predictors[harness.first_path.name].calls) < len(callers)  # queued work never ran


def test_a_few_rows_the_predictor_scores_inline_skip_the_pool_and_give_the_pools_answer(make, monkeypatch):
    """A request the predictor's inline path takes (the real one: up to INLINE_ROWS rows on its compiled record
    path) is answered on the event loop, with the very body the pool gives; a larger batch still goes to the
    pool."""
    pooled, _ = make()
    client, harness = make(first=FakePredictor(inline_rows=2))
    service = harness.app.state.service
    submitted: list[int] = []
    real_submit = service.pool.submit
    monkeypatch.setattr(service.pool, "submit", lambda *a, **k: submitted.append(len(a[4])) or real_submit(*a, **k))
    one, two, three = FLIGHT, {**FLIGHT, "sched_dep_time": 1730}, {**FLIGHT, "tailnum": None}
    for flights in ((one,), (one, two)):
        inline, via_pool = predict(client, *flights), predict(pooled, *flights)
        assert inline.status_code == via_pool.status_code == 200
        assert inline.json()["predictions"] == via_pool.json()["predictions"]
    assert submitted == []
    assert harness.predictors[harness.first_path.name].calls == ["inline", "inline"]
    assert predict(client, one, two, three).status_code == 200
    assert submitted == [3]


def test_inline_requests_are_answered_while_timed_out_work_holds_every_thread(make):
    client, harness = make(first=FakePredictor(delay_s=1.0, inline_rows=1), timeout_s=0.05)
    threads = harness.app.state.service.pool._max_workers
    for _ in range(threads):  # two-row batches go to the pool, time out and keep its threads for a second
        error_of(predict(client, FLIGHT, FLIGHT), 504, "timeout")
    error_of(predict(client, FLIGHT, FLIGHT), 503, "busy")
    assert predict(client, FLIGHT).status_code == 200  # one row: scored inline, no thread needed


def test_a_value_the_inline_path_refuses_is_422_as_in_the_pool(make):
    client, _ = make(first=FakePredictor(refuse_dest="SFO", inline_rows=8))
    error = error_of(predict(client, {**FLIGHT, "dest": "SFO"}), 422, "invalid_input")
    assert error["field"] == "dest" and error["rule"] == "allowed"


def test_more_concurrent_requests_than_threads_queue_and_all_answer(make):
    client, harness = make(first=FakePredictor(delay_s=0.1), timeout_s=30)
    threads = harness.app.state.service.pool._max_workers
    answers: list[int] = []
    callers = [
        threading.Thread(target=lambda: answers.append(predict(client, FLIGHT).status_code))
        for _ in range(3 * threads + 1)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert answers == [200] * len(callers)


def test_a_value_the_predictor_itself_refuses_is_422(make):
    client, _ = make(first=FakePredictor(refuse_dest="XXX"))
    error = error_of(predict(client, FLIGHT, {**FLIGHT, "dest": "XXX"}), 422, "invalid_input")
    assert (error["field"], error["row"], error["rule"]) == ("dest", 1, "allowed")


def test_unknown_paths_and_methods_are_json_errors(make):
    client, _ = make()
    assert "/predict" in error_of(client.get("/nowhere"), 404, "not_found")["message"]
    error_of(client.get("/predict"), 405, "method_not_allowed")


# ------------------------------------------------------------------------------------ health, ready, metadata


def test_health_ready_and_metadata(make):
    client, harness = make()
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["ready"] is True and ready["model"]["name"] == harness.first_path.name
    meta = client.get("/metadata").json()
    assert meta["name"] == harness.first_path.name and meta["version"] == "v0.0.1" and meta["threshold"] == 0.35
    assert {"hash", "channel", "params", "metrics", "data_window", "lineage", "gate", "loaded_at"} <= set(meta)
    assert client.get("/docs").status_code == 200
    assert read_history(harness.settings.history)[0]["outcome"] == "started"


@pytest.mark.parametrize("crash", [False, True], ids=["canary fails", "canary raises ValueError"])
def test_a_failing_canary_at_start_leaves_the_service_unready_and_refusing_predictions(make, crash):
    first = FakePredictor(crash_canary=True) if crash else FakePredictor(fail_canary=True)
    client, harness = make(first=first, ready=False)
    deadline = time.monotonic() + 30
    while not list(harness.settings.alerts_dir.glob("deploy-*.json")):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert "canary failed" in error_of(client.get("/ready"), 503, "not_ready")["message"]
    error_of(predict(client, FLIGHT), 503, "not_ready")
    assert client.get("/health").status_code == 200
    assert read_history(harness.settings.history)[-1]["outcome"] == "refused"


def test_a_service_stopped_while_its_canary_runs_waits_for_it_before_closing(tmp_path):
    harness = Harness(tmp_path, ServeParams(), TOKEN, FakePredictor(canary_s=0.5))
    with TestClient(harness.app, raise_server_exceptions=False):
        pass  # stopped at once: the canary has just started
    # the canary finished (its history entry is written) before the service closed, and no canary thread is left
    assert [entry["outcome"] for entry in read_history(harness.settings.history)] == ["started"]
    assert not [thread for thread in threading.enumerate() if thread.name == "canary"]


# ---------------------------------------------------------------------------------------------- openapi, docs


def test_openapi_shows_the_package_input_fields_with_their_rules(make):
    client, _ = make(max_batch=7)
    spec = client.get("/openapi.json").json()
    flight = spec["components"]["schemas"]["Row"]
    props = flight["properties"]
    assert set(props) == set(FLIGHT) and flight["additionalProperties"] is False
    assert props["month"]["minimum"] == 1 and props["month"]["maximum"] == 12 and props["month"]["type"] == "integer"
    assert props["carrier"]["enum"] == ["AA", "B6", "DL", "EV", "UA"]
    assert props["dest"]["maxLength"] == 4
    assert "tailnum" not in flight["required"] and "carrier" in flight["required"]
    request = spec["components"]["schemas"]["PredictRequest"]["properties"]["flights"]
    assert (request["minItems"], request["maxItems"]) == (1, 7)
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PredictRequest"}
    assert {"400", "413", "422", "503", "504"} <= set(spec["paths"]["/predict"]["post"]["responses"])


# ------------------------------------------------------------------------------------------ metrics and logs


def test_metrics_count_requests_and_predictions_and_report_prediction_drift(make):
    client, _ = make(drift_min_rows=4)
    predict(client, FLIGHT)
    before = client.get("/metrics").text
    assert "flightdelay_prediction_psi NaN" in before  # fewer than drift_min_rows predictions
    predict(client, FLIGHT, FLIGHT, FLIGHT)
    predict(client, {**FLIGHT, "month": 99})
    text = client.get("/metrics").text
    assert 'flightdelay_requests_total{path="/predict",status="200"} 2.0' in text
    assert 'flightdelay_requests_total{path="/predict",status="422"} 1.0' in text
    assert "flightdelay_prediction_probability_count 4.0" in text
    assert "flightdelay_request_latency_seconds_bucket" in text
    psi = next(line for line in text.splitlines() if line.startswith("flightdelay_prediction_psi "))
    assert float(psi.split()[1]) == pytest.approx(abs(1730 / 2400 * 0.8 - 0.3))
    assert "flightdelay_prediction_window_rows 4.0" in text
    assert 'flightdelay_model_info{hash="' in text


def test_metrics_report_psi_per_model_input_over_the_recent_flights_computed_on_scrape(make):
    client, harness = make(drift_min_rows=4, drift_window=6)
    predict(client, FLIGHT, FLIGHT)
    assert 'flightdelay_feature_psi{feature="distance"} NaN' in client.get("/metrics").text  # under drift_min_rows
    predict(client, *[{**FLIGHT, "distance": 100.0 * (i + 1)} for i in range(5)])  # the window keeps the last 6

    def feature_psi(text: str) -> dict[str, float]:
        lines = [line for line in text.splitlines() if line.startswith("flightdelay_feature_psi{")]
        return {line.split('"')[1]: float(line.split()[-1]) for line in lines}

    # FakeReference.psi is |mean - 0.3|; only the inputs the reference knows get a gauge (not dep_hour)
    last_six = [1400.0, 100.0, 200.0, 300.0, 400.0, 500.0]
    assert feature_psi(client.get("/metrics").text) == {"distance": pytest.approx(sum(last_six) / 6 - 0.3)}
    second = harness.add(FakePredictor(offset=0.1), b"second")
    assert reload(client, {"package": str(second)}).status_code == 200
    assert feature_psi(client.get("/metrics").text) == {}  # a new model starts its windows again


def test_the_request_log_has_the_contract_keys_and_no_inputs_by_default(make, tmp_path):
    client, harness = make()
    predict(client, FLIGHT, FLIGHT)
    predict(client, {**FLIGHT, "carrier": "ZZ"})
    client.__exit__(None, None, None)  # drains the log
    entries = [e for e in harness.log() if e["path"] == "/predict"]
    assert [set(e) for e in entries] == [LOG_KEYS, LOG_KEYS]
    ok, bad = entries
    assert ok["status"] == 200 and ok["batch_size"] == 2 and len(ok["predictions"]) == 2 and ok["error"] is None
    assert ok["time"].endswith("Z") and isinstance(ok["latency_ms"], float) and len(ok["model_hash"]) == 64
    assert bad["status"] == 422 and bad["error"] == "invalid_input" and bad["predictions"] is None
    assert "N14228" not in harness.settings.request_log.read_text()


def test_the_request_log_holds_inputs_and_features_only_when_configured(make):
    client, harness = make(log_inputs=True, log_features=True)
    predict(client, FLIGHT)
    client.__exit__(None, None, None)
    [entry] = [e for e in harness.log() if e["path"] == "/predict"]
    assert set(entry) == LOG_KEYS | {"inputs", "features"}
    assert entry["inputs"] == [FLIGHT]
    assert entry["features"] == {"dep_hour": [17], "distance": [1400.0]}


# ------------------------------------------------------------------------------------ reload, deploy, rollback


def reload(client: TestClient, body: dict[str, Any], token: str | None = TOKEN) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/admin/reload", json=body, headers=headers)


def test_reload_is_disabled_without_a_token_and_needs_the_right_one(make):
    client, harness = make(token=None)
    error_of(reload(client, {"package": str(harness.first_path)}), 403, "reload_disabled")
    client, harness = make()
    error_of(reload(client, {"package": str(harness.first_path)}, token=None), 401, "unauthorized")
    error_of(reload(client, {"package": str(harness.first_path)}, token="wrong"), 401, "unauthorized")
    error_of(reload(client, {"nonsense": 1}), 422, "invalid_body")
    error_of(reload(client, {"package": "x", "rollback": True}), 422, "invalid_body")


def test_deploy_swaps_only_after_the_canary_and_rollback_returns_to_the_previous_good_package(make):
    client, harness = make()
    second = harness.add(FakePredictor(offset=0.1, manifest={"version": "v0.0.2"}), b"second")
    deployed = reload(client, {"package": str(second), "channel": "prod"})
    assert deployed.status_code == 200, deployed.text
    assert deployed.json()["outcome"] == "deployed" and deployed.json()["previous"] == harness.first_path.name
    after = predict(client, FLIGHT).json()
    assert after["model"]["name"] == second.name and after["model"]["version"] == "v0.0.2"
    assert client.get("/metadata").json()["channel"] == "prod"

    back = reload(client, {"rollback": True})
    assert back.status_code == 200 and back.json()["outcome"] == "rolled_back"
    assert predict(client, FLIGHT).json()["model"]["name"] == harness.first_path.name
    outcomes = [(e["outcome"], e["package"]) for e in read_history(harness.settings.history)]
    assert outcomes == [
        ("started", harness.first_path.name),
        ("deployed", second.name),
        ("rolled_back", harness.first_path.name),
    ]
    error_of(reload(client, {"rollback": True}), 409, "nothing_to_roll_back")


def test_a_deploy_during_the_start_up_canary_waits_its_turn_and_the_history_stays_in_order(make):
    """The start-up canary holds the deploy lock and writes "started" before /ready says ready: a deploy at once
    after ready comes after it in the history, so the rollback returns to the first package (under load the
    "started" line was once written after the deploy's, and the rollback picked the deployed package itself)."""
    first = FakePredictor(canary_s=0.5)
    client, harness = make(first=first, ready=False)
    second = harness.add(FakePredictor(offset=0.1, manifest={"version": "v0.0.2"}), b"second")
    assert first.canary_started.wait(30)
    error_of(reload(client, {"package": str(second)}), 409, "reload_in_progress")
    wait_ready(client)
    assert [e["outcome"] for e in read_history(harness.settings.history)] == ["started"]
    assert reload(client, {"package": str(second)}).status_code == 200
    back = reload(client, {"rollback": True})
    assert back.status_code == 200 and back.json()["package"] == harness.first_path.name


FAULTS = ["tampered", "failing canary", "missing", "loader crashes", "canary crashes"]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_refused_deploy_keeps_the_old_model_and_writes_an_alert(make, fault):
    """Any exception while loading a package or running its canary refuses it: a package whose hashed data breaks a
    reader (a manifest field of another type, an .npy that is an .npz) was a 500 with no history line or alert."""
    client, harness = make()
    crash = AttributeError("'list' object has no attribute 'get'") if fault == "loader crashes" else None
    bad = harness.add(
        FakePredictor(fail_canary=fault == "failing canary", crash_canary=fault == "canary crashes", load_error=crash),
        b"bad",
    )
    if fault == "tampered":
        tamper(bad)
    elif fault == "missing":
        bad = bad.parent / "model-ffffffffffffffff"
    error = error_of(reload(client, {"package": str(bad)}), 409, "deploy_refused")
    assert f"still serving {harness.first_path.name}" in error["message"]
    assert predict(client, FLIGHT).json()["model"]["name"] == harness.first_path.name
    assert client.get("/ready").status_code == 200
    [alert] = harness.settings.alerts_dir.glob("deploy-*.json")
    record = json.loads(alert.read_text())
    assert record["outcome"] == "refused" and record["serving"]["name"] == harness.first_path.name
    expected = {
        "tampered": "SHA-256",
        "failing canary": "differs from the recorded",
        "missing": "not a package",
        "loader crashes": "AttributeError: 'list' object has no attribute 'get'",
        "canary crashes": "ValueError: No valid specification of the columns",
    }
    assert expected[fault] in record["reason"] and expected[fault] in error["message"]
    assert read_history(harness.settings.history)[-1]["outcome"] == "refused"
    assert harness.predictors.get(bad.name) is None or harness.predictors[bad.name].calls == []


def test_control_characters_of_a_reload_path_are_escaped_in_the_text_log_and_the_alert_name(make, caplog):
    client, harness = make()
    forged = harness.tmp / "model-ffffffffffffffff\nERROR deploy of model-0 succeeded\x1b[2J\u2028"
    caplog.set_level(logging.INFO)
    error_of(reload(client, {"package": str(forged)}), 409, "deploy_refused")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("flightdelay")]
    [refused] = [m for m in messages if "refused" in m]
    assert "model-ffffffffffffffff\\nERROR deploy of model-0 succeeded\\x1b[2J\\u2028" in refused
    assert not any(ch in m for m in messages for ch in "\n\r\x1b\u2028")
    [alert] = harness.settings.alerts_dir.glob("deploy-*.json")
    assert re.fullmatch(r"[A-Za-z0-9._-]+", alert.name)
    assert json.loads(alert.read_text())["path"] == str(forged)  # the record keeps the exact path (JSON escapes it)


def test_a_request_in_flight_during_a_swap_finishes_on_the_model_it_started_with(make):
    client, harness = make(first=FakePredictor(delay_s=0.5))
    second = harness.add(FakePredictor(offset=0.1), b"second")
    answers: list[Any] = []
    slow = threading.Thread(target=lambda: answers.append(predict(client, FLIGHT)))
    slow.start()
    deadline = time.monotonic() + 30
    while not harness.predictors[harness.first_path.name].calls:  # the slow request is scoring
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert reload(client, {"package": str(second)}).status_code == 200
    slow.join()
    [answer] = answers
    assert answer.status_code == 200
    assert answer.json()["model"]["name"] == harness.first_path.name
    assert answer.json()["predictions"][0]["probability"] == pytest.approx(1730 / 2400 * 0.8)
    assert predict(client, FLIGHT).json()["model"]["name"] == second.name
