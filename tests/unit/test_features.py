"""stages.features and modeling.flight_features: labels, schedule/holiday/congestion/weather features, history,
the context lookups, the feature state and the frame."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.config import FeatureParams, Split, TrainRange, Window
from flightdelay.core.errors import DataError
from flightdelay.modeling import flight_features as FF
from flightdelay.stages import features as F


def I(values) -> pd.arrays.IntegerArray:  # noqa: E743 - short helpers keep the inline frames readable
    return pd.array(values, dtype="Int64")


def S(values) -> pd.arrays.StringArray:
    return pd.array(values, dtype="string")


def utc(stamps: list[str]) -> pd.Series:
    return pd.Series(pd.to_datetime(stamps, utc=True)).astype("datetime64[ns, UTC]")


# ------------------------------------------------------------------------------------------------ label


def delays() -> pd.DataFrame:
    return pd.DataFrame({"flight": I([1, 2, 3, 4, 5]), "arr_delay": [20.0, 15.0, np.nan, -3.0, 15.5]})


def test_label_drop_removes_rows_without_arrival():
    frame = delays()
    out, dropped = FF.label(frame, "drop")
    assert dropped == 1
    assert out["flight"].tolist() == [1, 2, 4, 5]
    assert out["late"].tolist() == [1, 0, 0, 1]  # late is strictly more than 15 minutes
    assert out["late"].dtype == "int8"
    assert out.index.tolist() == [0, 1, 2, 3]
    assert "late" not in frame.columns  # the input is not changed


def test_label_late_keeps_rows_without_arrival_as_late():
    out, dropped = FF.label(delays(), "late")
    assert dropped == 0
    assert out["flight"].tolist() == [1, 2, 3, 4, 5]
    assert out["late"].tolist() == [1, 0, 1, 0, 1]
    assert pd.isna(out["arr_delay"].iloc[2])


# ------------------------------------------------------------------------------------------------ schedule


def test_schedule_features():
    flights = pd.DataFrame(
        {
            "year": I([2013, 2013, 2013]),
            "month": I([7, 7, 7]),
            "day": I([3, 6, 8]),  # Wednesday, Saturday, Monday
            "sched_dep_time": I([2330, 615, 5]),
            "sched_arr_time": I([130, 900, 159]),
        }
    )
    out = FF.schedule_features(flights)
    assert out["day_of_week"].tolist() == [2, 5, 0]
    assert out["is_weekend"].tolist() == [0, 1, 0]
    assert out["dep_hour"].tolist() == [23, 6, 0]
    assert out["dep_minute_of_day"].tolist() == [23 * 60 + 30, 6 * 60 + 15, 5]
    assert out["arr_hour"].tolist() == [1, 9, 1]
    assert out["overnight"].tolist() == [1, 0, 0]
    assert out["month"].tolist() == [7, 7, 7]
    assert out["day_of_month"].tolist() == [3, 6, 8]


def pandas_schedule(flights: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """flight_dates and schedule_features by pandas alone (their path for unusual columns, the code before numpy)."""
    date = FF._dates_by_pandas(flights)
    return date, FF._schedule_by_pandas(flights, date)


@pytest.mark.parametrize("dtype", ["Int64", "int64", "int16"])
def test_numpy_dates_and_schedule_are_pandas_own(dtype):
    rng = np.random.default_rng(7)
    n = 3_000
    year = rng.integers(1900, 2200, n)
    month = rng.integers(1, 13, n)
    day = np.minimum(rng.integers(1, 32, n), pd.Series(pd.to_datetime({"year": year, "month": month, "day": 1}))
                     .dt.days_in_month.to_numpy())  # fmt: skip
    flights = pd.DataFrame(
        {
            # leap days, the epoch and the day before it, and years far outside the data's
            "year": np.r_[year, [2012, 2013, 1970, 1969, 2000, 1, 1600, 2300, 9999, 10000]],
            "month": np.r_[month, [2, 12, 1, 12, 2, 1, 2, 3, 12, 6]],
            "day": np.r_[day, [29, 31, 1, 31, 29, 1, 29, 31, 31, 15]],
            "sched_dep_time": np.r_[rng.integers(0, 2400, n), [0, 2359, 1, 5, 1200, 800, 900, 1000, 1100, 1300]],
            "sched_arr_time": np.r_[rng.integers(0, 2400, n), [2359, 0, 1, 4, 1200, 700, 950, 1000, 1000, 1400]],
        }
    ).astype(dtype)
    flights.index = flights.index + 10  # kept, as pandas keeps it
    date, schedule = pandas_schedule(flights)
    pd.testing.assert_series_equal(FF.flight_dates(flights), date, check_exact=True)
    pd.testing.assert_frame_equal(FF.schedule_features(flights), schedule, check_exact=True)


@pytest.mark.parametrize(
    ("year", "month", "day"),
    [(2013, 2, 29), (2013, 4, 31), (2013, 13, 1), (2013, 0, 5), (2013, 5, 0)],
    ids=["no-leap-day", "april-31", "month-13", "month-0", "day-0"],
)
def test_a_date_the_calendar_does_not_have_is_pandas_own_error(year, month, day):
    flights = pd.DataFrame({"year": I([2013, year]), "month": I([1, month]), "day": I([1, day])})
    with pytest.raises(ValueError) as expected:
        FF._dates_by_pandas(flights)
    with pytest.raises(ValueError) as got:
        FF.flight_dates(flights)
    assert str(got.value) == str(expected.value)


def outcome(call) -> tuple[str, str]:
    """What a call gives: its value, or its error's type and message."""
    try:
        return "value", repr(call())
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("missing", ["year", "day", "sched_dep_time", "sched_arr_time"], ids=lambda c: f"missing-{c}")
def test_a_missing_part_takes_pandas_path_and_its_outcome(missing):
    flights = pd.DataFrame(
        {
            "year": I([2013, 2013]),
            "month": I([1, 1]),
            "day": I([1, 2]),
            "sched_dep_time": I([600, 700]),
            "sched_arr_time": I([800, 900]),
        }
    )
    flights[missing] = I([flights[missing].iloc[0], None])
    reference = outcome(lambda: pandas_schedule(flights))
    assert reference[0] != "value"  # pandas refuses it: a missing part is never scored quietly
    assert outcome(lambda: (FF.flight_dates(flights), FF.schedule_features(flights))) == reference


