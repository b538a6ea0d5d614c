"""A hostile package author: a feature_state.json that is valid JSON (and correctly hashed) but holds the wrong
types or non-finite numbers. checked_state (what Predictor.load reads it with) must refuse it (DataError, which
Predictor.load turns into a PackageError) instead of handing it to the feature code, whose first use would be a
TypeError (a 500 per request) or a silently wrong prediction: the canary re-scores model-input rows and never
exercises the feature state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flightdelay.core.errors import DataError
from flightdelay.serving.predictor import checked_state
from tests.unit.test_packaging import tiny_state_bytes


def state() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(tiny_state_bytes())
    return loaded


def test_the_tiny_state_is_accepted():
    assert checked_state(state(), "feature_state.json").smoothing == state()["history_smoothing"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.update(history_smoothing="20"),
        lambda s: s.update(history_smoothing=float("nan")),
        lambda s: s.update(history_smoothing=True),
        lambda s: s.update(history_smoothing=-1.0),
        lambda s: s["prior"].update(sum=[1, 2]),
        lambda s: s["prior"].update(count=float("inf")),
        lambda s: s.update(weather_trend_hours=10**30),
        lambda s: s.update(weather_trend_hours=-3),
        lambda s: s.update(holiday_country={"a": 1}),
        lambda s: s["history"]["hist_route"]["columns"].update(sum=[float("nan")]),
        lambda s: s["history"]["hist_dest"]["columns"].update(count=["10"]),
        lambda s: s["history"]["hist_tail"]["columns"].update(count=[-5]),
    ],
    ids=[
        "text",
        "nan",
        "bool",
        "negative",
        "list",
        "inf",
        "huge-hours",
        "negative-hours",
        "country-object",
        "nan-sum",
        "text-count",
        "negative-count",
    ],
)
def test_a_hostile_scalar_in_the_feature_state_is_refused(edit):
    data = state()
    edit(data)
    with pytest.raises(DataError, match=r"feature_state\.json"):
        checked_state(data, "feature_state.json")
