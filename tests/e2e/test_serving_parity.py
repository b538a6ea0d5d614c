"""Parity of the three ways to score a flight: the `predict` stage, `Predictor.predict` from raw validated flights
with their context, and batch scoring (`flightdelay score`) from the raw extracts. On the session's short pipeline
run (`short_run`, a real `dvc repro` in a clone, so CI runs it too): its test month 2013-03, every flight, within 1e-9.

The features stage drops flights without an arrival (no label); its rows are the others, in order. Batch scoring
also refuses the few flights to a destination the model never saw (the service's 422), which the predict stage
scored as an unknown category: they are compared through Predictor.predict(validate=False) instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.config import load_schema, parse_params
from flightdelay.release.package_format import find_package
from flightdelay.serving.features_flights import ContextSource
from flightdelay.serving.predictor import Predictor, input_problems
from flightdelay.serving.score import parse_window, score
from tests.default_params import default_params
from tests.e2e.test_pipeline import SHORT

MONTHS = ["2013-03"]  # the short run's test months (tests/e2e/test_pipeline.py SHORT)
KEYS = ["year", "month", "day", "carrier", "flight", "origin"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(short_run: Path) -> dict[str, Path]:
    assert SHORT[("features", "split")]["test"] == {"start": MONTHS[0], "end": MONTHS[-1]}
    return {
        "package": short_run / "models" / "package",
        "validated": short_run / "data" / "validated",
        "raw": short_run / "data" / "raw" / "nycflights13",
        "predictions": short_run / "data" / "predictions" / "test.parquet",
    }


@pytest.fixture(scope="module")
def stage(workspace) -> pd.DataFrame:
    return pd.read_parquet(workspace["predictions"])


@pytest.fixture(scope="module")
def flights(workspace) -> pd.DataFrame:
    frames = [pd.read_parquet(workspace["validated"] / "flights" / f"{m}.parquet") for m in MONTHS]
    return pd.concat(frames, ignore_index=True)


def test_the_predictor_on_raw_flights_gives_the_predict_stage_probabilities(workspace, stage, flights):
    predictor = Predictor.load(
        find_package(workspace["package"]), ContextSource.from_validated(workspace["validated"], MONTHS)
    )
    predictor.canary()
    out = predictor.predict(flights, validate=False)
    arrived = flights["arr_delay"].notna().to_numpy()
    assert int(arrived.sum()) == len(stage)
    np.testing.assert_allclose(out["probability"].to_numpy()[arrived], stage["prediction"], rtol=0, atol=1e-9)
    assert (out["label"] == (out["probability"] >= predictor.threshold)).all()
    # the input check refuses only the flights to a destination the model never saw
    refused = input_problems(flights, predictor.input_schema)
    assert set(refused.loc[refused["field"] != "", "field"]) <= {"dest"}
    assert (refused["field"] != "").sum() < len(flights) / 200  # a destination unseen in the training months is rare


def test_batch_scoring_of_the_raw_extracts_gives_the_predict_stage_probabilities(workspace, stage, tmp_path):
    params = parse_params(default_params())
    summary = score(
        find_package(workspace["package"]),
        raw=str(workspace["raw"]),
        window=parse_window(f"{MONTHS[0]}..{MONTHS[-1]}"),
        out_dir=tmp_path / "scores",
        schema=load_schema(workspace["package"].parent.parent / "config" / "schema.yaml"),
        ingest=params.ingest,
        validate=params.validate,
    )
    scores = pd.concat([pd.read_parquet(tmp_path / "scores" / f"{m}.parquet") for m in MONTHS], ignore_index=True)
    assert summary["total"]["scored"] == len(scores)
    assert summary["total"]["quarantined"] < len(scores) / 200
    both = scores.merge(stage[[*KEYS, "prediction"]], on=KEYS, how="inner", validate="1:1")
    assert len(both) > len(stage) * 0.995  # all but the refused destinations (the rest have no arrival: no label)
    np.testing.assert_allclose(both["probability"], both["prediction"], rtol=0, atol=1e-9)
    assert (both["package_hash"] == summary["package"]["hash"]).all()
