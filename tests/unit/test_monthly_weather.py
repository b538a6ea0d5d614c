"""The features stage's per-month weather (`MonthlyWeather`) gives each month's flights the values of one weather table
over the whole window, while a task reads three months of weather."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flightdelay.modeling import flight_features as FF
from flightdelay.stages import features as F

MONTHS = [f"2013-{m:02d}" for m in range(1, 8)]


def hourly_weather(seed: int) -> pd.DataFrame:
    """Hourly weather at three origins over January-July 2013 (UTC), with the shapes that test the edges:

    - EWR: every hour, with missing values here and there;
    - JFK: a gap from 10 February to 20 April, longer than a month, so some months have none of its hours;
    - LGA: from 15 March on only, and a duplicated hour (the first one counts).
    """
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2013-01-01", "2013-07-31 23:00", freq="h", tz="UTC")
    frames = []
    for origin in ("EWR", "JFK", "LGA"):
        t = hours
        if origin == "JFK":
            t = t[(t < pd.Timestamp("2013-02-10", tz="UTC")) | (t >= pd.Timestamp("2013-04-20", tz="UTC"))]
        if origin == "LGA":
            t = t[t >= pd.Timestamp("2013-03-15 07:00", tz="UTC")]
            t = t.append(t[100:101])  # the same hour twice
        values = {column: rng.normal(10.0, 5.0, len(t)) for column in FF.WEATHER}
        values["precip"] = np.where(rng.random(len(t)) < 0.2, rng.random(len(t)), 0.0)
        frame = pd.DataFrame({"origin": pd.array([origin] * len(t), dtype="string"), "time_hour": t, **values})
        for column in ("visib", "pressure", "precip"):
            frame.loc[rng.random(len(t)) < 0.05, column] = np.nan
        frames.append(frame)
    weather = pd.concat(frames, ignore_index=True)
    # partitioned by the local (New York) month, as the raw extracts are
    return weather.assign(period=weather["time_hour"].dt.tz_convert("America/New_York").dt.strftime("%Y-%m"))


def flights_of(period: str) -> pd.DataFrame:
    """A flight at every origin for every hour of `period`'s local month (so UTC hours into the next month)."""
    start = pd.Timestamp(f"{period}-01", tz="America/New_York")
    hours = pd.date_range(start, start + pd.offsets.MonthBegin(1), freq="h", inclusive="left").tz_convert("UTC")
    origins = ["EWR", "JFK", "LGA", "XXX"]
    return pd.DataFrame(
        {
            "origin": pd.array(np.repeat(origins, len(hours)), dtype="string"),
            "time_hour": np.tile(hours, len(origins)),
        }
    )


@pytest.fixture
def partitions(tmp_path):
    weather = hourly_weather(0)
    folder = tmp_path / "validated"
    (folder / "weather").mkdir(parents=True)
    for period, rows in weather.groupby("period"):
        rows.drop(columns="period").to_parquet(folder / "weather" / f"{period}.parquet", index=False)
    return folder, weather.drop(columns="period")


@pytest.mark.parametrize("trend_hours", [3, 6])
def test_each_month_gets_the_whole_windows_values(partitions, trend_hours):
    folder, weather = partitions
    whole = FF.WeatherLookup.from_records(weather, trend_hours)
    monthly = F._monthly_weather(folder, trend_hours)
    assert set(MONTHS) < set(monthly.files)  # and 2012-12: New York's 31 December, UTC's 1 January
    for period in MONTHS:
        flights = flights_of(period)
        expected, expected_missing = whole.lookup(flights)
        got, missing = monthly.lookup(period).lookup(flights)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        np.testing.assert_array_equal(missing, expected_missing)
        assert expected["temp"].notna().sum() > 600  # EWR's hours at least: not a comparison of missing values


def test_a_month_holds_three_months_of_weather_at_most(partitions):
    folder, weather = partitions
    monthly = F._monthly_weather(folder, 3)
    whole_rows = FF.WeatherLookup.from_records(weather, 3).rows
    for period in MONTHS:
        assert monthly.lookup(period).rows <= 3 * 31 * 24 * 3 < whole_rows


def test_hours_in_a_gap_longer_than_a_month_are_on_the_grid_as_in_the_whole_table(partitions):
    """JFK has no weather in March: its March hours are on the whole window's grid (missing values, and a
    precip_day_so_far of 0), and a flight there is not a flight without weather rows."""
    folder, weather = partitions
    march = FF.WeatherLookup.from_records(weather, 3).lookup(flights_of("2013-03"))[1]
    monthly = F._monthly_weather(folder, 3).lookup("2013-03")
    values, missing = monthly.lookup(flights_of("2013-03"))
    jfk = (flights_of("2013-03")["origin"] == "JFK").to_numpy()
    assert not missing[jfk].any() and not march[jfk].any()
    assert values.loc[jfk, "temp"].isna().all() and (values.loc[jfk, "precip_day_so_far"] == 0).all()


def test_clip_spans_keeps_the_grid_points_and_drops_origins_outside():
    t = pd.Timestamp
    spans = {"A": (t("2013-01-01 00:30", tz="UTC"), t("2013-03-01", tz="UTC")), "B": (t("2013-05-01", tz="UTC"),) * 2}
    clipped = FF.clip_spans(spans, t("2013-02-01", tz="UTC"), t("2013-02-28 23:00", tz="UTC"))
    assert clipped == {"A": (t("2013-02-01 00:30", tz="UTC"), t("2013-02-28 23:00", tz="UTC"))}