# ------------------------------------------------------------------------------------------------ holidays


US_HOLIDAYS = FF.holiday_calendar("US", 2012, 2015)


def test_holiday_features_outside_the_calendar_are_missing_and_flagged():
    dates = pd.Series(pd.to_datetime(["2013-07-03", "2015-07-03", "2011-07-03"]))
    out, outside = FF.holiday_features(dates, US_HOLIDAYS)
    assert outside.tolist() == [False, True, True]  # 2015: no 2016 holidays to count to; 2011: before it
    assert out["days_to_next_holiday"].iloc[0] == 1
    assert out.iloc[1:].isna().all().all()


def test_holiday_features_around_independence_day():
    dates = pd.Series(pd.to_datetime(["2013-07-03", "2013-07-04", "2013-07-05", "2013-05-27"]), index=[5, 6, 7, 8])
    out, outside = FF.holiday_features(dates, US_HOLIDAYS)
    assert not outside.any()
    assert out.index.tolist() == [5, 6, 7, 8]
    # previous holiday: Memorial Day 2013-05-27; next after July 4th: Labor Day 2013-09-02 (59 days)
    assert out["days_to_next_holiday"].tolist() == [1, 0, 59, 0]
    assert out["days_since_prev_holiday"].tolist() == [37, 0, 1, 0]


def test_holiday_features_across_new_year_and_capped_at_60():
    dates = pd.Series(pd.to_datetime(["2013-12-31", "2013-08-15"]))
    out, _ = FF.holiday_features(dates, US_HOLIDAYS)
    assert out["days_to_next_holiday"].tolist() == [1, 18]  # 2014-01-01; Labor Day 2013-09-02
    assert out["days_since_prev_holiday"].tolist() == [6, 42]  # Christmas; July 4th
    far, _ = FF.holiday_features(pd.Series(pd.to_datetime(["2013-03-01"])), US_HOLIDAYS)
    assert far["days_to_next_holiday"].iloc[0] == 60  # Memorial Day is 87 days away
    assert far["days_since_prev_holiday"].iloc[0] == 11  # Washington's Birthday 2013-02-18


# ------------------------------------------------------------------------------------------------ congestion


def schedule() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "year": I([2013] * 6),
            "month": I([1] * 6),
            "day": I([1, 1, 1, 1, 1, 2]),
            "sched_dep_time": I([900, 615, 930, 1400, 1000, 900]),
            "origin": S(["EWR", "EWR", "EWR", "JFK", "EWR", "EWR"]),
            "carrier": S(["UA", "UA", "AA", "UA", "UA", "UA"]),
            "dest": S(["ORD", "ORD", "LAX", "ORD", "MIA", "ORD"]),
            "tailnum": S(["N1", "N2", "N1", None, "N1", "N1"]),
        }
    )


