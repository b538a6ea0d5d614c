"""modeling.generic_features: lags, rolling windows, calendar, joins, history encodings and the target, on tiny
frames; no feature sees the current row's target or a later row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flightdelay.core import processed
from flightdelay.core.config import ClassificationTarget, GenericFeatureParams, Join, RegressionTarget, Rolling
from flightdelay.core.errors import DataError
from flightdelay.modeling import generic_features as G

DAYS = pd.date_range("2020-01-28", periods=8, freq="D")  # four days of January, four of February


def days(rain: list[float] | None = None) -> pd.DataFrame:
    """Two stations, eight days each, rows shuffled (the builder orders them by station, then date)."""
    rain = rain if rain is not None else [0, 1, 0, 2, 0, 0, 3, 0, 5, 0, 1, 1, 0, 0, 2, 4]
    frame = pd.DataFrame(
        {
            "date": [*DAYS, *DAYS],
            "station": ["a"] * 8 + ["b"] * 8,
            "rain": [float(r) for r in rain],
            "temp": np.arange(16, dtype="float64"),
            "sky": ["sun", "cloud"] * 8,
        }
    )
    frame[G.PERIOD] = frame["date"].dt.strftime("%Y-%m")
    return frame.iloc[[5, 0, 9, 14, 1, 2, 3, 15, 4, 6, 7, 8, 10, 11, 12, 13]].reset_index(drop=True)


RAIN_TOMORROW = ClassificationTarget(
    column="rain_tomorrow",
    name="rain tomorrow",
    predicts="whether it rains tomorrow",
    labels={0: "dry", 1: "rain"},
    source="rain",
    shift=-1,
    rule="> 0",
)
PARAMS = GenericFeatureParams(
    time_column="date",
    numeric=("temp", "rain"),
    categorical=("sky",),
    lags={"rain": (1, 2)},
    rolling={"rain": Rolling(windows=(3,), stats=("mean", "max", "sum"))},
    calendar=("month", "day_of_week", "is_weekend"),
    history={"hist_sky": ("sky",)},
)
STATIONS = {"stations": pd.DataFrame({"station": ["a", "b"], "height": [10.0, 250.0], "kind": ["city", "hill"]})}


def build(frame: pd.DataFrame, params: GenericFeatureParams = PARAMS, target=RAIN_TOMORROW, **kw) -> G.Built:
    return G.build(frame, STATIONS, params, ["station"], target, "classification", ["2020-01"], 2.0, **kw)


def by_day(built: G.Built, station: str) -> pd.DataFrame:
    rows = built.frame[built.frame["station"] == station]
    return rows.set_index("date")


# ------------------------------------------------------------------------------------------------ lags, rolling


def test_lags_are_earlier_rows_of_the_same_station_in_time_order():
    a = by_day(build(days()), "a")
    assert a["rain_lag1"].tolist()[:4] == pytest.approx([np.nan, 0, 1, 0], nan_ok=True)
    assert a["rain_lag2"].tolist()[:4] == pytest.approx([np.nan, np.nan, 0, 1], nan_ok=True)
    b = by_day(build(days()), "b")
    assert np.isnan(b["rain_lag1"].iloc[0])  # station b's first day has no earlier row: never a's last day


def test_rolling_windows_summarise_the_rows_before_the_current_one():
    a = by_day(build(days()), "a")
    # rain of a: 0, 1, 0, 2, 0, 0, 3, 0; the window of day 5 (index 4) is days 2 to 4: 1, 0, 2
    assert a["rain_roll3_mean"].iloc[4] == pytest.approx(1.0)
    assert a["rain_roll3_max"].iloc[4] == 2.0
    assert a["rain_roll3_sum"].iloc[4] == 3.0
    assert np.isnan(a["rain_roll3_mean"].iloc[0])


def test_no_lag_or_rolling_feature_sees_the_current_or_a_later_row():
    """Change every row from day i on (of one station) to a wild value: the lag and rolling features of day i stay
    what they were. A window that included the current row (a rolling mean without the shift) fails this."""
    base = build(days())
    past_only = [c for c in base.frame.columns if "_lag" in c or "_roll" in c]
    assert past_only
    for i, day in enumerate(DAYS):
        frame = days()
        later = (frame["station"] == "a") & (frame["date"] >= day)
        frame.loc[later, "rain"] = 1000.0 + i
        got, want = by_day(build(frame), "a"), by_day(base, "a")
        if day in want.index:  # the last day has no target, so no row
            pd.testing.assert_series_equal(got.loc[day, past_only], want.loc[day, past_only], check_names=False)


def test_calendar_parts_of_the_time_column():
    cal = G.calendar_features(pd.Series(pd.to_datetime(["2020-02-01", "2020-02-03"])), ("month", "day_of_week"))
    assert cal["month"].tolist() == [2, 2]
    assert cal["day_of_week"].tolist() == [5, 0]  # Saturday, Monday
    weekend = G.calendar_features(pd.Series(pd.to_datetime(["2020-02-01", "2020-02-03"])), ("is_weekend",))
    assert weekend["is_weekend"].tolist() == [1, 0]


# ------------------------------------------------------------------------------------------------ target


def test_the_target_is_the_next_row_of_the_same_station_through_the_rule():
    built = build(days())
    a = by_day(built, "a")
    # rain of a: 0, 1, 0, 2, 0, 0, 3, 0 -> tomorrow > 0: 1, 0, 1, 0, 0, 1, 0, (none: dropped)
    assert a["rain_tomorrow"].tolist() == [1, 0, 1, 0, 0, 1, 0]
    assert built.frame["rain_tomorrow"].dtype == "int8"
    assert built.dropped.tolist() == ["2020-02", "2020-02"]  # each station's last day


def test_a_regression_target_is_the_later_value():
    target = RegressionTarget(column="rain_mm", name="rain", predicts="rain", unit="mm", source="rain", shift=-1)
    built = G.build(days(), STATIONS, PARAMS, ["station"], target, "regression", ["2020-01"], 2.0)
    a = by_day(built, "a")
    assert a["rain_mm"].tolist() == [1, 0, 2, 0, 0, 3, 0]


def test_the_target_s_own_value_is_no_feature_of_the_same_row():
    same_day = ClassificationTarget(
        column="rained", name="r", predicts="r", labels={0: "dry", 1: "rain"}, source="rain", shift=0, rule="> 0"
    )
    with pytest.raises(DataError, match=r"'rain' is the target's own value .* use its lags or rolling windows"):
        build(days(), target=same_day)
    lags_only = GenericFeatureParams(time_column="date", lags={"rain": (1,)}, rolling=PARAMS.rolling)
    built = build(days(), lags_only, target=same_day)
    assert built.spec.leaky_columns == ["rain", "rained"]  # train refuses both as features


def test_a_missing_column_is_named():
    params = GenericFeatureParams(time_column="date", numeric=("humidity",))
    with pytest.raises(DataError, match=r"column\(s\) \['humidity'\] are not in the main table"):
        build(days(), params)


def test_a_name_made_twice_is_refused():
    params = GenericFeatureParams(time_column="date", numeric=("temp",), history={"temp": ("sky",)})
    with pytest.raises(DataError, match=r"column name\(s\) \['temp'\] made twice"):
        build(days(), params)


# ------------------------------------------------------------------------------------------------ joins


def test_joined_columns_come_by_key_and_text_is_categorical():
    params = GenericFeatureParams(
        time_column="date", joins=(Join(table="stations", on=("station",), columns=("height", "kind")),)
    )
    built = build(days(), params)
    assert by_day(built, "b")["stations_height"].unique().tolist() == [250.0]
    assert by_day(built, "a")["stations_kind"].unique().tolist() == ["city"]
    assert built.spec.groups["joined"] == ["stations_height", "stations_kind"]
    assert "stations_kind" in built.spec.categorical
    assert built.state.joined["stations"]["height"].tolist() == [10.0, 250.0]


def test_a_joined_table_with_a_repeated_key_is_refused_naming_the_row():
    params = GenericFeatureParams(
        time_column="date", joins=(Join(table="stations", on=("station",), columns=("height",)),)
    )
    doubled = {"stations": pd.DataFrame({"station": ["a", "b", "a"], "height": [1.0, 2.0, 3.0]})}
    with pytest.raises(DataError, match=r"^stations: row 2 repeats key \['station'\] = \['a'\]"):
        G.build(days(), doubled, params, ["station"], RAIN_TOMORROW, "classification", ["2020-01"], 2.0)


# ------------------------------------------------------------------------------------------------ history


def test_history_leaves_a_training_row_s_own_month_out_and_test_rows_see_every_training_month():
    train_months = ["2020-01", "2020-02"]
    built = G.build(days(), STATIONS, PARAMS, ["station"], RAIN_TOMORROW, "classification", train_months, 2.0)
    f = built.frame
    for _, row in f.iterrows():
        others = f[(f[G.PERIOD] != row[G.PERIOD])]
        same = others[others["sky"] == row["sky"]]
        prior = others["rain_tomorrow"].mean()
        want = (same["rain_tomorrow"].sum() + 2.0 * prior) / (len(same) + 2.0)
        assert row["hist_sky"] == pytest.approx(want)


def test_history_learns_from_training_months_only():
    """The test month's outcomes (the targets of February's rows: the rain of February 2 on) change no feature.
    February 1's rain is January 31's target, a training outcome."""
    base = build(days())
    frame = days()
    feb = frame["date"] >= "2020-02-02"
    frame.loc[feb, "rain"] = np.where(frame.loc[feb, "rain"] > 0, 0.0, 9.0)  # every test outcome flipped
    flipped = build(frame)
    assert (base.frame["rain_tomorrow"] != flipped.frame["rain_tomorrow"]).any()
    assert base.frame["hist_sky"].tolist() == flipped.frame["hist_sky"].tolist()


def test_history_state_is_the_sums_over_every_training_month():
    built = build(days())
    state = built.state
    jan = built.frame[built.frame[G.PERIOD] == "2020-01"]
    assert state.prior_sum == jan["rain_tomorrow"].sum()
    assert state.prior_count == len(jan)
    table = state.history["hist_sky"].set_index("sky")
    assert table.loc["sun", "count"] == (jan["sky"] == "sun").sum()


# ------------------------------------------------------------------------------------------------ spec and state


def test_the_spec_names_groups_targets_and_ids():
    spec = build(days()).spec
    assert spec.groups["current"] == ["temp", "rain", "sky"]
    assert spec.groups["lags"] == ["rain_lag1", "rain_lag2"]
    assert spec.groups["history"] == ["hist_sky"]
    assert spec.categorical == ["sky"]
    assert spec.targets == {"classification": "rain_tomorrow"}
    assert spec.id_columns == ["date", "station"]


def test_the_state_is_json_data_and_reads_back():
    state = build(days()).state
    text = state.to_json()
    data = json.loads(text)
    assert data["format"] == G.STATE_FORMAT
    again = G.GenericState.from_dict(data, "feature_state.json")
    assert again.to_json() == text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": 1}, r"feature state format 1, expected 'generic-1'"),
        ({"format": "generic-1", "prior": {}}, r"not a feature state \(KeyError"),
    ],
)
def test_a_state_of_another_shape_is_refused(data, message):
    with pytest.raises(DataError, match=rf"^state.json: {message}"):
        G.GenericState.from_dict(data, "state.json")


def test_without_entity_keys_the_table_is_one_series():
    frame = days()
    one = frame[frame["station"] == "a"].drop(columns=["station"]).reset_index(drop=True)
    params = GenericFeatureParams(time_column="date", lags={"rain": (1,)})
    built = G.build(one, {}, params, [], RAIN_TOMORROW, "classification", ["2020-01"], 2.0)
    assert built.frame["rain_lag1"].tolist() == pytest.approx([np.nan, 0, 1, 0, 2, 0, 0], nan_ok=True)
    assert built.frame["rain_tomorrow"].tolist() == [1, 0, 1, 0, 0, 1, 0]
    assert built.spec.id_columns == ["date"]


def test_input_fields_are_every_column_of_the_main_table_with_seen_categories():
    from flightdelay.core.config import parse_schema

    schema = parse_schema(
        {
            "tables": {
                "days": {
                    "partitioned": True,
                    "period": {"year": "year", "month": "month"},
                    "key": ["date"],
                    "columns": {
                        "year": {"dtype": "int", "min": 1900, "max": 2100},
                        "month": {"dtype": "int", "min": 1, "max": 12},
                        "date": {"dtype": "datetime"},
                        "rain": {"dtype": "float", "min": 0, "nullable": True},
                        "sky": {"dtype": "str", "allowed": ["sun", "fog", "snow"]},
                    },
                }
            }
        }
    )
    fields = {
        f["name"]: f for f in processed.input_fields(schema.table("days").columns, {"sky": ["fog", "sun", "hail"]})
    }
    assert list(fields) == ["year", "month", "date", "rain", "sky"]
    assert fields["date"]["kind"] == "string" and fields["date"]["format"] == "date-time"
    assert fields["rain"] == {**fields["rain"], "kind": "number", "nullable": True, "minimum": 0.0, "maximum": None}
    assert fields["sky"]["allowed"] == ["fog", "sun"]  # seen in training and allowed by the schema
