"""A hostile client against the HTTP service (FastAPI's TestClient over the fake predictor): bodies and headers
crafted to reach a 500, a traceback or a forged log line. Each must be a defined 4xx in the JSON error shape."""

from __future__ import annotations

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
