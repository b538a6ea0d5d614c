"""A few tiny fitted pipelines, every model kind and task (tests/unit/test_model.py, tests/security): plain data,
and no skops import, so that a test may import these in a process that must import skops its own way."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from flightdelay.modeling.model import build_pipeline, prepare

NUMERIC = ["distance", "temp"]
CATEGORICAL = ["carrier", "origin"]
TARGETS = {"classification": "late", "regression": "arr_delay"}
PARAMS = {
    "hist_gradient_boosting": {"max_iter": 5},
    "logistic_regression": {"max_iter": 200},
    "constant": {},
}


def synthetic(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    carrier = rng.choice(["UA", "AA", "DL", "B6"], n).astype(object)
    carrier[rng.random(n) < 0.15] = None
    temp = rng.normal(50, 10, n)
    temp[rng.random(n) < 0.2] = np.nan
    distance = rng.uniform(100, 2000, n)
    late = ((carrier == "UA") | (distance > 1500)).astype("int8")
    late[:2] = [0, 1]  # both classes even for unlucky seeds
    return pd.DataFrame(
        {
            "carrier": pd.array(carrier, dtype="string"),
            "origin": pd.array(rng.choice(["EWR", "JFK", "LGA"], n), dtype="string"),
            "distance": distance,
            "temp": temp,
            "late": late,
            "arr_delay": distance / 50 + rng.normal(0, 5, n),
        }
    )


def fit(task: str, model: str, frame: pd.DataFrame, seed: int = 0) -> Pipeline:
    pipeline = build_pipeline(task, model, NUMERIC, CATEGORICAL, PARAMS[model], seed)
    return pipeline.fit(prepare(frame, NUMERIC, CATEGORICAL), frame[TARGETS[task]].to_numpy())


def predict(pipeline: Pipeline, task: str, frame: pd.DataFrame) -> np.ndarray:
    X = prepare(frame, NUMERIC, CATEGORICAL)
    return pipeline.predict_proba(X)[:, 1] if task == "classification" else pipeline.predict(X)
