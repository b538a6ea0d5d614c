"""A hostile client against the HTTP service (FastAPI's TestClient over the fake predictor): bodies and headers
crafted to reach a 500, a traceback or a forged log line. Each must be a defined 4xx in the JSON error shape."""

from __future__ import annotations

import json

from tests.integration import test_service as service
from tests.integration.test_service import error_of

make = service.make  # the service tests' fixture: a TestClient over the fake predictor


def test_a_key_that_is_a_lone_surrogate_is_a_4xx_not_a_500(make):
    # json.loads accepts "\ud800"; echoing it as the error's field made the response unencodable as UTF-8 (a 500)
    client, _ = make()
    body = b'{"flights": [{}], "\\ud800": 1}'
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    error = error_of(response, 422, "invalid_body")
    assert error["field"] == "\ud800"  # shown escaped in the JSON text, read back as sent


def test_an_x_request_id_ending_in_a_newline_is_replaced_not_echoed(make):
    # the pattern ended in `$`, which also matches before a final "\n": "abc\n" was taken, logged and echoed
    client, _ = make()
    response = client.get("/health", headers={"x-request-id": "abc\n"})
    assert response.status_code == 200
    echoed = response.headers["x-request-id"]
    assert echoed.strip() != "abc" and "\n" not in echoed
    assert client.get("/health", headers={"x-request-id": "abc"}).headers["x-request-id"] == "abc"


def test_rollback_refuses_a_package_whose_hash_is_not_the_one_the_history_recorded(make):
    # rollback re-verified the directory at the recorded path but never compared its hash with the recorded one, so
    # whatever valid package sat at that path (the name pins only 16 hex digits) was served as "the previous good"
    client, harness = make()
    second = harness.add(service.FakePredictor(offset=0.1), b"second")
    assert service.reload(client, {"package": str(second)}).status_code == 200
    history = harness.settings.history
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert lines[0]["outcome"] == "started"
    lines[0]["hash"] = lines[0]["hash"][:16] + "f" * 48  # the history's hash is not the directory's any more
    history.write_text("".join(json.dumps(line) + "\n" for line in lines))
    error = error_of(service.reload(client, {"rollback": True}), 409, "deploy_refused")
    assert "hash" in error["message"]
    assert service.predict(client, service.FLIGHT).json()["model"]["name"] == second.name