def test_congestion_counts():
    out = FF.congestion_features(schedule())
    assert out["origin_hour_departures"].tolist() == [2, 1, 2, 1, 1, 1]
    assert out["origin_day_departures"].tolist() == [4, 4, 4, 1, 4, 1]
    assert out["carrier_origin_day_departures"].tolist() == [3, 3, 1, 1, 3, 1]
    assert out["dest_day_flights"].tolist() == [3, 3, 1, 3, 1, 1]
    assert (out.dtypes == "float64").all()


def test_tail_leg_of_day_follows_departure_time_not_row_order():
    out = FF.congestion_features(schedule())
    # N1 on day 1 departs 09:00 (row 0), 09:30 (row 2), 10:00 (row 4); day 2 starts again
    assert out["tail_leg_of_day"].tolist()[:3] == [1, 1, 2]
    assert out["tail_leg_of_day"].iloc[4] == 3
    assert out["tail_leg_of_day"].iloc[5] == 1
    assert out["tail_minutes_since_prev"].iloc[2] == 30
    assert out["tail_minutes_since_prev"].iloc[4] == 30
    assert out["tail_minutes_since_prev"].iloc[[0, 1, 5]].isna().all()
    # no tail number: no leg
    assert np.isnan(out["tail_leg_of_day"].iloc[3])
    assert np.isnan(out["tail_minutes_since_prev"].iloc[3])


def test_tail_leg_of_day_reversed_rows_same_answer():
    flights = schedule()
    forward = FF.congestion_features(flights)
    backward = FF.congestion_features(flights.iloc[::-1])
    pd.testing.assert_frame_equal(backward.sort_index(), forward)


# ------------------------------------------------------------------------------------------------ weather


def hourly_weather() -> pd.DataFrame:
    hours = pd.date_range("2013-01-01 03:00", periods=6, freq="h", tz="UTC").delete(2)  # 05:00 is missing
    ewr = pd.DataFrame(
        {
            "origin": S(["EWR"] * 5),
            "time_hour": hours,
            "temp": 1.0,
            "dewp": 1.0,
            "humid": 1.0,
            "wind_dir": 1.0,
            "wind_speed": [1.0, 5.0, 2.0, 3.0, 0.0],
            "wind_gust": np.nan,
            "precip": [0.1, 0.2, 0.0, 0.3, 0.0],
            "pressure": [1010.0, 1012.0, 1013.0, 1014.0, 1020.0],
            "visib": [10.0, 2.0, 5.0, 8.0, 10.0],
        }
    )
    jfk = ewr.iloc[[0]].assign(origin=S(["JFK"]), precip=0.5, pressure=1000.0)
    return pd.concat([jfk, ewr.iloc[::-1]], ignore_index=True)  # origins interleaved, hours reversed


def test_weather_table_fills_the_hourly_grid():
    out = FF.weather_table(hourly_weather(), 2)
    ewr = out[out["origin"] == "EWR"].reset_index(drop=True)
    assert ewr["time_hour"].tolist() == list(pd.date_range("2013-01-01 03:00", periods=6, freq="h", tz="UTC"))
    assert ewr.loc[2, ["temp", "precip", "pressure"]].isna().all()
    assert (out["origin"] == "JFK").sum() == 1


def test_weather_trend_features():
    out = FF.weather_table(hourly_weather(), 2)
    ewr = out[out["origin"] == "EWR"].reset_index(drop=True)
    # window = the hour itself and the 2 before it (missing hours ignored)
    assert ewr["precip_trend_sum"].tolist() == pytest.approx([0.1, 0.3, 0.3, 0.2, 0.3, 0.3])
    assert ewr["visib_trend_min"].tolist() == [10.0, 2.0, 2.0, 2.0, 5.0, 5.0]
    assert ewr["wind_trend_max"].tolist() == [1.0, 5.0, 5.0, 5.0, 3.0, 3.0]
    # pressure now minus 2 hours earlier; NaN where either is missing
    change = ewr["pressure_trend_change"]
    assert change.iloc[[0, 1, 2, 4]].isna().all()
    assert change.iloc[3] == pytest.approx(1013.0 - 1012.0)
    assert change.iloc[5] == pytest.approx(1020.0 - 1013.0)


def test_precip_day_so_far_resets_at_local_midnight():
    out = FF.weather_table(hourly_weather(), 2)
    ewr = out[out["origin"] == "EWR"].reset_index(drop=True)
    # 03:00 and 04:00 UTC are Dec 31 in New York; 05:00 UTC is local midnight
    assert ewr["precip_day_so_far"].tolist() == pytest.approx([0.1, 0.3, 0.0, 0.0, 0.3, 0.3])


