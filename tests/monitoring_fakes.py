"""Stand-ins for the monitoring tests: a predictor with a training reference, a service on 127.0.0.1 that logs
requests per the contract (docs/monitoring.md), a webhook receiver, and a generator of raw flight months.

The predictor is a fake of flightdelay.serving.predictor.Predictor's contract (name, package_hash, reference,
features, predict); the service is the contract's POST /predict and request log, nothing more.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.serving.reqlog import finite_or_null
from flightdelay.stages.drift import numeric_counts, psi, quantile_edges, shares

RAW_COLUMNS = [
    "year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time", "arr_delay",
    "carrier", "flight", "tailnum", "origin", "dest", "air_time", "distance", "hour", "minute", "time_hour",
]  # fmt: skip


OUTCOMES = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")  # known after the flight: not inputs
INPUT_FIELDS = [c for c in RAW_COLUMNS if c not in OUTCOMES]  # the stand-in's input schema (GET /openapi.json)


def flights(month: str, rows: int, seed: int, shift: bool = False) -> pd.DataFrame:
    """Raw flights of a month (the raw extract's columns). `shift` moves the schedule to the evening and the
    routes to long ones: a month that drifted."""
    rng = np.random.default_rng(seed)
    year, mon = int(month[:4]), int(month[5:])
    hour = rng.integers(17, 24, rows) if shift else rng.integers(5, 23, rows)
    minute = rng.integers(0, 60, rows)
    distance = rng.uniform(1500, 2500, rows) if shift else rng.uniform(100, 2500, rows)
    day = rng.integers(1, 29, rows)
    delay = rng.normal(10, 30, rows).round()
    frame = pd.DataFrame(
        {
            "year": year,
            "month": mon,
            "day": day,
            "dep_time": hour * 100 + minute,
            "sched_dep_time": hour * 100 + minute,
            "dep_delay": delay,
            "arr_time": ((hour + 2) % 24) * 100 + minute,
            "sched_arr_time": ((hour + 2) % 24) * 100 + minute,
            "arr_delay": delay,
            "carrier": rng.choice(["AA", "B6", "DL", "UA"], rows),
            "flight": rng.integers(1, 9999, rows),
            "tailnum": rng.choice(["N1", "N2", None], rows),
            "origin": rng.choice(["EWR", "JFK", "LGA"], rows),
            "dest": rng.choice(["LAX", "ORD", "ATL"], rows),
            "air_time": distance / 8,
            "distance": distance.round(),
            "hour": hour,
            "minute": minute,
            "time_hour": [f"{year}-{mon:02d}-{d:02d}T{h:02d}:00:00Z" for d, h in zip(day, hour, strict=True)],
        }
    )
    frame.loc[0, "dep_time"] = None  # a cancelled flight: outcome columns missing
    return frame[RAW_COLUMNS]


def write_month(raw_dir: Path, month: str, frame: pd.DataFrame) -> Path:
    path = raw_dir / "flights" / f"{month}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


class FakeReference:
    """PSI against fixed reference samples over quantile bins of the reference (like the drift stage)."""

    def __init__(self, samples: dict[str, np.ndarray], bins: int = 10) -> None:
        self.columns = sorted(samples)
        self.edges = {c: quantile_edges(np.asarray(v, dtype=float), bins) for c, v in samples.items()}
        self.shares = {c: self._shares(c, np.asarray(v, dtype=float)) for c, v in samples.items()}

    def _shares(self, column: str, values: np.ndarray) -> np.ndarray:
        counts, missing = numeric_counts(values, self.edges[column])
        return shares(np.append(counts, missing))

    def psi(self, column: str, values: pd.Series) -> float:
        current = self._shares(column, pd.to_numeric(values, errors="coerce").to_numpy(dtype=float))
        return psi(self.shares[column], current)


class FakePredictor:
    """The contract's Predictor, on two features computed from raw fields: departure hour and distance."""

    name = "model-0123456789abcdef"
    package_hash = "0123456789abcdef" * 4
    threshold = 0.35

    def __init__(self, training: pd.DataFrame | None = None) -> None:
        training = flights("2013-01", 5000, seed=1) if training is None else training
        features = self.features(training)
        self.reference = FakeReference(
            {**{c: features[c].to_numpy() for c in features}, "prediction": self._p(features)}
        )

    def features(self, flights: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "dep_hour": pd.to_numeric(flights["sched_dep_time"]) // 100,
                "distance": pd.to_numeric(flights["distance"]),
            }
        )

    @staticmethod
    def _p(features: pd.DataFrame) -> np.ndarray:
        z = 0.25 * (features["dep_hour"].to_numpy(dtype=float) - 14) + features["distance"].to_numpy(dtype=float) / 2000
        return 1 / (1 + np.exp(-z))

    def predict(self, flights: pd.DataFrame) -> pd.DataFrame:
        p = self._p(self.features(flights))
        return pd.DataFrame(
            {"probability": p, "label": (p >= self.threshold).astype("int8"), "context_fallback": False}
        )


