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
from flightdelay.serving.features_flights import checked_state
from flightdelay.serving.predictor import InputField
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


FIELD = {"name": "year", "kind": "integer", "nullable": False, "minimum": 1900.0, "maximum": 2100.0}


def test_a_plain_input_schema_entry_is_accepted():
    assert InputField.from_dict(FIELD).maximum == 2100.0


@pytest.mark.parametrize(
    "entry",
    [
        {k: v for k, v in FIELD.items() if k != "name"},
        {**FIELD, "kind": "bytes"},
        {**FIELD, "nullable": "no"},
        {**FIELD, "minimum": "1900"},
        {**FIELD, "maximum": float("inf")},
        {**FIELD, "allowed": "AA"},
        {**FIELD, "max_length": -1},
        ["year"],
    ],
    ids=["no-name", "kind", "nullable-text", "minimum-text", "maximum-inf", "allowed-text", "max-length", "list"],
)
def test_a_hostile_input_schema_entry_is_refused(entry):
    # the canary never reads the input schema: such a package loaded, passed its canary, went live, and then
    # every /predict was a 500 (the request model could not be built) or the load itself was a KeyError
    with pytest.raises(DataError, match="input_schema"):
        InputField.from_dict(entry)