def test_weather_table_origins_do_not_mix():
    out = FF.weather_table(hourly_weather(), 2)
    jfk = out[out["origin"] == "JFK"].iloc[0]
    assert jfk["precip_trend_sum"] == 0.5
    assert jfk["pressure"] == 1000.0


def test_weather_table_keeps_the_first_of_duplicate_hours():
    weather = hourly_weather()
    duplicate = weather[weather["origin"] == "JFK"].assign(temp=99.0)
    out = FF.weather_table(pd.concat([weather, duplicate], ignore_index=True), 2)
    jfk = out[out["origin"] == "JFK"]
    assert len(jfk) == 1
    assert jfk["temp"].iloc[0] == 1.0


# ------------------------------------------------------------------------------------------------ history


def training_month(month: int, routes: list[tuple[str, int]]) -> pd.DataFrame:
    """Rows of one month: (dest, late). Flight and tail follow the destination."""
    n = len(routes)
    dests = [d for d, _ in routes]
    return pd.DataFrame(
        {
            "month": pd.array([month] * n, dtype="int16"),
            "origin": S(["EWR"] * n),
            "dest": S(dests),
            "carrier": S(["UA"] * n),
            "dep_hour": pd.array([9] * n, dtype="int16"),
            "flight": I([1 if d == "ORD" else 2 for d in dests]),
            "tailnum": S(["N1" if d == "ORD" else "N2" for d in dests]),
            "late": pd.array([late for _, late in routes], dtype="int8"),
        }
    )


JAN = training_month(1, [("ORD", 1), ("ORD", 1), ("ORD", 1), ("LAX", 0)])
FEB = training_month(2, [("ORD", 1), ("ORD", 0), ("LAX", 0), ("LAX", 0)])
PERIODS = [("2013-01", JAN), ("2013-02", FEB)]


def test_history_collect_sums_per_key_and_period():
    history = FF.History.collect(PERIODS, "late")
    assert history.overall[["period", "sum", "count"]].values.tolist() == [["2013-01", 3, 4], ["2013-02", 1, 4]]
    route = history.totals["hist_route"]
    assert route.stats[["dest", "sum", "count"]].values.tolist() == [["LAX", 0, 3], ["ORD", 4, 5]]
    assert route.months.tolist() == [2, 2]  # each route flew in both months
    assert set(history.totals) == set(FF.HISTORY_KEYS)


def test_history_keeps_the_same_month_of_two_years_apart():
    # January 2013 and January 2014 are two periods: leaving out a row's own month leaves the other year in.
    jan_2014 = training_month(1, [("ORD", 0), ("ORD", 0), ("LAX", 1), ("LAX", 1)])
    history = FF.History.collect([("2013-01", JAN), ("2014-01", jan_2014)], "late")
    assert history.overall["period"].tolist() == ["2013-01", "2014-01"]
    out = history.apply(JAN, smoothing=0.0, exclude_period="2013-01")
    assert out["hist_route"].tolist() == pytest.approx([0 / 2] * 3 + [2 / 2])  # 2014 only
    out = history.apply(jan_2014, smoothing=0.0, exclude_period="2014-01")
    assert out["hist_route"].tolist() == pytest.approx([3 / 3] * 2 + [0 / 1] * 2)  # 2013 only


def test_history_without_smoothing_is_the_mean_over_training_months():
    history = FF.History.collect(PERIODS, "late")
    test = training_month(11, [("ORD", 0), ("LAX", 1), ("SFO", 0)])
    out = history.apply(test, smoothing=0.0, exclude_period=None)
    assert out["hist_route"].tolist() == pytest.approx([4 / 5, 0 / 3, 4 / 8])  # unseen route -> overall rate
    assert out["hist_carrier_hour"].tolist() == pytest.approx([4 / 8] * 3)
    assert out["late"].tolist() == [0, 1, 0]  # the frame's own labels are untouched and not used


def test_history_smoothing_pulls_toward_the_prior():
    history = FF.History.collect(PERIODS, "late")
    test = training_month(11, [("ORD", 0), ("LAX", 0)])
    prior = 4 / 8
    out = history.apply(test, smoothing=4.0, exclude_period=None)
    assert out["hist_route"].tolist() == pytest.approx([(4 + 4 * prior) / (5 + 4), (0 + 4 * prior) / (3 + 4)])
    heavy = history.apply(test, smoothing=1e9, exclude_period=None)
    assert heavy["hist_route"].tolist() == pytest.approx([prior, prior])