def log_line(
    status: int,
    latency_ms: float,
    time: dt.datetime,
    predictions: list[float] | None = None,
    features: dict[str, list[Any]] | None = None,
    path: str = "/predict",
    n: int = 0,
) -> str:
    """One request-log line as the service writes it."""
    entry: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "request_id": f"r{n}",
        "method": "POST" if path == "/predict" else "GET",
        "path": path,
        "status": status,
        "latency_ms": latency_ms,
        "model_hash": FakePredictor.package_hash,
        "batch_size": len(predictions or []),
        "error": None if status < 400 else "boom",
        "predictions": predictions,
    }
    if features is not None:
        entry["features"] = features
    return json.dumps(finite_or_null(entry), allow_nan=False)  # strict JSON, NaN as null, like the service's log


@contextmanager
def stand_in_service(predictor: Any, log_file: Path, clock: Iterator[dt.datetime]) -> Iterator[str]:
    """A service on 127.0.0.1 implementing the contract's POST /predict and request log (features logged).
    `clock` gives each request's logged time, so the log's windows do not depend on the wall clock.
    Yields the base URL."""
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # no stderr noise
            pass

        def do_GET(self) -> None:
            """The service's OpenAPI schema, as far as replay reads it: the Row's fields."""
            row = {"properties": {name: {} for name in INPUT_FIELDS}}
            body = {"components": {"schemas": {"Row": row, "PredictRequest": {"properties": {"flights": {}}}}}}
            data = json.dumps(body).encode() if self.path == "/openapi.json" else b"{}"
            self.send_response(200 if self.path == "/openapi.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            started = time.perf_counter()
            status, payload, predictions, features = 200, {}, None, None
            try:
                frame = pd.DataFrame(json.loads(body)["flights"])
                if self.path != "/predict" or frame.empty:
                    raise ValueError("bad request")
                out = predictor.predict(frame)
                predictions = out["probability"].tolist()
                features = {c: v.tolist() for c, v in predictor.features(frame).items()}
                payload = {"predictions": out.to_dict(orient="records")}
            except Exception as exc:  # the contract: bad input (InputError has .field, the fake raises ValueError) 422
                bad_input = isinstance(exc, ValueError | KeyError) or hasattr(exc, "field")
                status = 422 if bad_input else 500
                payload = {"error": {"code": "invalid" if bad_input else "internal", "message": str(exc)[:200]}}
            data = json.dumps(payload, default=bool).encode()
            latency_ms = (time.perf_counter() - started) * 1000
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            with lock:
                entry = json.loads(log_line(status, latency_ms, next(clock), predictions, features))
                entry["batch_size"] = len(predictions or [])
                with log_file.open("a") as out_file:
                    out_file.write(json.dumps(finite_or_null(entry), allow_nan=False) + "\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def minutes(start: dt.datetime, step_s: float = 1.0) -> Iterator[dt.datetime]:
    """Times `step_s` apart from `start`, forever."""
    n = 0
    while True:
        yield start + dt.timedelta(seconds=n * step_s)
        n += 1


@contextmanager
def webhook_receiver(fail_first: int, fail_status: int = 500) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A Slack-like receiver on 127.0.0.1 answering `fail_status` to the first `fail_first` POSTs (-1: to all of
    them), then 200. Yields its URL and the list of the bodies it received."""
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            failing = fail_first < 0 or len(received) <= fail_first
            self.send_response(fail_status if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-token-xyz", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
