"""compute_features for a few checked flights given as plain dicts, without a DataFrame: the service's hot path.

`compute_features` (flightdelay.modeling.flight_features) is the one definition of every feature, and the features
stage, batch scoring and large batches in the service use it. A one-flight request through it costs tens of small
pandas operations; `record_features` computes the same numbers with dict probes into the very lookups
compute_features uses (the context's schedule, weather and day indexes, the state's aircraft and history
tables: `RecordLookups`, read once per predictor) and plain arithmetic. It returns None for anything only
compute_features does (a flight not in the schedule on a day that is, a time in another ISO-8601 form, an
impossible date, a field of another type), and the caller then uses compute_features. Parity is tested value for
value (tests/unit/test_record_features.py on inline frames with every fallback, tests/model/test_predictor.py on
real months through the predictor).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from flightdelay.modeling.flight_features import (
    AIRCRAFT_COLUMNS,
    CATEGORICAL,
    CONGESTION,
    FEATURE_GROUPS,
    HOLIDAY_CAP_DAYS,
    FeatureContext,
    FeatureState,
)

FEATURE_NAMES = [name for group in FEATURE_GROUPS.values() for name in group]

# The time forms the raw extract and callers use ("2013-12-02T04:00:00Z", "2013-12-02 04:00:00+00:00", naive as
# UTC); any other form goes through compute_features (pandas' ISO-8601 parser) instead.
_PLAIN_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?")
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
_INTEGER_FIELDS = ("year", "month", "day", "sched_dep_time", "sched_arr_time", "flight")
_TEXT_FIELDS = ("carrier", "origin", "dest")


def _utc_hour(text: Any) -> int | None:
    """Hours since the epoch of a plain ISO-8601 time (as `_hour_number` reads it); None for another form."""
    if not isinstance(text, str) or _PLAIN_TIME.fullmatch(text) is None:
        return None
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    since = stamp - _EPOCH
    return (since.days * 86_400 + since.seconds) // 3600


def _plain_record(record: dict[str, Any]) -> bool:
    """The fields record_features reads have the types the input schema gives them (else: compute_features)."""
    for name in _INTEGER_FIELDS:
        value = record.get(name)
        if type(value) is not int:
            return False
    for name in _TEXT_FIELDS:
        if type(record.get(name)) is not str:
            return False
    tail, distance = record.get("tailnum"), record.get("distance")
    if tail is not None and type(tail) is not str:
        return False
    return isinstance(distance, int | float) and type(distance) is not bool and math.isfinite(distance)


def _text_or_none(value: Any) -> str | None:
    """A categorical value as compute_features gives it (the string dtype): missing -> None, else its text."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


class RecordLookups:
    """What record_features reads, taken once from a predictor's context and feature state: the lookups
    compute_features builds (KeyIndex position dicts, the context's congestion and weather rows) and the state's
    tables as plain lists."""

    def __init__(self, context: FeatureContext, state: FeatureState) -> None:
        self.calendar: list[int] = state.calendar.astype("datetime64[D]").astype("int64").tolist()
        years = state.calendar[[0, -1]].astype("datetime64[Y]").astype(int) + 1970 if self.calendar else [0, 0]
        self.first_year, self.last_year = (int(y) for y in years)
        # compute_features' own lookups: a KeyIndex keeps {key tuple: row position} (numbers as floats, which
        # equal and hash as the ints a request holds)
        self.flights = context._flights._positions
        self.days = context._days._positions
        self.congestion = context._congestion
        self.weather = context.weather._index._positions
        self.weather_rows = context.weather._values
        self.weather_columns = list(context.weather.columns)
        self.aircraft = state.aircraft_index._positions if len(state.aircraft) else {}
        self.aircraft_columns = {c: state.aircraft[c].to_numpy().tolist() for c in AIRCRAFT_COLUMNS}
        prior = float(state.prior_sum / max(state.prior_count, 1))
        self.history = [
            (feature, table.keys, table.index._positions, table.rates(state.smoothing, prior).tolist())
            for feature, table in state.history.items()
        ]