def test_history_leaves_out_a_training_rows_own_month():
    history = FF.History.collect(PERIODS, "late")
    out = history.apply(JAN, smoothing=2.0, exclude_period="2013-01")
    prior = 1 / 4  # February only
    ord_rate = (1 + 2 * prior) / (2 + 2)
    lax_rate = (0 + 2 * prior) / (2 + 2)
    assert out["hist_route"].tolist() == pytest.approx([ord_rate] * 3 + [lax_rate])
    assert out["hist_tail"].tolist() == pytest.approx([ord_rate] * 3 + [lax_rate])


def test_history_of_a_training_month_ignores_that_months_labels():
    flipped = JAN.assign(late=(1 - JAN["late"]).astype("int8"))
    before = FF.History.collect(PERIODS, "late").apply(JAN, 5.0, exclude_period="2013-01")
    after = FF.History.collect([("2013-01", flipped), ("2013-02", FEB)], "late").apply(
        flipped, 5.0, exclude_period="2013-01"
    )
    columns = list(FF.HISTORY_KEYS)
    pd.testing.assert_frame_equal(before[columns], after[columns])
    # ...while another month's history does depend on them
    other = FF.History.collect([("2013-01", flipped), ("2013-02", FEB)], "late").apply(
        FEB, 5.0, exclude_period="2013-02"
    )
    assert not np.allclose(
        other["hist_route"], FF.History.collect(PERIODS, "late").apply(FEB, 5.0, "2013-02")["hist_route"]
    )


def test_history_key_seen_only_in_its_own_month_gets_the_prior():
    jan = training_month(1, [("ORD", 1), ("BOS", 1)])
    history = FF.History.collect([("2013-01", jan), ("2013-02", FEB)], "late")
    out = history.apply(jan, smoothing=0.0, exclude_period="2013-01")
    assert out.loc[out["dest"] == "BOS", "hist_dest"].iloc[0] == pytest.approx(1 / 4)


# ------------------------------------------------------------------------------------------------ build_frame


def flights_partition() -> pd.DataFrame:
    """Four flights of 2013-01-01 as validate writes them; flight 3 was cancelled (no arrival)."""
    return pd.DataFrame(
        {
            "year": I([2013] * 4),
            "month": I([1] * 4),
            "day": I([1] * 4),
            "dep_time": I([905, 1000, None, 1102]),
            "sched_dep_time": I([900, 1000, 1030, 1100]),
            "dep_delay": [5.0, 0.0, np.nan, 2.0],
            "arr_time": I([1200, 1300, None, 1400]),
            "sched_arr_time": I([1130, 1300, 1330, 1400]),
            "arr_delay": [30.0, 0.0, np.nan, 0.0],
            "carrier": S(["UA", "AA", "UA", "UA"]),
            "flight": I([1, 2, 3, 4]),
            "tailnum": S(["N1", "N2", "N1", None]),
            "origin": S(["EWR", "JFK", "EWR", "EWR"]),
            "dest": S(["ORD", "LAX", "ORD", "MIA"]),
            "air_time": [100.0, 300.0, np.nan, 150.0],
            "distance": [719.0, 2475.0, 719.0, 1085.0],
            "hour": I([9, 10, 10, 11]),
            "minute": I([0, 0, 30, 0]),
            "time_hour": utc(["2013-01-01 14:00", "2013-01-01 15:00", "2013-01-01 15:00", "2013-01-01 16:00"]),
            "_source": S(["flights/2013-01.csv"] * 4),
            "_row": np.arange(1, 5, dtype="int64"),
        }
    )


def weather_rows() -> pd.DataFrame:
    hours = utc([f"2013-01-01 {h:02d}:00" for h in range(12, 18)])
    parts = [
        pd.DataFrame(
            {
                "origin": S([origin] * 6),
                "year": I([2013] * 6),
                "month": I([1] * 6),
                "day": I([1] * 6),
                "hour": I(range(12, 18)),
                "temp": temp,
                "dewp": 20.0,
                "humid": 50.0,
                "wind_dir": 180.0,
                "wind_speed": 10.0,
                "wind_gust": np.nan,
                "precip": 0.0,
                "pressure": 1010.0,
                "visib": 10.0,
                "time_hour": hours,
            }
        )
        for origin, temp in (("EWR", 30.0), ("JFK", 40.0))
    ]
    return pd.concat(parts, ignore_index=True)


def planes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tailnum": S(["N1", "N2", "N1"]),
            "year": I([2000, None, 1990]),
            "type": S(["Fixed wing multi engine"] * 3),
            "manufacturer": S(["BOEING", "AIRBUS", "OTHER"]),
            "model": S(["737", "A320", "x"]),
            "engines": I([2, 2, 4]),
            "seats": I([150, 180, 10]),
            "speed": [np.nan, np.nan, np.nan],
            "engine": S(["Turbo-fan"] * 3),
        }
    )


