"""A small stand-in for flightdelay.serving.predictor.Predictor (the shared contract of issue 10), for service tests.

It scores by arithmetic on the input fields, so tests need no trained package, and it can be told to fail its
canary, to be slow, or to refuse a value itself, which makes those error cases reachable.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.errors import PipelineError
from flightdelay.release.package_format import verify
from flightdelay.serving.predictor import Scores


@dataclass(frozen=True)
class InputField:
    name: str
    kind: str
    nullable: bool
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None
    max_length: int | None = None


SCHEMA = [
    InputField("year", "integer", False, 2013, 2030),
    InputField("month", "integer", False, 1, 12),
    InputField("day", "integer", False, 1, 31),
    InputField("sched_dep_time", "integer", False, 0, 2359),
    InputField("sched_arr_time", "integer", False, 0, 2359),
    InputField("carrier", "string", False, allowed=("AA", "B6", "DL", "EV", "UA")),
    InputField("flight", "integer", False, 1, 9999),
    InputField("tailnum", "string", True, max_length=8),
    InputField("origin", "string", False, allowed=("EWR", "JFK", "LGA")),
    InputField("dest", "string", False, max_length=4),
    InputField("distance", "number", False, 0, 6000),
]

FLIGHT = {
    "year": 2013,
    "month": 11,
    "day": 3,
    "sched_dep_time": 1730,
    "sched_arr_time": 2015,
    "carrier": "UA",
    "flight": 1545,
    "tailnum": "N14228",
    "origin": "EWR",
    "dest": "IAH",
    "distance": 1400.0,
}


class CanaryError(PipelineError):
    pass


class InputError(PipelineError):
    def __init__(self, message: str, field: str, row: int, rule: str) -> None:
        super().__init__(message)
        self.field, self.row, self.rule = field, row, rule


class FakeReference:
    def __init__(self) -> None:
        self.columns = ["distance", "prediction"]

    def psi(self, column: str, values: pd.Series) -> float:
        return float(abs(values.mean() - 0.3))


@dataclass
class FakePredictor:
    name: str = "model-0123456789abcdef"
    package_hash: str = "0123456789abcdef" + "0" * 48
    manifest: dict[str, Any] = field(default_factory=lambda: {"version": "v0.0.1", "params": {}, "metrics": {}})
    input_schema: list[InputField] = field(default_factory=lambda: list(SCHEMA))
    threshold: float = 0.35
    table: str = "flights"  # the main table: the request body's key
    reference: FakeReference = field(default_factory=FakeReference)
    fail_canary: bool = False
    crash_canary: bool = False  # the canary raises a ValueError, as a model whose hashed data breaks scikit-learn does
    load_error: Exception | None = None  # the loader raises it after verifying, as a reader of hostile data does
    canary_s: float = 0.0  # how long the canary takes
    delay_s: float = 0.0
    offset: float = 0.0
    refuse_dest: str | None = None  # a value the predictor's own checks refuse (InputError)
    inline_rows: int = 0  # inline_scores takes batches up to this size (the real predictor: its fast record path)
    calls: list[str] = field(default_factory=list)
    canary_started: threading.Event = field(default_factory=threading.Event)

    def predict(self, flights: pd.DataFrame) -> pd.DataFrame:
        self.calls.append("predict")
        if self.delay_s:
            time.sleep(self.delay_s)
        return self._scored(flights)

    def _scored(self, flights: pd.DataFrame) -> pd.DataFrame:
        if self.refuse_dest is not None and (flights["dest"] == self.refuse_dest).any():
            row = int(np.flatnonzero(flights["dest"] == self.refuse_dest)[0])
            raise InputError(f"row {row}: dest {self.refuse_dest!r} is unknown", "dest", row, "allowed")
        probability = ((flights["sched_dep_time"].astype("float64") / 2400.0) * 0.8 + self.offset).clip(0, 1)
        return pd.DataFrame(
            {
                "probability": probability.astype("float64"),
                "label": (probability >= self.threshold).astype("int8"),
                "context_fallback": flights["tailnum"].isna().to_numpy(),
            }
        )

    def predict_records(self, records: list[dict[str, Any]], *, checked: bool = False) -> Scores:
        frame = pd.DataFrame(records, columns=[f.name for f in self.input_schema])
        return self._scores(frame, self.predict(frame))

    def inline_scores(self, records: list[dict[str, Any]]) -> Scores | None:
        """The real predictor's fast record path, which takes microseconds: never `delay_s`."""
        if not 0 < len(records) <= self.inline_rows:
            return None
        self.calls.append("inline")
        frame = pd.DataFrame(records, columns=[f.name for f in self.input_schema])
        return self._scores(frame, self._scored(frame))

    def _scores(self, frame: pd.DataFrame, out: pd.DataFrame) -> Scores:
        features = {c: v.tolist() for c, v in self.features(frame).items()}
        return Scores(*(out[c].to_numpy() for c in ("probability", "label", "context_fallback")), features)

    def features(self, flights: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"dep_hour": flights["sched_dep_time"] // 100, "distance": flights["distance"]})

    def canary(self) -> None:
        self.canary_started.set()
        if self.canary_s:
            time.sleep(self.canary_s)
        if self.crash_canary:
            raise ValueError("No valid specification of the columns")
        if self.fail_canary:
            raise CanaryError("example row 0: probability 0.41 differs from the recorded 0.40 by 0.01")


def fake_loader(predictors: dict[str, FakePredictor]) -> Any:
    """A loader that verifies the package directory for real (so a tampered one raises PackageError) and then
    returns the fake registered under the directory's name."""

    def load(path: Path) -> FakePredictor:
        checked = verify(path)
        predictor = predictors[checked.path.name]
        if predictor.load_error is not None:
            raise predictor.load_error
        predictor.name, predictor.package_hash = checked.path.name, checked.hash
        return predictor

    return load
