"""The predictor of a package made by the generic feature builder (serving/features_generic.py) on tiny frames: the
features of raw rows of the main table equal the `features` stage's, its probabilities the `predict` stage's, and a
row whose earlier rows are missing from the context gets the fallback, flagged, never an error."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.config import GenericFeatureParams, Join, Rolling
from flightdelay.core.contracts import TrainSummary
from flightdelay.core.errors import DataError
from flightdelay.modeling import generic_features as G
from flightdelay.modeling.model import build_pipeline
from flightdelay.release.package_format import PackageError
from flightdelay.serving import features_generic as FG
from flightdelay.serving.predictor import Predictor, ValidatedContext, builder_of, serving_builder, table_of
from flightdelay.stages.predict import predictions
from tests.unit.test_generic_features import RAIN_TOMORROW, STATIONS

KEYS = ["station"]
PARAMS = GenericFeatureParams(
    time_column="date",
    numeric=("temp", "rain"),
    categorical=("sky",),
    lags={"rain": (1, 2)},
    rolling={"rain": Rolling(windows=(3,), stats=("mean", "max", "sum"))},
    calendar=("month", "day_of_week", "is_weekend"),
    joins=(Join(table="stations", on=("station",), columns=("height", "kind")),),
    history={"hist_sky": ("sky",)},
)
TRAIN, TEST = ["2020-01", "2020-02"], ["2020-03"]
FIELD = {"nullable": False, "minimum": None, "maximum": None, "allowed": None, "max_length": None, "format": None}
INPUT_SCHEMA = [  # every column of the main table, as the package stage writes them (core.processed.input_fields)
    {**FIELD, "name": "date", "kind": "string", "format": "date-time", "max_length": 64},
    {**FIELD, "name": "station", "kind": "string", "max_length": 64},
    {**FIELD, "name": "rain", "kind": "number"},
    {**FIELD, "name": "temp", "kind": "number"},
    {**FIELD, "name": "sky", "kind": "string", "allowed": ["cloud", "fog", "sun"], "max_length": 64},
]


def stations_days() -> pd.DataFrame:
    """Two stations, 30 days each from 2020-01-15 (January and February train, March test), time as UTC."""
    rng = np.random.default_rng(3)
    dates = pd.date_range("2020-01-15", periods=60, freq="D", tz="UTC")
    frame = pd.DataFrame(
        {
            "date": [*dates, *dates],
            "station": ["a"] * 60 + ["b"] * 60,
            "rain": rng.choice([0.0, 0.0, 1.0, 2.5], 120),
            "temp": rng.normal(10, 3, 120).round(1),
            "sky": rng.choice(["sun", "cloud", "fog"], 120).tolist(),
        }
    )
    frame["station"] = frame["station"].astype("string")
    frame["sky"] = frame["sky"].astype("string")
    return frame


@pytest.fixture(scope="module")
def built() -> G.Built:
    frame = stations_days()
    frame[G.PERIOD] = frame["date"].dt.strftime("%Y-%m")
    return G.build(frame, STATIONS, PARAMS, KEYS, RAIN_TOMORROW, "classification", TRAIN, 2.0)


def manifest(built: G.Built) -> dict:
    numeric = [c for g, cols in built.spec.groups.items() for c in cols if c not in built.spec.categorical]
    return {
        "model": {"task": "classification", "features": {"numeric": numeric, "categorical": built.spec.categorical}},
        "params": {
            "dataset": {"table": "days", "entity_keys": KEYS},
            "features": {"builder": "generic", "generic": dataclasses.asdict(PARAMS)},
            "evaluate": {"threshold": 0.5},
        },
        "input_schema": {"days": INPUT_SCHEMA},
    }


@pytest.fixture(scope="module")
def fitted(built: G.Built):
    m = manifest(built)
    numeric, categorical = m["model"]["features"]["numeric"], m["model"]["features"]["categorical"]
    train = built.frame[built.frame[G.PERIOD].isin(TRAIN)]
    model = build_pipeline("classification", "hist_gradient_boosting", numeric, categorical, {"max_iter": 20}, 0)
    from flightdelay.modeling.model import prepare

    model.fit(prepare(train, numeric, categorical), train["rain_tomorrow"])
    summary = TrainSummary(
        task="classification",
        model="hist_gradient_boosting",
        seed=0,
        fallback_used=False,
        target="rain_tomorrow",
        numeric=numeric,
        categorical=categorical,
        rows=len(train),
        target_mean=float(train["rain_tomorrow"].mean()),
        iterations=20,
        training_loss=0.0,
    )
    return model, summary, m


def rows_features(built: G.Built, m: dict, context: pd.DataFrame | None) -> FG.GenericRows:
    state = G.GenericState.from_dict(built.state.to_dict(), "feature_state.json")  # through JSON, as packaged
    data = state.to_dict()
    ctx = None if context is None else FG.GenericContext(context, "test")
    return FG.rows_features(m, data, "feature_state.json", ctx)


def test_the_serving_module_is_chosen_by_the_manifest_s_builder():
    assert serving_builder("generic") is FG
    with pytest.raises(DataError, match="'other' is not a feature builder"):
        serving_builder("other")


def test_features_of_raw_rows_equal_the_features_stage_s(built, fitted):
    _, _, m = fitted
    raw = stations_days()
    march = raw[(raw["date"] >= "2020-03-01") & (raw["date"] < "2020-03-14")].reset_index(drop=True)  # with a target
    rows = rows_features(built, m, raw)  # the context holds the scored rows too: they are left out of it
    got, fallback = rows.compute(march)
    stage = built.frame[built.frame[G.PERIOD].isin(TEST)]
    want = stage.set_index(["station", "date"]).loc[list(zip(march["station"], march["date"], strict=True))]
    numeric, categorical = m["model"]["features"]["numeric"], m["model"]["features"]["categorical"]
    for column in numeric:
        np.testing.assert_allclose(got[column].to_numpy(), want[column].to_numpy(dtype="float64"), rtol=0, atol=1e-12)
    for column in categorical:
        assert got[column].tolist() == want[column].astype(object).tolist()
    assert not fallback.any()


def test_probabilities_equal_the_predict_stage_s(built, fitted):
    model, summary, m = fitted
    raw = stations_days()
    march = raw[raw["date"] >= "2020-03-01"]
    march = march[march["date"] < "2020-03-14"].reset_index(drop=True)  # the last day has no target in the stage
    predictor = Predictor(
        path=Path("model-0000"),
        package_hash="0" * 64,
        manifest=m,
        model=model,
        row_features=rows_features(built, m, raw),
    )
    sent = march.astype(object).assign(date=march["date"].map(lambda t: t.isoformat()))  # as a caller sends them
    got = predictor.predict(sent)
    stage = built.frame[built.frame[G.PERIOD].isin(TEST)]
    want = predictions(model, stage, summary, ["station", "date"]).set_index(["station", "date"])
    want = want.loc[list(zip(march["station"], march["date"], strict=True)), "prediction"].to_numpy()
    assert len(got) == len(march) > 20
    np.testing.assert_allclose(got["probability"].to_numpy(), want, rtol=0, atol=1e-9)
    assert not got["context_fallback"].any() and predictor.fallback_rows == 0


def test_a_row_without_its_earlier_rows_gets_the_fallback_flagged_never_an_error(built, fitted):
    _, _, m = fitted
    raw = stations_days()
    march = raw[raw["date"] >= "2020-03-10"].reset_index(drop=True)
    near = raw[raw["date"] >= "2020-03-09"]  # one day before the first scored one; windows of 3 need three
    got, fallback = rows_features(built, m, near).compute(march)
    short = (march["date"] < "2020-03-12").to_numpy()  # March 10 and 11: one and two earlier rows
    assert fallback[short].all() and not fallback[~short].any()
    first = (march["date"] == "2020-03-10").to_numpy()
    assert got.loc[first, "rain_lag2"].isna().all() and got.loc[first, "rain_lag1"].notna().all()
    alone, flags = rows_features(built, m, None).compute(march.head(1))  # no context at all
    assert flags.tolist() == [True] and np.isnan(alone["rain_lag1"].iloc[0])
    assert alone["stations_height"].iloc[0] in (10.0, 250.0) and np.isfinite(alone["hist_sky"].iloc[0])


def test_another_builder_s_context_is_refused_in_one_line(built, fitted):
    _, _, m = fitted
    with pytest.raises(DataError, match="scores with a GenericContext, not a str"):
        rows_features(built, m, None).with_context("elsewhere")


def test_the_builder_and_the_main_table_come_from_the_manifest():
    assert builder_of({"params": {"features": {"builder": "generic"}}}) == "generic"
    assert builder_of({"params": {}}) == "flights"  # a package from before features.builder: the default builder
    assert table_of({"params": {"dataset": {"table": "days"}}, "input_schema": {"columns": [], "days": []}}) == "days"
    assert table_of({"params": {}, "input_schema": {"columns": [], "flights": []}}) == "flights"  # before dataset
    with pytest.raises(PackageError, match=r"no input_schema\.days; rebuild"):
        table_of({"params": {"dataset": {"table": "days"}}, "input_schema": {"columns": []}})


def test_the_validated_context_holds_the_scored_months_and_the_months_before(tmp_path):
    raw = stations_days()
    for month, rows in raw.groupby(raw["date"].dt.strftime("%Y-%m")):
        (tmp_path / "days").mkdir(exist_ok=True)
        rows.to_parquet(tmp_path / "days" / f"{month}.parquet")
    context = FG.GenericContext.from_validated(tmp_path, ["2020-03"], "days")
    assert sorted(set(context.rows["date"].dt.strftime("%Y-%m"))) == ["2020-01", "2020-02", "2020-03"]
    every = ValidatedContext(tmp_path)
    assert every.for_package("generic", "days") is every.for_package("generic", "days")  # read once
    assert len(every.for_package("generic", "days").rows) == len(raw)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(history_smoothing="2"), "history_smoothing is '2'"),
        (lambda d: d["prior"].update(count=float("nan")), "count is 'nan'"),
        (lambda d: d["history"]["hist_sky"].update(count=["x"] * len(d["history"]["hist_sky"]["count"])), "count"),
        (lambda d: d["history"]["hist_sky"].update(sum=[-1.0] * len(d["history"]["hist_sky"]["sum"])), "sum"),
    ],
)
def test_a_hostile_state_is_refused_before_any_row_is_scored(built, change, message):
    data = json.loads(built.state.to_json())
    change(data)
    with pytest.raises(DataError, match=message):
        FG.checked_state(data, "feature_state.json")
    assert FG.checked_state(json.loads(built.state.to_json()), "feature_state.json").smoothing == 2.0
