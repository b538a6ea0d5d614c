"""Features known at scheduling time, from raw flight records: the one code path for training and scoring.

The `features` stage, the `predict` stage's inputs (through data/processed), batch scoring (`flightdelay score`)
and the service (flightdelay.serving.predictor) all compute features with `compute_features(flights, context,
state)`:

- `flights`: raw flight records (the flights table of config/schema.yaml; outcome columns are not read);
- `context` (`FeatureContext`): the other records some features need, precomputed once into lookups: the day's
  schedule (congestion counts and the aircraft's earlier legs that day, computed over the whole schedule) and the
  hourly origin weather with its trend over the hours before departure;
- `state` (`FeatureState`): what was learned from the training months, as data: history sums and counts per key,
  the smoothing and prior, the aircraft table and the holiday calendar. It travels in the model package as
  `feature_state.json`.

A flight whose context is missing (its day is not in the schedule, or there is no weather for its origin and
hour, or its date is outside the holiday calendar) gets NaN for those features (the model handles missing values)
and is flagged in the `context_fallback` mask `compute_features` returns; it never fails.

Only facts known when the flight is scheduled are features: never dep_delay, dep_time, arr_time or air_time
(see LEAKY). Statistics learned from outcomes (the `history` group) come from training months only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from flightdelay.core import processed
from flightdelay.core.errors import DataError

# Columns that are only known once the flight has left: a feature built from them leaks the answer.
LEAKY = frozenset({"dep_delay", "dep_time", "arr_time", "air_time", "arr_delay", "late"})
TARGETS = {"classification": "late", "regression": "arr_delay"}
LATE_MINUTES = 15
WEATHER = [
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]
WEATHER_TREND = [
    "precip_trend_sum",
    "visib_trend_min",
    "wind_trend_max",
    "pressure_trend_change",
    "precip_day_so_far",
]

FEATURE_GROUPS: dict[str, list[str]] = {
    "schedule": ["month", "day_of_week", "dep_hour", "dep_minute_of_day", "arr_hour", "overnight"],
    "route": ["carrier", "origin", "dest", "distance"],
    "weather": WEATHER,
    "weather_trend": [
        "precip_trend_sum",
        "precip_day_so_far",
        "visib_trend_min",
        "wind_trend_max",
        "pressure_trend_change",
    ],
    "aircraft": ["plane_age", "seats", "engines", "plane_type", "engine_type", "manufacturer"],
    "congestion": [
        "origin_hour_departures",
        "origin_day_departures",
        "carrier_origin_day_departures",
        "dest_day_flights",
        "tail_leg_of_day",
        "tail_minutes_since_prev",
    ],
    "calendar": ["day_of_month", "is_weekend", "days_to_next_holiday", "days_since_prev_holiday"],
    "history": ["hist_route", "hist_carrier_hour", "hist_dest", "hist_flight", "hist_tail"],
}
CATEGORICAL = frozenset({"carrier", "origin", "dest", "plane_type", "engine_type", "manufacturer"})
# Carried beside the features for slicing and lineage; never given to the model.
ID_COLUMNS = ["year", "month", "day", "carrier", "flight", "tailnum", "origin", "dest"]
# history feature -> the columns whose past outcomes it averages
HISTORY_KEYS: dict[str, list[str]] = {
    "hist_route": ["origin", "dest"],
    "hist_carrier_hour": ["carrier", "dep_hour"],
    "hist_dest": ["dest"],
    "hist_flight": ["carrier", "flight"],
    "hist_tail": ["tailnum"],
}
# The raw flight columns features are computed from (the caller's input; no outcome columns).
FLIGHT_KEY = ["year", "month", "day", "carrier", "flight", "origin"]
INPUT_COLUMNS = [
    "year",
    "month",
    "day",
    "sched_dep_time",
    "sched_arr_time",
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "distance",
    "hour",
    "minute",
    "time_hour",
]
AIRCRAFT_COLUMNS = ["plane_year", "seats", "engines", "plane_type", "engine_type", "manufacturer"]
# Years of holiday calendar kept after the last month of the split, so months the model never saw score exactly.
HOLIDAY_YEARS_AHEAD = 10
HOLIDAY_CAP_DAYS = 60
STATE_FORMAT = 1


# ------------------------------------------------------------------------------------------------ per flight


def label(flights: pd.DataFrame, missing_target: str) -> tuple[pd.DataFrame, int]:
    """Add `late` (arr_delay > 15 min). Flights with no arr_delay (cancelled or diverted) are dropped, or
    labelled late with `missing_target: late`. Returns (labelled rows, rows dropped)."""
    missing = flights["arr_delay"].isna()
    out = flights.copy()
    out["late"] = (out["arr_delay"] > LATE_MINUTES).fillna(False).astype("int8")
    if missing_target == "late":
        out.loc[missing, "late"] = 1
        return out, 0
    return out[~missing].reset_index(drop=True), int(missing.sum())


def _plain_ints(flights: pd.DataFrame, names: list[str]) -> list[np.ndarray] | None:
    """The columns as int64 arrays when every one is of an integer dtype with no missing value; else None (the
    caller then takes pandas' own path, which also says what is wrong)."""
    columns = [flights[name] for name in names]
    if not all(pd.api.types.is_integer_dtype(c.dtype) and not c.hasnans for c in columns):
        return None
    return [c.to_numpy(dtype="int64") for c in columns]


def flight_dates(flights: pd.DataFrame) -> pd.Series:
    """Each flight's date (year, month, day), as pd.to_datetime assembles it. Ordinary dates are computed with numpy's
    calendar, the proleptic Gregorian one pandas uses (pandas' assembly costs a millisecond or two per call, which a
    service request pays); a missing part or a month or day the calendar does not have goes to pd.to_datetime, which
    raises as before."""
    parts = _plain_ints(flights, ["year", "month", "day"])
    if parts is not None:
        year, month, day = parts
        months = ((year - 1970) * 12 + (month - 1)).astype("datetime64[M]")
        date = months.astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
        plain = (
            (month >= 1)
            & (month <= 12)
            & (day >= 1)
            & (date.astype("datetime64[M]") == months)  # a day past the month's last rolls into the next month
        )
        if plain.all():
            return pd.Series(date.astype("datetime64[us]"), index=flights.index)
    return _dates_by_pandas(flights)


def _dates_by_pandas(flights: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(pd.DataFrame({"year": flights["year"], "month": flights["month"], "day": flights["day"]}))


def schedule_features(flights: pd.DataFrame, dates: pd.Series | None = None) -> pd.DataFrame:
    """Schedule and calendar columns, built in one step (`dates`: flight_dates(flights), when already computed).
    Integer columns without missing values are computed in numpy, anything else in pandas (the same numbers)."""
    date = flight_dates(flights) if dates is None else dates
    by_numpy = _schedule_by_numpy(flights, date)
    return by_numpy if by_numpy is not None else _schedule_by_pandas(flights, date)


def _schedule_by_numpy(flights: pd.DataFrame, date: pd.Series) -> pd.DataFrame | None:
    parts = _plain_ints(flights, ["sched_dep_time", "sched_arr_time", "month", "day"])
    if parts is None or date.dtype != "datetime64[us]" or date.hasnans:
        return None
    dep, arr, month, day = parts
    days = date.to_numpy().astype("datetime64[D]").astype("int64")
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0, as pandas counts
    hour = dep // 100
    columns = {
        "month": month.astype("int16"),
        "day_of_week": weekday.astype("int16"),
        "dep_hour": hour.astype("int16"),
        "dep_minute_of_day": (hour * 60 + dep % 100).astype("int16"),
        "arr_hour": (arr // 100).astype("int16"),
        "overnight": (arr < dep).astype("int8"),
        "day_of_month": day.astype("int16"),
        "is_weekend": (weekday >= 5).astype("int8"),
    }
    return pd.DataFrame(columns, index=flights.index)


def _schedule_by_pandas(flights: pd.DataFrame, date: pd.Series) -> pd.DataFrame:
    day_of_week = date.dt.day_of_week.astype("int16")
    dep_hour = (flights["sched_dep_time"] // 100).astype("int16")
    columns = {
        "month": flights["month"].astype("int16"),
        "day_of_week": day_of_week,
        "dep_hour": dep_hour,
        "dep_minute_of_day": (dep_hour * 60 + flights["sched_dep_time"] % 100).astype("int16"),
        "arr_hour": (flights["sched_arr_time"] // 100).astype("int16"),
        "overnight": (flights["sched_arr_time"] < flights["sched_dep_time"]).astype("int8"),
        "day_of_month": flights["day"].astype("int16"),
        "is_weekend": (day_of_week >= 5).astype("int8"),
    }
    return pd.DataFrame(columns, index=flights.index)


def holiday_calendar(country: str, first_year: int, last_year: int) -> np.ndarray:
    """Public holidays of `country` in the years first_year..last_year, as sorted datetime64[D]."""
    import holidays

    days = holidays.country_holidays(country, years=range(first_year, last_year + 1))
    return np.array(sorted(days), dtype="datetime64[D]")


def holiday_features(dates: pd.Series, calendar: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Days to the next and since the previous public holiday, capped at 60. Returns (features, outside) where
    `outside` marks dates the calendar does not cover (a year before or after it): their features are NaN."""
    values = dates.to_numpy().astype("datetime64[D]")
    nxt = np.searchsorted(calendar, values, side="left")
    prv = np.searchsorted(calendar, values, side="right") - 1
    to_next = (calendar[np.minimum(nxt, len(calendar) - 1)] - values).astype(int)
    since_prev = (values - calendar[np.maximum(prv, 0)]).astype(int)
    years = values.astype("datetime64[Y]").astype(int) + 1970
    first, last = (int(calendar[i].astype("datetime64[Y]").astype(int)) + 1970 for i in (0, -1))
    outside = (years <= first) | (years >= last)
    out = pd.DataFrame(
        {
            "days_to_next_holiday": np.clip(to_next, 0, HOLIDAY_CAP_DAYS).astype("int16"),
            "days_since_prev_holiday": np.clip(since_prev, 0, HOLIDAY_CAP_DAYS).astype("int16"),
        },
        index=dates.index,
    )
    if outside.any():
        out = out.astype("float64")
        out.loc[outside] = np.nan
    return out, outside


def congestion_features(flights: pd.DataFrame) -> pd.DataFrame:
    """Counts from the schedule itself (all flights of the schedule, known in advance, no outcomes)."""
    day = [flights["year"], flights["month"], flights["day"]]
    hour = flights["sched_dep_time"] // 100
    minute = hour * 60 + flights["sched_dep_time"] % 100
    out = pd.DataFrame(index=flights.index)
    out["origin_hour_departures"] = flights.groupby([*day, flights["origin"], hour])["origin"].transform("size")
    out["origin_day_departures"] = flights.groupby([*day, flights["origin"]])["origin"].transform("size")
    out["carrier_origin_day_departures"] = flights.groupby([*day, flights["origin"], flights["carrier"]])[
        "origin"
    ].transform("size")
    out["dest_day_flights"] = flights.groupby([*day, flights["dest"]])["dest"].transform("size")
    # The same aircraft's earlier departures that day: later legs inherit earlier delays.
    keyed = pd.DataFrame({"y": day[0], "m": day[1], "d": day[2], "tail": flights["tailnum"], "minute": minute})
    known = keyed["tail"].notna()
    order = keyed[known].sort_values(["y", "m", "d", "tail", "minute"], kind="stable")
    grouped = order.groupby(["y", "m", "d", "tail"], sort=False)["minute"]
    out["tail_leg_of_day"] = pd.Series(np.nan, index=flights.index)
    out["tail_minutes_since_prev"] = pd.Series(np.nan, index=flights.index)
    out.loc[order.index, "tail_leg_of_day"] = grouped.cumcount().to_numpy() + 1
    out.loc[order.index, "tail_minutes_since_prev"] = grouped.diff().to_numpy()
    return out.astype("float64")


CONGESTION = list(FEATURE_GROUPS["congestion"])


Span = tuple[pd.Timestamp, pd.Timestamp]  # an origin's hourly grid: its first and last hour


def weather_table(weather: pd.DataFrame, trend_hours: int, spans: Mapping[Any, Span] | None = None) -> pd.DataFrame:
    """Hourly origin weather on a complete hourly grid, with trailing-window trend features.

    The grid runs from each origin's first to its last hour, or over `spans` where given: the part of the grid of a
    longer record that some of its months hold (`weather_spans`, `clip_spans`). Every feature looks back only (the
    trend window, the local day so far), so an hour whose look-back lies inside the months given has the values
    the whole record gives it."""
    frames = []
    ordered = weather.sort_values(["origin", "time_hour"], kind="stable")
    groups = dict(iter(ordered.groupby("origin", sort=True, observed=True)))
    for origin in sorted(spans) if spans is not None else groups:
        group = groups.get(origin, ordered.iloc[:0]).drop_duplicates("time_hour").set_index("time_hour")
        first, last = spans[origin] if spans is not None else (group.index.min(), group.index.max())
        grid = pd.date_range(first, last, freq="h", name="time_hour")
        hourly = group[WEATHER].reindex(grid)
        window = hourly.rolling(trend_hours + 1, min_periods=1)
        # A sum over each window's own values: a rolling sum keeps a running total, whose rounding depends on
        # where the series starts, so the same hours would give another last bit in the service than in training.
        lags = pd.concat([hourly["precip"].shift(k) for k in range(trend_hours + 1)], axis=1)
        hourly["precip_trend_sum"] = lags.sum(axis=1, min_count=1)
        hourly["visib_trend_min"] = window["visib"].min()
        hourly["wind_trend_max"] = window["wind_speed"].max()
        hourly["pressure_trend_change"] = hourly["pressure"] - hourly["pressure"].shift(trend_hours)
        local_day = grid.tz_convert("America/New_York").date
        hourly["precip_day_so_far"] = hourly["precip"].fillna(0).groupby(local_day).cumsum()
        hourly["origin"] = origin
        frames.append(hourly.reset_index())
    if not frames:
        return pd.DataFrame(columns=["time_hour", *WEATHER, *WEATHER_TREND, "origin"])
    return pd.concat(frames, ignore_index=True)


def weather_spans(weather: pd.DataFrame) -> dict[Any, Span]:
    """Each origin's first and last hour: the span of its grid in `weather_table`."""
    hours = weather.groupby("origin", sort=True, observed=True)["time_hour"].agg(["min", "max"])
    return {origin: (first, last) for origin, first, last in zip(hours.index, hours["min"], hours["max"], strict=True)}


def merge_spans(parts: Iterable[Mapping[Any, Span]]) -> dict[Any, Span]:
    """The spans of a record from the spans of its parts (months)."""
    out: dict[Any, Span] = {}
    for part in parts:
        for origin, (first, last) in part.items():
            if pd.isna(first):
                continue
            old = out.get(origin)
            out[origin] = (first, last) if old is None else (min(old[0], first), max(old[1], last))
    return out


def clip_spans(spans: Mapping[Any, Span], start: pd.Timestamp, end: pd.Timestamp) -> dict[Any, Span]:
    """The hours of each origin's grid from `start` to `end`: the grid points (first + whole hours) in that range;
    an origin whose grid has none there is left out."""
    hour = pd.Timedelta(hours=1)
    out = {}
    for origin, (first, last) in spans.items():
        begin = first if first >= start else first + math.ceil((start - first) / hour) * hour
        if begin <= min(last, end):
            out[origin] = (begin, min(last, end))
    return out


def aircraft_table(planes: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "tailnum": planes["tailnum"],
            "plane_year": planes["year"].astype("float64"),
            "seats": planes["seats"].astype("float64"),
            "engines": planes["engines"].astype("float64"),
            "plane_type": planes["type"],
            "engine_type": planes["engine"],
            "manufacturer": planes["manufacturer"],
        }
    )
    return out.drop_duplicates("tailnum")


# ------------------------------------------------------------------------------------------------ lookups


def _key_values(frame: pd.DataFrame, keys: list[str]) -> list[np.ndarray]:
    """Key columns as plain numpy arrays (text as object with None for missing, numbers as float64)."""
    out = []
    for key in keys:
        column = frame[key]
        if pd.api.types.is_numeric_dtype(column.dtype):
            out.append(column.to_numpy(dtype="float64", na_value=np.nan))
        else:
            out.append(column.to_numpy(dtype=object, na_value=None))
    return out


# From this many rows a lookup numbers the key parts (`KeyIndex.lookup_by_codes`): its fixed cost (a factorize
# per part) is repaid from about 2,000 rows (the eight lookups of compute_features on December's flights: 100
# rows 1.0 ms by dict against 3.2 by codes, 1,000 rows 3.8 against 5.9, 3,000 7.6 against 6.4, 10,000 23.7
# against 12.8).
LOOKUP_BY_CODES_ROWS = 2_000


class _Numbered(NamedTuple):
    """A KeyIndex's keys as integers: each part's {distinct value: number}, the mixed radix of each part, the
    table's keys as sorted integers and the first row of each."""

    part_codes: list[dict[Any, int]]
    radix: list[int]
    codes: np.ndarray
    rows: np.ndarray


class KeyIndex:
    """Row positions of key tuples in a table, looked up in bulk (-1 for a key not in the table or with a
    missing part). Built once; no groupby or merge.

    A lookup of many rows numbers each key part of the rows by the part's distinct values in the table (one hash
    of each column in C, and a dict probe per distinct value, not per row), makes the parts one integer per row
    (mixed radix), and finds it among the table's keys by binary search (`lookup_by_codes`). Fewer rows, or keys
    whose numbers would not fit in an int64, probe `_positions`, the {key tuple: first row} dict, with a tuple
    per row (`lookup_by_dict`). The same answers, which tests/unit/test_features.py compares."""

    def __init__(self, table: pd.DataFrame, keys: list[str]) -> None:
        self.keys = keys
        values = _key_values(table, keys)
        complete = np.ones(len(table), dtype=bool)
        for column in values:
            complete &= ~pd.isna(column)  # None in text, NaN in numbers
        self._rows_complete = np.flatnonzero(complete)
        self._parts = [column[self._rows_complete] for column in values]
        tuples = zip(*(part.tolist() for part in self._parts), strict=True)
        # the first row of each key: later items overwrite earlier ones, so the pairs go in backwards
        pairs = list(zip(tuples, self._rows_complete.tolist(), strict=True))
        self._positions: dict[tuple[Any, ...], int] = dict(reversed(pairs))

    def __len__(self) -> int:
        return len(self._positions)

    @cached_property
    def _numbered(self) -> _Numbered | None:
        """The keys as integers (made on the first lookup by codes); None where they would not fit in an int64."""
        part_codes: list[dict[Any, int]] = []
        radix: list[int] = []
        combined = np.zeros(len(self._rows_complete), dtype=np.int64)
        size = 1
        for part in reversed(self._parts):
            codes, uniques = pd.factorize(part)
            part_codes.insert(0, dict(zip(uniques.tolist(), range(len(uniques)), strict=True)))
            radix.insert(0, size)
            combined += codes.astype(np.int64) * size
            size *= max(len(uniques), 1)
            if size >= 1 << 62:
                return None
        sorted_codes, first = np.unique(combined, return_index=True)
        return _Numbered(part_codes, radix, sorted_codes, self._rows_complete[first])

    def lookup(self, frame: pd.DataFrame) -> np.ndarray:
        if len(frame) < LOOKUP_BY_CODES_ROWS or self._numbered is None:
            return self.lookup_by_dict(frame)
        return self.lookup_by_codes(frame)

    def lookup_by_codes(self, frame: pd.DataFrame) -> np.ndarray:
        numbered = self._numbered
        if numbered is None:
            raise ValueError(f"KeyIndex{self.keys}: too many keys to number in an int64; use lookup_by_dict")
        if not len(numbered.codes):
            return np.full(len(frame), -1, dtype=np.int64)
        combined = np.zeros(len(frame), dtype=np.int64)
        known = np.ones(len(frame), dtype=bool)
        for key, codes_of, radix in zip(self.keys, numbered.part_codes, numbered.radix, strict=True):
            codes, uniques = _factorized(frame[key])  # a missing value: -1
            mapped = np.fromiter(map(codes_of.get, uniques, repeat(-1)), dtype=np.int64, count=len(uniques))
            part = np.append(mapped, -1)[codes]  # code -1 takes the appended -1
            known &= part >= 0
            combined += part * radix
        at = np.minimum(np.searchsorted(numbered.codes, combined), len(numbered.codes) - 1)
        return np.where(known & (numbered.codes[at] == combined), numbered.rows[at], -1)

    def lookup_by_dict(self, frame: pd.DataFrame) -> np.ndarray:
        # Python values (tolist) hash and compare as the numpy scalars do, and map() probes without a Python loop
        keys = zip(*(values.tolist() for values in _key_values(frame, self.keys)), strict=True)
        return np.fromiter(map(self._positions.get, keys, repeat(-1)), dtype=np.int64)


def _factorized(column: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """The column's code per row (-1 where missing) and its distinct values, as `_key_values` gives them: numbers
    as floats; text hashed by pandas itself (pyarrow's for Arrow-backed text), not as Python objects."""
    if pd.api.types.is_numeric_dtype(column.dtype):
        codes, uniques = pd.factorize(column.to_numpy(dtype="float64", na_value=np.nan))
    else:
        codes, uniques = pd.factorize(column)
    return codes, uniques.tolist()


def _take(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """values[positions] with NaN where a position is -1 (values: 2-D float64)."""
    if len(values) == 0:
        return np.full((len(positions), values.shape[1]), np.nan)
    out = values[np.maximum(positions, 0)]
    if (positions < 0).any():
        out = out.copy()
        out[positions < 0] = np.nan
    return out


# ------------------------------------------------------------------------------------------------ context


class WeatherLookup:
    """Hourly origin weather with its trend features (`weather_table`), looked up by (origin, time_hour)."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.columns = [*WEATHER, *WEATHER_TREND]
        self.rows = len(table)
        self._values = table[self.columns].to_numpy(dtype="float64")
        self._index = KeyIndex(
            pd.DataFrame({"origin": table["origin"], "hour": _hour_number(table["time_hour"])}), ["origin", "hour"]
        )

    @staticmethod
    def from_records(weather: pd.DataFrame, trend_hours: int) -> WeatherLookup:
        return WeatherLookup(weather_table(weather, trend_hours))

    def lookup(self, flights: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Weather and weather-trend features per flight (origin, time_hour), and the mask of flights with none."""
        query = pd.DataFrame({"origin": flights["origin"], "hour": _hour_number(flights["time_hour"])})
        found = self._index.lookup(query)
        values = _take(self._values, found)
        return pd.DataFrame(values, columns=self.columns, index=flights.index), found < 0


class FeatureContext:
    """The records around the flights being scored, as lookups built once.

    - schedule: the flights of the days being scored (raw records; only schedule columns are read). Each
      flight's congestion features are computed over the whole schedule (`congestion_features`), once, and
      looked up by the flight's key (year, month, day, carrier, flight, origin). A flight not in the schedule
      whose day is gets the schedule's counts plus itself; a flight whose day is not in the schedule gets NaN
      (fallback).
    - weather (`WeatherLookup`): hourly origin weather with trend features, looked up by (origin, time_hour); no
      weather for that hour -> NaN (fallback).
    """

    def __init__(self, schedule: pd.DataFrame, weather: WeatherLookup) -> None:
        schedule = schedule.reset_index(drop=True)
        self.rows = len(schedule)
        self.weather = weather
        congestion = congestion_features(schedule) if len(schedule) else pd.DataFrame(columns=CONGESTION)
        self._congestion = congestion[CONGESTION].to_numpy(dtype="float64")
        self._flights = KeyIndex(schedule, FLIGHT_KEY)
        self._schedule = schedule
        self._days = KeyIndex(schedule[["year", "month", "day"]].drop_duplicates(), ["year", "month", "day"])

    def congestion(self, flights: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Congestion features per flight, and the mask of flights whose day is not in the schedule."""
        found = self._flights.lookup(flights)
        values = _take(self._congestion, found)
        missing = np.flatnonzero(found < 0)
        fallback = np.zeros(len(flights), dtype=bool)
        if missing.size:
            rows = flights.iloc[missing]
            day_known = self._days.lookup(rows) >= 0
            fallback[missing[~day_known]] = True
            values[missing[day_known]] = self._unscheduled(rows[day_known])
        return pd.DataFrame(values, columns=CONGESTION, index=flights.index), fallback

    @cached_property
    def _counts(self) -> list[tuple[KeyIndex, np.ndarray]]:
        """Schedule counts per origin-hour, origin-day, carrier-origin-day and dest-day (built on first need)."""
        keyed = self._schedule.assign(dep_hour=self._schedule["sched_dep_time"] // 100)
        out = []
        for keys in (
            ["year", "month", "day", "origin", "dep_hour"],
            ["year", "month", "day", "origin"],
            ["year", "month", "day", "origin", "carrier"],
            ["year", "month", "day", "dest"],
        ):
            sizes = keyed.groupby(keys, observed=True, dropna=True).size().rename("n").reset_index()
            out.append((KeyIndex(sizes, keys), sizes["n"].to_numpy(dtype="float64")))
        return out

    @cached_property
    def _legs(self) -> tuple[KeyIndex, list[np.ndarray]]:
        """The sorted scheduled departure minutes of each aircraft's legs per day (built on first need)."""
        tails = self._schedule[self._schedule["tailnum"].notna()]
        minute = (tails["sched_dep_time"] // 100 * 60 + tails["sched_dep_time"] % 100).astype("float64")
        keys = ["year", "month", "day", "tailnum"]
        groups = tails.assign(_minute=minute).groupby(keys, observed=True, sort=False)
        first = groups.head(1)[keys].reset_index(drop=True)
        minutes = [np.sort(group["_minute"].to_numpy()) for _, group in groups]
        return KeyIndex(first, keys), minutes

    def _unscheduled(self, flights: pd.DataFrame) -> np.ndarray:
        """Congestion of flights not in the schedule (their day is): the schedule's counts plus the flight."""
        keyed = flights.assign(dep_hour=flights["sched_dep_time"] // 100)
        out = np.full((len(flights), len(CONGESTION)), np.nan)
        for column, (index, sizes) in enumerate(self._counts):
            found = index.lookup(keyed)
            out[:, column] = np.where(found >= 0, sizes[np.maximum(found, 0)], 0.0) + 1.0
        legs_index, leg_minutes = self._legs
        legs = legs_index.lookup(keyed)
        minute = (keyed["dep_hour"] * 60 + keyed["sched_dep_time"] % 100).to_numpy(dtype="float64")
        tail_known = keyed["tailnum"].notna().to_numpy()
        for row, (position, m) in enumerate(zip(legs, minute, strict=True)):
            if not tail_known[row]:
                continue
            earlier = leg_minutes[position] if position >= 0 else np.empty(0)
            before = int(np.searchsorted(earlier, m, side="right"))
            out[row, 4] = before + 1
            out[row, 5] = m - earlier[before - 1] if before else np.nan
        return out


def _hour_number(times: pd.Series) -> pd.Series:
    """Hours since the epoch of UTC timestamps (float, NaN for missing): a plain number to key weather by."""
    stamps = pd.to_datetime(times, utc=True)
    return pd.Series(stamps.to_numpy(dtype="datetime64[ns]").astype("int64") // 3_600_000_000_000, index=times.index)


# ------------------------------------------------------------------------------------------------ state


@dataclass(frozen=True)
class HistoryTable:
    """Smoothed mean outcome per key: sums and counts over the training months it was learned from."""

    keys: list[str]
    frame: pd.DataFrame  # key columns..., sum, count

    @cached_property
    def index(self) -> KeyIndex:
        return KeyIndex(self.frame, self.keys)

    def rates(self, smoothing: float, prior: float) -> np.ndarray:
        """(sum + smoothing * prior) / (count + smoothing) per row, then the prior (for an unseen key, position
        -1): computed once per (smoothing, prior) and kept, the per-call cost of scoring a few flights."""
        cache: dict[tuple[float, float], np.ndarray] = self.__dict__.setdefault("_rates", {})
        if (smoothing, prior) not in cache:
            stats = self.frame
            rate = ((stats["sum"] + smoothing * prior) / (stats["count"] + smoothing)).to_numpy(dtype="float64")
            cache[(smoothing, prior)] = np.append(rate, prior)
        return cache[(smoothing, prior)]


@dataclass(frozen=True)
class FeatureState:
    """The feature code's fitted state, as data: learned from the training months, shipped in the package."""

    holiday_country: str
    calendar: np.ndarray  # datetime64[D], sorted
    weather_trend_hours: int
    smoothing: float
    prior_sum: float
    prior_count: float
    history: dict[str, HistoryTable]
    aircraft: pd.DataFrame  # tailnum + AIRCRAFT_COLUMNS

    @cached_property
    def aircraft_index(self) -> KeyIndex:
        return KeyIndex(self.aircraft, ["tailnum"])

    @property
    def prior(self) -> float:
        return float(self.prior_sum / max(self.prior_count, 1))

    def to_dict(self) -> dict[str, Any]:
        def column(values: pd.Series) -> list[Any]:
            return [None if pd.isna(v) else _plain(v) for v in values.tolist()]

        return {
            "format": STATE_FORMAT,
            "holiday_country": self.holiday_country,
            "holidays": [str(d) for d in self.calendar],
            "weather_trend_hours": self.weather_trend_hours,
            "history_smoothing": _plain(self.smoothing),
            "prior": {"sum": _plain(self.prior_sum), "count": _plain(self.prior_count)},
            "history": {
                name: {"keys": table.keys, "columns": {c: column(table.frame[c]) for c in table.frame.columns}}
                for name, table in self.history.items()
            },
            "aircraft": {c: column(self.aircraft[c]) for c in ["tailnum", *AIRCRAFT_COLUMNS]},
        }

    def to_json(self) -> str:
        """Exact JSON (floats as Python writes them, so they read back bit for bit), keys in a fixed order."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False) + "\n"

    @staticmethod
    def from_dict(data: dict[str, Any], where: str) -> FeatureState:
        try:
            if data.get("format") != STATE_FORMAT:
                raise DataError(f"{where}: feature state format {data.get('format')!r}, expected {STATE_FORMAT}")
            history = {}
            for name, keys in HISTORY_KEYS.items():
                entry = data["history"][name]
                if entry["keys"] != keys:
                    raise DataError(f"{where}: history.{name} is keyed by {entry['keys']}, expected {keys}")
                frame = pd.DataFrame({c: entry["columns"][c] for c in [*keys, "sum", "count"]})
                history[name] = HistoryTable(keys, frame)
            aircraft = pd.DataFrame({c: data["aircraft"][c] for c in ["tailnum", *AIRCRAFT_COLUMNS]})
            for c in ("plane_year", "seats", "engines"):
                aircraft[c] = pd.to_numeric(aircraft[c]).astype("float64")
            return FeatureState(
                holiday_country=str(data["holiday_country"]),
                calendar=np.array(data["holidays"], dtype="datetime64[D]"),
                weather_trend_hours=int(data["weather_trend_hours"]),
                smoothing=data["history_smoothing"],
                prior_sum=data["prior"]["sum"],
                prior_count=data["prior"]["count"],
                history=history,
                aircraft=aircraft,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: not a feature state ({type(exc).__name__}: {str(exc)[:120]})") from None


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (json writes Python numbers exactly)."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class HistoryPartial:
    """One training month's outcome sums and counts per key: what a month's task sends back (one row per key
    seen that month, never the month's rows). `History.merge` folds them into totals per key."""

    period: str
    per_feature: dict[str, pd.DataFrame]  # feature -> rows (key columns..., sum, count, period)
    overall: pd.DataFrame  # period, sum, count

    @staticmethod
    def of(period: str, frame: pd.DataFrame, target: str) -> HistoryPartial:
        """The sums and counts of `frame`, the training rows of month `period` ('YYYY-MM') only."""
        per_feature = {}
        for feature, keys in HISTORY_KEYS.items():
            sums = frame.groupby(keys, dropna=True, observed=True)[target].agg(["sum", "count"]).reset_index()
            sums["period"] = period
            per_feature[feature] = sums
        overall = frame.assign(period=period).groupby("period")[target].agg(["sum", "count"]).reset_index()
        return HistoryPartial(period, per_feature, overall)


# Training months whose per-key sums `History.merge` holds before it folds them into the totals.
FOLD_MONTHS = 24


@dataclass(frozen=True)
class History:
    """Outcome sums and counts per key over the training months ('YYYY-MM'), from which history features are
    computed, each training row's own month left out: the totals less the month's own sums (`_KeyTotals`), which
    the month's task computes again from its own rows. Memory follows the keys, not the months."""

    target: str
    totals: dict[str, _KeyTotals]  # feature -> sums, counts and months per key over every training month
    overall: pd.DataFrame  # period, sum, count: one row per training month

    @staticmethod
    def collect(frames: Iterable[tuple[str, pd.DataFrame]], target: str) -> History:
        """Sums and counts from (period 'YYYY-MM', training frame) pairs, taken one at a time (a generator keeps
        one month in memory). Each frame holds the rows of its own month only."""
        return History.merge((HistoryPartial.of(period, frame, target) for period, frame in frames), target)

    @staticmethod
    def merge(partials: Iterable[HistoryPartial], target: str, fold: int = FOLD_MONTHS) -> History:
        """The history of the training months whose partials these are, each month once: the partials are taken
        one at a time and folded into the totals `fold` months at a time, so a generator over the months' tasks
        holds a few months' partials, never every month's. The totals do not depend on the order or the folds
        where the sums are whole numbers below 2**53 (a 0/1 label, delays in whole minutes): then they are the
        very floats a group-by of every month's rows gives."""
        running: dict[str, pd.DataFrame | None] = dict.fromkeys(HISTORY_KEYS)
        pending: dict[str, list[pd.DataFrame]] = {feature: [] for feature in HISTORY_KEYS}
        overall: list[pd.DataFrame] = []
        periods: set[str] = set()

        def fold_pending() -> None:
            for feature, keys in HISTORY_KEYS.items():
                tables = [t.drop(columns="period").assign(months=1) for t in pending[feature]]
                if tables:
                    running[feature] = _fold([running[feature], *tables], keys)
                pending[feature] = []

        for partial in partials:
            if partial.period in periods:
                raise ValueError(f"history: training month {partial.period} given twice; each month comes once")
            periods.add(partial.period)
            overall.append(partial.overall)
            for feature in HISTORY_KEYS:
                pending[feature].append(partial.per_feature[feature])
            if len(overall) % fold == 0:
                fold_pending()
        if not overall:
            raise DataError("features: no training rows to learn history features from")
        fold_pending()
        totals = {
            feature: _KeyTotals.of(table, keys)
            for (feature, keys), table in zip(HISTORY_KEYS.items(), running.values(), strict=True)
        }
        return History(target, totals, pd.concat(overall, ignore_index=True))

    def tables(self, own: HistoryPartial | None) -> tuple[float, float, dict[str, HistoryTable]]:
        """(prior sum, prior count, sums and counts per key) over the training months but the one whose partial
        `own` is (a training row's own month, so no row's feature contains its own label); None, or a month that
        is not a training month: every month."""
        if own is not None and own.period not in set(self.overall["period"]):
            own = None
        overall = self.overall if own is None else self.overall[self.overall["period"] != own.period]
        tables = {
            feature: HistoryTable(keys, self.totals[feature].without(own.per_feature[feature] if own else None))
            for feature, keys in HISTORY_KEYS.items()
        }
        return overall["sum"].sum(), overall["count"].sum(), tables

    def apply(self, frame: pd.DataFrame, smoothing: float, exclude_period: str | None) -> pd.DataFrame:
        """Smoothed mean outcome per key over training months, leaving out `exclude_period` (a training row's
        own month, 'YYYY-MM'; `frame` then holds that month's training rows, all of them) so no row's feature
        contains its own label."""
        return apply_history(frame, self, smoothing, exclude_period)


def _fold(tables: list[pd.DataFrame | None], keys: list[str]) -> pd.DataFrame:
    """Per-key rows (key columns..., sum, count, months) summed into one row per key, in key order."""
    table = pd.concat([t for t in tables if t is not None], ignore_index=True)
    return table.groupby(keys, observed=True)[["sum", "count", "months"]].sum().reset_index()


@dataclass(frozen=True)
class _KeyTotals:
    """Sums and counts per key over every training month, and how many months have a row for each key, so that a
    month's leave-own-month-out table is the totals less the month's own sums: it costs the number of keys, not a
    group-by of every month's rows (over 360 training months the group-by per month made the features stage
    quadratic in months), and no month's rows are kept.

    Where every sum is a whole number below 2**53 (a 0/1 label, a delay in whole minutes) adding and subtracting
    in any order gives the very float64 a group-by of the other months gives; other sums (a fractional target)
    differ from it in the last bits, the same ones on every run. The keys kept are those with a row in some other
    month, in the group-by's order."""

    stats: pd.DataFrame  # key columns..., sum, count
    months: np.ndarray  # per key: how many months have a row for it
    keys: list[str]

    @staticmethod
    def of(table: pd.DataFrame | None, keys: list[str]) -> _KeyTotals:
        """From `_fold`'s rows (None: no month had a row with every key part)."""
        if table is None:
            table = pd.DataFrame({**{k: [] for k in keys}, "sum": [], "count": [], "months": []})
        return _KeyTotals(table.drop(columns="months"), table["months"].to_numpy(dtype="int64"), keys)

    @cached_property
    def index(self) -> KeyIndex:
        return KeyIndex(self.stats, self.keys)

    def without(self, own: pd.DataFrame | None) -> pd.DataFrame:
        """The sums per key of every month but one, whose own sums per key (one row per key, as
        `HistoryPartial.of` gives them) are `own`; None: every month."""
        if own is None or not len(own):
            return self.stats.copy()
        at = self.index.lookup(own)
        if (at < 0).any():
            raise ValueError(f"history {self.keys}: a month's own key is not in the totals of the training months")
        sums = self.stats["sum"].to_numpy(copy=True)
        counts = self.stats["count"].to_numpy(copy=True)
        months = self.months.copy()
        np.subtract.at(sums, at, own["sum"].to_numpy(dtype=sums.dtype))  # `.at`: the same key twice counts twice
        np.subtract.at(counts, at, own["count"].to_numpy(dtype=counts.dtype))
        np.subtract.at(months, at, 1)
        kept = months > 0
        stats = self.stats.loc[kept].reset_index(drop=True)
        stats["sum"] = sums[kept]
        stats["count"] = counts[kept]
        return stats


def apply_history(frame: pd.DataFrame, history: History, smoothing: float, exclude_period: str | None) -> pd.DataFrame:
    """`frame` with the history features learned from every training month but `exclude_period` appended (`frame`
    then holds that month's training rows, all of them: its own sums are computed from it)."""
    own = HistoryPartial.of(exclude_period, frame, history.target) if exclude_period is not None else None
    prior_sum, prior_count, tables = history.tables(own)
    return pd.concat([frame, history_features(frame, tables, smoothing, prior_sum, prior_count)], axis=1)


def history_features(
    frame: pd.DataFrame, tables: dict[str, HistoryTable], smoothing: float, prior_sum: float, prior_count: float
) -> pd.DataFrame:
    """Smoothed mean outcome per key: (sum + smoothing * prior) / (count + smoothing); the prior for an unseen key."""
    prior = float(prior_sum / max(prior_count, 1))
    columns = {}
    for feature, table in tables.items():
        with_prior = table.rates(smoothing, prior)  # an unseen key (-1) takes the last entry, the prior
        found = table.index.lookup(frame)
        columns[feature] = with_prior[np.where(found >= 0, found, len(with_prior) - 1)].astype("float64")
    return pd.DataFrame(columns, index=frame.index)


# ------------------------------------------------------------------------------------------------ all features


def compute_features(
    flights: pd.DataFrame,
    context: FeatureContext,
    state: FeatureState,
    history: tuple[float, float, dict[str, HistoryTable]] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every feature of each flight, in the features stage's column order (ID columns, then features; outcome
    columns are not read). `history` overrides the state's history tables (the features stage's leave-own-month-
    out tables for training rows). Returns (frame, context_fallback mask)."""
    flights = flights.reset_index(drop=True)
    congestion, no_day = context.congestion(flights)
    weather, no_weather = context.weather.lookup(flights)
    dates = flight_dates(flights)
    holiday, outside = holiday_features(dates, state.calendar)
    schedule = schedule_features(flights, dates)
    # Every column first, the frame once: a DataFrame grown column by column costs milliseconds per call, which a
    # service request of a few hundred flights pays whole.
    columns: dict[str, Any] = {column: flights[column] for column in ID_COLUMNS}
    columns["month"] = schedule["month"]  # int16, in the ID columns' place
    columns["distance"] = flights["distance"]
    for part in (schedule, holiday, congestion, weather):
        columns.update((column, part[column]) for column in part.columns if column != "month")
    aircraft = state.aircraft
    found = state.aircraft_index.lookup(flights) if len(aircraft) else np.full(len(flights), -1)
    for column in AIRCRAFT_COLUMNS:
        values = aircraft[column].to_numpy()
        taken = values[np.maximum(found, 0)] if len(values) else np.empty(len(flights), dtype=object)
        if column in CATEGORICAL:
            text = np.asarray(taken, dtype=object).copy()
            text[found < 0] = None
            columns[column] = pd.array(text, dtype="string")
        else:
            columns[column] = np.where(found >= 0, taken, np.nan).astype("float64")
    columns["plane_age"] = flights["year"].to_numpy(dtype="float64", na_value=np.nan) - columns.pop("plane_year")
    for column in CATEGORICAL & set(ID_COLUMNS):
        columns[column] = columns[column].astype("string")
    frame = pd.DataFrame(columns, index=flights.index)
    prior_sum, prior_count, tables = (
        history if history is not None else (state.prior_sum, state.prior_count, state.history)
    )
    hist = history_features(frame, tables, state.smoothing, prior_sum, prior_count)
    frame = pd.concat([frame, hist], axis=1)
    return frame, no_day | no_weather | outside


# ------------------------------------------------------------------------------------------------ input fields


def input_fields(columns: dict[str, Any], seen: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The raw flight fields a caller sends: INPUT_COLUMNS of the schema's flights table `columns` (name ->
    ColumnSpec), as flightdelay.core.processed.input_fields describes each."""
    return processed.input_fields({name: columns[name] for name in INPUT_COLUMNS}, seen)
