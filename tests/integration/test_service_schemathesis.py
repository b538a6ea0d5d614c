"""schemathesis over the service's /openapi.json: generated requests (valid and invalid) never get a 5xx.

Bounded: a fixed number of examples per operation, so it runs in seconds. Runs over the fake predictor
(tests/fake_predictor.py), whose input schema has every kind of field the real one has (integers and numbers with
ranges, strings with allowed values or a maximum length, nullable fields).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from flightdelay.core.config import ServeParams
from flightdelay.serving.app import Settings, create_app
from flightdelay.serving.runtime import Deployed, Slot
from tests.fake_predictor import FakePredictor

if TYPE_CHECKING:
    import schemathesis

# schemathesis and hypothesis are imported inside the test, not here: every pytest process imports every test
# module to collect it, and these two (about 400 modules, each rewritten by pytest for its asserts, since both ship
# pytest plugins) cost each `make test-fast` worker seconds for a test it never runs (this one is marked slow).


def service_schema(tmp: Path) -> schemathesis.BaseSchema:
    import schemathesis

    predictor = FakePredictor()
    params = ServeParams(max_batch=5, max_body_bytes=20_000)
    settings_ = Settings(params, tmp / "requests.jsonl", tmp / "h.jsonl", tmp / "alerts", reload_token="token")
    slot = Slot(current=Deployed(predictor, tmp, None, "t0"), ready=True, reason="")
    app = create_app(settings_, slot, lambda path: predictor)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# schemathesis' pytest plugin (schema.parametrize) does not run under this pytest, so the operations are walked here
# and each one's hypothesis strategy is driven directly: the same generation and checks, fewer moving parts.
@pytest.mark.slow  # hypothesis drives 30 requests per operation and mode: seconds each (make test runs it)
@pytest.mark.parametrize("mode", ["positive", "negative"])  # GenerationMode's values
def test_no_generated_request_gets_a_server_error(tmp_path: Path, mode: str) -> None:
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    generation = GenerationMode(mode)
    schema = service_schema(tmp_path)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"POST /predict", "POST /admin/reload"}
    calls: list[tuple[str, int]] = []
    for operation in operations:
        if generation == GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # a GET without parameters has no invalid request to generate

        @given(case=operation.as_strategy(generation_mode=generation))
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case: schemathesis.Case) -> None:
            response = case.call()
            calls.append((case.operation.path, response.status_code))
            case.validate_response(response, checks=checks)

        check()
    assert calls and max(status for _, status in calls) < 500
    predict = {status for path, status in calls if path == "/predict"}
    assert (200 in predict) if generation == GenerationMode.POSITIVE else (predict <= {400, 413, 422})