def record_features(
    records: Sequence[dict[str, Any]], lookups: RecordLookups
) -> tuple[dict[str, list[Any]], np.ndarray] | None:
    """Every feature of each flight (feature -> one value per flight: numbers as floats with NaN for missing,
    categorical as text or None) and the context_fallback mask: compute_features' numbers. None when a flight
    needs what only compute_features does (see the module docstring)."""
    if not lookups.calendar:
        return None
    days, first_year, last_year = lookups.calendar, lookups.first_year, lookups.last_year
    flights_index, days_index, congestion_rows = lookups.flights, lookups.days, lookups.congestion
    weather_index, weather_rows, weather_columns = lookups.weather, lookups.weather_rows, lookups.weather_columns
    aircraft_index, aircraft, history = lookups.aircraft, lookups.aircraft_columns, lookups.history
    nan = float("nan")
    out: dict[str, list[Any]] = {name: [] for name in FEATURE_NAMES}
    fallback = np.zeros(len(records), dtype=bool)
    for row, record in enumerate(records):
        if not _plain_record(record):
            return None
        year, month, day = record["year"], record["month"], record["day"]
        dep, arr = record["sched_dep_time"], record["sched_arr_time"]
        carrier, origin, dest, tail = record["carrier"], record["origin"], record["dest"], record.get("tailnum")
        hour = _utc_hour(record.get("time_hour"))
        if hour is None:
            return None
        try:
            date = dt.date(year, month, day)
        except ValueError:
            return None
        dep_hour = dep // 100
        day_of_week = date.weekday()
        values: dict[str, Any] = {
            "carrier": carrier,
            "origin": origin,
            "dest": dest,
            "distance": float(record["distance"]),
            "month": float(month),
            "day_of_week": float(day_of_week),
            "dep_hour": float(dep_hour),
            "dep_minute_of_day": float(dep_hour * 60 + dep % 100),
            "arr_hour": float(arr // 100),
            "overnight": float(arr < dep),
            "day_of_month": float(day),
            "is_weekend": float(day_of_week >= 5),
        }
        # holidays (holiday_features)
        number = date.toordinal() - _EPOCH_DAY
        if year <= first_year or year >= last_year:
            values["days_to_next_holiday"] = values["days_since_prev_holiday"] = nan
            fallback[row] = True
        else:
            following = bisect.bisect_left(days, number)
            preceding = bisect.bisect_right(days, number) - 1
            to_next = days[min(following, len(days) - 1)] - number
            since = number - days[max(preceding, 0)]
            values["days_to_next_holiday"] = float(min(max(to_next, 0), HOLIDAY_CAP_DAYS))
            values["days_since_prev_holiday"] = float(min(max(since, 0), HOLIDAY_CAP_DAYS))
        # congestion (FeatureContext.congestion)
        position = flights_index.get((year, month, day, carrier, record["flight"], origin), -1)
        if position >= 0:
            counts = congestion_rows[position].tolist()
        elif (year, month, day) in days_index:
            return None  # not scheduled on a day that is: counted with the schedule by compute_features
        else:
            counts = [nan] * len(CONGESTION)
            fallback[row] = True
        values.update(zip(CONGESTION, counts, strict=True))
        # weather (WeatherLookup.lookup)
        position = weather_index.get((origin, hour), -1)
        if position >= 0:
            values.update(zip(weather_columns, weather_rows[position].tolist(), strict=True))
        else:
            values.update(dict.fromkeys(weather_columns, nan))
            fallback[row] = True
        # aircraft
        position = aircraft_index.get((tail,), -1) if tail is not None else -1
        for column in AIRCRAFT_COLUMNS:
            taken = aircraft[column][position] if position >= 0 else None
            if column in CATEGORICAL:
                values[column] = _text_or_none(taken)
            else:
                values[column] = nan if taken is None else float(taken)
        values["plane_age"] = float(year) - values.pop("plane_year")
        # history (history_features)
        keyed = {"origin": origin, "dest": dest, "carrier": carrier, "dep_hour": dep_hour, "flight": record["flight"]}
        keyed["tailnum"] = tail
        for feature, keys, index, rates in history:
            position = index.get(tuple(keyed[k] for k in keys), -1)
            values[feature] = float(rates[position])  # -1: the last entry, the prior
        for name, values_of_feature in out.items():
            values_of_feature.append(values[name])
    return out, fallback