def test_aircraft_table_one_row_per_tail():
    out = FF.aircraft_table(planes())
    assert out["tailnum"].tolist() == ["N1", "N2"]
    assert out["plane_year"].tolist()[0] == 2000.0
    assert np.isnan(out["plane_year"].tolist()[1])
    assert out["plane_type"].tolist() == ["Fixed wing multi engine"] * 2


SPLIT = Split(train=TrainRange(start="2013-01", end="2013-01"), test=Window("2013-02", "2013-02"))
PARAMS = FeatureParams(split=SPLIT)


def build(flights: pd.DataFrame, weather: pd.DataFrame, params: FeatureParams) -> tuple[pd.DataFrame, int]:
    """The features stage's frame for one partition: its own schedule as context, no history yet."""
    context = FF.FeatureContext(flights, FF.WeatherLookup(weather))
    state = F.initial_state(params, FF.aircraft_table(planes()), 2013, 2013)
    return F.build_frame(flights, context, state, params.missing_target, (0.0, 0.0, {}))


def test_build_frame_has_every_non_history_feature_and_no_leaky_column():
    weather = FF.weather_table(weather_rows(), 3)
    frame, dropped = build(flights_partition(), weather, PARAMS)
    assert dropped == 1
    assert frame["flight"].tolist() == [1, 2, 4]
    features = [c for group, cols in F.FEATURE_GROUPS.items() if group != "history" for c in cols]
    assert not [c for c in features if c not in frame.columns]
    for group, cols in F.FEATURE_GROUPS.items():
        assert not set(cols) & F.LEAKY, group
    # leaky inputs never reach the frame except the targets, which are kept apart from the features
    assert set(frame.columns) & F.LEAKY == {"arr_delay", "late"}
    for column in FF.CATEGORICAL:
        assert str(frame[column].dtype) == "string", column


def test_build_frame_joins_weather_and_aircraft():
    weather = FF.weather_table(weather_rows(), 3)
    frame, _ = build(flights_partition(), weather, PARAMS)
    assert frame["temp"].tolist() == [30.0, 40.0, 30.0]  # by origin
    assert frame["plane_age"].tolist()[0] == 13.0
    assert np.isnan(frame["plane_age"].iloc[1])  # N2 has no year
    assert np.isnan(frame["seats"].iloc[2])  # no tail number
    assert frame["seats"].iloc[0] == 150.0  # the first N1 row of planes
    assert frame["days_to_next_holiday"].tolist() == [0, 0, 0]  # New Year's Day
    assert frame["late"].tolist() == [1, 0, 0]


def test_build_frame_with_history_has_every_feature():
    weather = FF.weather_table(weather_rows(), 3)
    frame, _ = build(flights_partition(), weather, PARAMS)
    out = FF.History.collect([("2013-01", frame)], "late").apply(frame, 50.0, exclude_period=None)
    features = {c for cols in F.FEATURE_GROUPS.values() for c in cols}
    assert features <= set(out.columns)
    assert len(out) == len(frame)
    assert out[list(FF.HISTORY_KEYS)].notna().all().all()


def test_build_frame_late_keeps_cancelled_flights():
    weather = FF.weather_table(weather_rows(), 3)
    params = FeatureParams(split=SPLIT, missing_target="late")
    frame, dropped = build(flights_partition(), weather, params)
    assert dropped == 0
    assert frame["late"].tolist() == [1, 0, 1, 0]
    assert frame["origin_day_departures"].tolist() == [3, 1, 3, 3]


def test_build_frame_congestion_counts_the_whole_schedule():
    weather = FF.weather_table(weather_rows(), 3)
    frame, _ = build(flights_partition(), weather, PARAMS)
    # EWR has three scheduled departures that day, whether or not one of them was later cancelled
    assert frame["origin_day_departures"].tolist() == [3, 1, 3]


def test_feature_spec():
    spec = F.feature_spec(F.FEATURE_GROUPS, F.TARGETS)
    assert spec.categorical == sorted(spec.categorical)
    assert set(spec.categorical) == set(FF.CATEGORICAL)
    assert spec.leaky_columns == sorted(F.LEAKY)
    assert spec.targets == {"classification": "late", "regression": "arr_delay"}


# ------------------------------------------------------------------------------------------------ context and state


def context(flights: pd.DataFrame | None = None) -> FF.FeatureContext:
    schedule = flights_partition() if flights is None else flights
    return FF.FeatureContext(schedule, FF.WeatherLookup.from_records(weather_rows(), 3))


