"""The service end to end with the real Predictor: `flightdelay serve` in its own process on 127.0.0.1, serving the
package of the session's short-window run (tests/e2e/conftest.py, trained on January and February 2013) with that
run's validated partitions as context, then `flightdelay deploy` of a tampered package, of a package whose canary
fails, of a good one, and a rollback.

The package whose canary fails is self-consistent (its checksums are right, so it verifies) but records example
outputs its model does not reproduce: only the canary can catch it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pandas as pd
import pytest

from flightdelay.release.package_format import MANIFEST_FILE, MODEL_FILE, STATE_FILE, verify, write_package
from tests.conftest import pipeline_env
from tests.default_params import default_params, write_params
from tests.e2e.s3 import free_port, stop

pytestmark = pytest.mark.slow

TOKEN = "e2e-token"
OUTCOMES = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]


def raw_flights(run: Path, month: str, n: int) -> list[dict[str, Any]]:
    """The first n raw flights of a month as a caller sends them: no outcome columns, missing values as null."""
    frame = pd.read_csv(run / "data" / "raw" / "nycflights13" / "flights" / f"{month}.csv").head(n)
    rows: list[dict[str, Any]] = json.loads(frame.drop(columns=OUTCOMES).to_json(orient="records"))
    return rows


def repackage(package: Path, parent: Path, change_manifest: Any = None) -> Path:
    """A verifiable copy of `package` (new checksums), its manifest changed by `change_manifest`."""
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    if change_manifest is not None:
        change_manifest(manifest)
    directory, _ = write_package(
        parent, (package / MODEL_FILE).read_bytes(), manifest, (package / STATE_FILE).read_bytes()
    )
    return directory


@pytest.fixture(scope="module")
def service(short_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("service")
    write_params(tmp / "params.yaml", default_params({"serve.timeout_s": 120}))
    package = next((short_run / "models" / "package").glob("model-*"))
    port = free_port()
    env = pipeline_env({"FLIGHTDELAY_RELOAD_TOKEN": TOKEN, "OMP_NUM_THREADS": None})
    command = [sys.executable, "-m", "flightdelay", "serve", "--package", str(package), "--port", str(port),
               "--context", str(short_run / "data" / "validated")]  # fmt: skip
    log = (tmp / "serve.out").open("w")
    proc = subprocess.Popen(command, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None, (tmp / "serve.out").read_text()
        assert time.monotonic() < deadline, "the service was not ready in 300 s"
        try:
            if httpx2.get(f"{url}/ready", timeout=5).status_code == 200:
                break
        except httpx2.TransportError:
            pass
        time.sleep(0.5)
    try:
        yield {"url": url, "package": package, "tmp": tmp, "env": env, "run": short_run, "proc": proc}
    finally:
        stop(proc)
        log.close()


def deploy(service: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "flightdelay", "deploy", *args, "--url", service["url"]]
    return subprocess.run(command, cwd=service["tmp"], env=service["env"], capture_output=True, text=True, timeout=600)


def predict(service: dict[str, Any], flights: list[dict[str, Any]]) -> dict[str, Any]:
    response = httpx2.post(f"{service['url']}/predict", json={"flights": flights}, timeout=120)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_the_service_scores_raw_flights_as_the_predictor_does_in_process(service):
    from flightdelay.serving.features_flights import ContextSource
    from flightdelay.serving.predictor import Predictor

    flights = raw_flights(service["run"], "2013-03", 40)
    served = predict(service, flights)
    assert served["model"]["name"] == service["package"].name
    context = ContextSource.from_validated(service["run"] / "data" / "validated")
    local = Predictor.load(service["package"], context).predict(pd.DataFrame(flights))
    got = [p["probability"] for p in served["predictions"]]
    assert got == pytest.approx(local["probability"].tolist(), abs=1e-9)
    assert [p["label"] for p in served["predictions"]] == local["label"].tolist()
    assert [p["context_fallback"] for p in served["predictions"]] == local["context_fallback"].tolist()
    meta = httpx2.get(f"{service['url']}/metadata").json()
    assert meta["hash"] == verify(service["package"]).hash
    assert meta["data_window"]["train"] == {"start": "2013-01", "end": "2013-02", "rolling_months": None}
    spec = httpx2.get(f"{service['url']}/openapi.json").json()
    fields = spec["components"]["schemas"]["Row"]["properties"]
    assert set(fields) == set(flights[0]) and "arr_delay" not in fields
    bad = httpx2.post(f"{service['url']}/predict", json={"flights": [{**flights[0], "origin": "SFO"}]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "origin"


def test_deploy_refuses_tampered_and_failing_canary_packages_then_swaps_and_rolls_back(service, tmp_path):
    first = service["package"]
    flights = raw_flights(service["run"], "2013-03", 3)

    tampered = tmp_path / "tampered" / first.name
    shutil.copytree(first, tampered)
    model = bytearray((tampered / MODEL_FILE).read_bytes())
    model[len(model) // 2] ^= 0xFF  # one byte changed, the checksum file left as it was
    (tampered / MODEL_FILE).write_bytes(bytes(model))
    refused = deploy(service, "--package", str(tampered))
    assert refused.returncode == 1 and "SHA-256" in refused.stderr and f"still serving {first.name}" in refused.stderr

    def wrong_outputs(manifest: dict[str, Any]) -> None:
        manifest["example_predictions"] = [str(float(p) + 0.01) for p in manifest["example_predictions"]]

    failing = repackage(first, tmp_path / "failing", wrong_outputs)
    refused = deploy(service, "--package", str(failing))
    assert refused.returncode == 1 and "canary" in refused.stderr, refused.stderr
    assert predict(service, flights)["model"]["name"] == first.name

    def relabelled(manifest: dict[str, Any]) -> None:
        manifest["gate"]["reviewed_for_e2e"] = True  # another package name, the same model

    second = repackage(first, tmp_path / "second", relabelled)
    done = deploy(service, "--package", str(second))
    assert done.returncode == 0, done.stderr
    assert predict(service, flights)["model"]["name"] == second.name
    back = deploy(service, "--rollback")
    assert back.returncode == 0 and f"rolled_back: {first.name}" in back.stdout, back.stderr
    assert predict(service, flights)["model"]["name"] == first.name
    history = deploy(service, "--history", "--deploy-history", str(service["tmp"] / "logs/deploy/history.jsonl"))
    outcomes = [line.split()[1] for line in history.stdout.splitlines()[1:]]
    assert outcomes == ["started", "refused", "refused", "deployed", "rolled_back"]
    alerts = sorted((service["tmp"] / "reports" / "alerts").glob("deploy-*.json"))
    assert len(alerts) == 2


def test_the_request_log_holds_every_request_and_the_service_stops_on_sigterm(service):
    proc = service["proc"]
    predict(service, raw_flights(service["run"], "2013-03", 2))
    stop(proc)
    assert proc.returncode in (0, -15)
    entries = [json.loads(line) for line in (service["tmp"] / "logs" / "requests.jsonl").read_text().splitlines()]
    scored = [e for e in entries if e["path"] == "/predict" and e["status"] == 200]
    assert scored and all(len(e["predictions"]) == e["batch_size"] for e in scored)
    assert all("inputs" not in e and "features" not in e for e in entries)
    assert os.path.getsize(service["tmp"] / "logs" / "requests.jsonl") > 0
