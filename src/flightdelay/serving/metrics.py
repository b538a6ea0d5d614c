"""Prometheus metrics of one service instance, in its own registry (so tests can build several apps).

Requests by path and status, latency histogram, prediction histogram, context fallbacks, and the drift gauges: the
PSI of the last `drift_window` predictions, and of the last `drift_window` values of each model input, against the
served package's training reference (predictor.reference: the drift stage's bins, the PSI code `flightdelay
monitor` uses), computed when /metrics is scraped (never per request) once `drift_min_rows` rows were scored
since the model was (re)loaded; NaN before. A request only appends its values to the windows.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from flightdelay.serving.runtime import Deployed

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


class ServiceMetrics:
    def __init__(self, drift_window: int, drift_min_rows: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flightdelay_requests", "HTTP requests by path and status", ["path", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "flightdelay_request_latency_seconds",
            "request latency by path",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Histogram(
            "flightdelay_prediction_probability",
            "predicted probability of class 1 (the package's dataset.target)",
            buckets=PROBABILITY_BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "flightdelay_context_fallbacks", "rows scored with the context fallback", registry=self.registry
        )
        self.psi = Gauge(
            "flightdelay_prediction_psi",
            "PSI of the recent predictions vs the package's training reference (NaN until drift_min_rows)",
            registry=self.registry,
        )
        self.feature_psi = Gauge(
            "flightdelay_feature_psi",
            "PSI of each model input over the recent rows vs the package's training reference (NaN until "
            "drift_min_rows)",
            ["feature"],
            registry=self.registry,
        )
        self.window_rows = Gauge(
            "flightdelay_prediction_window_rows", "predictions in the drift window", registry=self.registry
        )
        self.model = Gauge(
            "flightdelay_model_info", "the package being served", ["name", "hash", "version"], registry=self.registry
        )
        self.min_rows = drift_min_rows
        self._window: collections.deque[float] = collections.deque(maxlen=drift_window)
        self._features: dict[str, collections.deque[Any]] = {}
        self._drift_window = drift_window
        self._lock = threading.Lock()

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        self.requests.labels(path=path, status=str(status)).inc()
        self.latency.labels(path=path).observe(seconds)

    def observe_predictions(self, probabilities: list[float], fallbacks: int) -> None:
        for p in probabilities:
            self.predictions.observe(p)
        if fallbacks:
            self.fallbacks.inc(fallbacks)
        with self._lock:
            self._window.extend(probabilities)

    def observe_features(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> None:
        """The model inputs of the rows just scored (feature -> one value per row, a list or an array), into the
        windows: only the values a window keeps (its last drift_window) are taken."""
        with self._lock:
            for name, values in columns.items():
                window = self._features.get(name)
                if window is None:
                    window = self._features[name] = collections.deque(maxlen=self._drift_window)
                keep = window.maxlen
                window.extend(values if keep is None or len(values) <= keep else values[len(values) - keep :])

    def model_changed(self, deployed: Deployed) -> None:
        """A new model: its own reference, so the drift window starts again."""
        self.model.clear()
        ref = deployed.ref()
        self.model.labels(name=ref["name"], hash=ref["hash"], version=str(ref["version"])).set(1)
        with self._lock:
            self._window.clear()
            self._features.clear()
        self.feature_psi.clear()

    def render(self, deployed: Deployed | None) -> bytes:
        with self._lock:
            window = list(self._window)
            features = {name: list(values) for name, values in self._features.items()}
        self.window_rows.set(len(window))
        if deployed is not None and len(window) >= self.min_rows:
            self.psi.set(deployed.predictor.reference.psi("prediction", pd.Series(window, dtype="float64")))
        else:
            self.psi.set(float("nan"))
        if deployed is not None:
            reference = deployed.predictor.reference
            for name, values in sorted(features.items()):
                if name in reference.columns:
                    enough = len(values) >= self.min_rows
                    psi = reference.psi(name, pd.Series(values)) if enough else float("nan")
                    self.feature_psi.labels(feature=name).set(psi)
        return generate_latest(self.registry)