def test_the_context_gives_each_scheduled_flight_the_congestion_of_the_whole_schedule():
    flights = flights_partition()
    out, fallback = context().congestion(flights.iloc[[3, 0]])
    expected = FF.congestion_features(flights).iloc[[3, 0]]
    pd.testing.assert_frame_equal(out, expected[FF.CONGESTION])
    assert not fallback.any()


def test_a_flight_not_in_the_schedule_is_counted_as_if_it_were():
    flights = flights_partition()
    extra = flights.iloc[[0]].assign(flight=I([77]), sched_dep_time=I([1045]), hour=I([10]), minute=I([45]))
    out, fallback = context().congestion(extra)
    whole = FF.congestion_features(pd.concat([flights, extra], ignore_index=True)).iloc[[-1]]
    np.testing.assert_array_equal(out.to_numpy(), whole[FF.CONGESTION].to_numpy())
    assert not fallback.any()


def test_a_flight_on_a_day_outside_the_schedule_gets_the_fallback():
    other_day = flights_partition().iloc[[0]].assign(day=I([2]))
    out, fallback = context().congestion(other_day)
    assert fallback.tolist() == [True]
    assert out.isna().all().all()


def test_weather_by_origin_and_hour_and_its_fallback():
    flights = flights_partition()
    late = flights.iloc[[1]].assign(time_hour=utc(["2013-01-02 15:00"]))
    weather, missing = FF.WeatherLookup.from_records(weather_rows(), 3).lookup(pd.concat([flights, late]))
    assert weather["temp"].tolist()[:4] == [30.0, 40.0, 30.0, 30.0]
    assert missing.tolist() == [False, False, False, False, True]
    assert np.isnan(weather["temp"].iloc[4])


def test_the_trend_sum_does_not_depend_on_where_the_weather_series_starts():
    # a rolling sum keeps a running total, whose last bits depend on every earlier hour: the service, given a
    # few days of weather, would get other bits than training, given the year (and a tree split can sit there)
    rows = weather_rows()
    rows = rows[rows["origin"] == "EWR"].reset_index(drop=True)
    rows["precip"] = [0.01, 0.07, 0.02, 0.03, 0.01, 0.02]
    full = FF.weather_table(rows, 3)
    tail = FF.weather_table(rows.iloc[2:], 3)
    assert full["precip_trend_sum"].iloc[-1] == tail["precip_trend_sum"].iloc[-1] == 0.02 + 0.03 + 0.01 + 0.02
    assert full["precip_trend_sum"].iloc[0] == 0.01  # min_periods=1: the first hour sums itself


def test_the_feature_state_reads_back_exactly_and_gives_the_same_features():
    flights = flights_partition()
    frame, _ = build(flights, FF.weather_table(weather_rows(), 3), PARAMS)
    history = FF.History.collect([("2013-01", frame)], "late")
    prior_sum, prior_count, tables = history.tables(None)
    state = F.initial_state(PARAMS, FF.aircraft_table(planes()), 2013, 2013)
    state = dataclasses.replace(state, prior_sum=prior_sum, prior_count=prior_count, history=tables)
    read = FF.FeatureState.from_dict(json.loads(state.to_json()), "state.json")
    assert read.to_json() == state.to_json()
    a, _ = FF.compute_features(flights, context(), state)
    b, _ = FF.compute_features(flights, context(), read)
    pd.testing.assert_frame_equal(a, b)
    assert a["hist_route"].notna().all()


@pytest.mark.parametrize("broken", [{}, {"format": 99}, {"format": 1, "history": {}}])
def test_a_feature_state_of_another_shape_is_refused(broken):
    with pytest.raises(DataError, match=r"state\.json"):
        FF.FeatureState.from_dict(broken, "state.json")


def test_history_with_no_training_rows_left_is_the_prior():
    # one training month: its rows leave their own month out, and nothing is left
    frame, _ = build(flights_partition(), FF.weather_table(weather_rows(), 3), PARAMS)
    out = FF.History.collect([("2013-01", frame)], "late").apply(frame, 5.0, exclude_period="2013-01")
    assert (out[list(FF.HISTORY_KEYS)] == 0.0).all().all()  # no rows at all: the prior of nothing is 0


def test_key_index_finds_the_first_row_of_a_key_and_minus_one_for_a_missing_part_or_an_unknown_key():
    table = pd.DataFrame(
        {"origin": ["EWR", "JFK", "EWR", None], "hour": [5.0, 5.0, 5.0, 6.0]},
    )
    index = FF.KeyIndex(table, ["origin", "hour"])
    assert len(index) == 2  # (EWR, 5) twice: the first row kept; a key with a missing part left out
    frame = pd.DataFrame(
        {
            "origin": pd.array(["EWR", "JFK", "LGA", None, "EWR", "JFK"], dtype="string"),
            "hour": pd.array([5, 5, 5, 6, None, 5], dtype="Int64"),  # integers find the float keys
        }
    )
    got = index.lookup(frame)
    assert got.dtype == np.int64 and got.tolist() == [0, 1, -1, -1, -1, 1]


def test_key_index_holds_the_first_row_of_every_complete_key_as_pandas_finds_them():
    rng = np.random.default_rng(11)
    n = 3_000
    table = pd.DataFrame(
        {
            "carrier": pd.array(rng.choice(["AA", "UA", "DL", None], n), dtype="string"),
            "flight": pd.array(rng.integers(1, 40, n), dtype="Int64"),
            "hour": rng.choice([5.0, 6.5, np.nan, -0.0, 0.0], n),
            "origin": pd.Series(rng.choice(["EWR", "JFK", np.nan], n), dtype=object),
        }
    )
    table.loc[rng.random(n) < 0.05, "flight"] = pd.NA
    keys = ["carrier", "flight", "hour", "origin"]
    first = table.dropna(subset=keys).drop_duplicates(subset=keys, keep="first")
    expected = {(r.carrier, float(r.flight), r.hour, r.origin): r.Index for r in first.itertuples()}
    index = FF.KeyIndex(table, keys)
    assert len(expected) == len(first) > 100 and index._positions == expected
    rows = table[keys].itertuples(index=False, name=None)
    found = [-1 if any(pd.isna(v) for v in r) else expected[(r[0], float(r[1]), r[2], r[3])] for r in rows]
    assert index.lookup(table).tolist() == found


def test_key_index_lookup_by_codes_answers_as_the_dict_of_key_tuples():
    """`lookup` (each part numbered, one integer per key) against `lookup_by_dict` (a tuple per row): queries of
    other dtypes than the table's (integers for floats, Arrow text for object text, a categorical), values the
    table lacks, a missing value of every kind in every part, and -0.0 for 0.0."""
    rng = np.random.default_rng(5)
    n = 4_000
    table = pd.DataFrame(
        {
            "carrier": pd.Series(rng.choice(["AA", "UA", "DL", None], n), dtype=object),
            "flight": rng.choice([1.0, 2.0, 3.0, 0.0, -0.0, np.nan, 7.5], n),
            "origin": pd.array(rng.choice(["EWR", "JFK", "LGA", None], n), dtype="string"),
        }
    )
    keys = ["carrier", "flight", "origin"]
    index = FF.KeyIndex(table, keys)
    query = pd.DataFrame(
        {
            "carrier": pd.array(rng.choice(["AA", "UA", "XX", None], n), dtype="string[pyarrow]"),
            "flight": pd.array(rng.choice([1, 2, 3, 0, 9, None], n), dtype="Int64"),
            "origin": pd.Categorical(rng.choice(["EWR", "JFK", "SFO", None], n)),
        }
    )
    query.loc[rng.random(n) < 0.02, "flight"] = pd.NA
    by_codes, by_dict = index.lookup_by_codes(query), index.lookup_by_dict(query)
    assert index.lookup(query).tolist() == by_codes.tolist()  # as many rows as this: by codes
    assert (by_codes >= 0).sum() > n // 10 and (by_codes == -1).sum() > n // 10  # both kinds of answer occur
    assert by_codes.tolist() == by_dict.tolist()
    floats = query.assign(flight=query["flight"].astype("float64"))
    floats.loc[floats["flight"] == 0, "flight"] = -0.0
    assert index.lookup_by_codes(floats).tolist() == by_dict.tolist() == index.lookup_by_dict(floats).tolist()
    assert index.lookup_by_codes(query.iloc[:0]).tolist() == [] == index.lookup(query.iloc[:0]).tolist()
    empty = FF.KeyIndex(table.iloc[:0], keys)
    assert empty.lookup(query).max() == -1 and empty.lookup_by_codes(query).max() == -1


def test_key_index_with_more_keys_than_an_int64_numbers_looks_them_up_by_dict():
    table = pd.DataFrame({f"k{i}": np.arange(2_000, dtype="float64") % (1_000 + i) for i in range(7)})
    index = FF.KeyIndex(table, list(table.columns))
    assert index._numbered is None  # 1,000 ** 7 distinct combinations do not fit in an int64
    query = table.iloc[::-1].reset_index(drop=True)
    assert len(query) >= FF.LOOKUP_BY_CODES_ROWS and index.lookup(query).tolist() == list(range(1_999, -1, -1))
    with pytest.raises(ValueError, match="lookup_by_dict"):
        index.lookup_by_codes(query)
