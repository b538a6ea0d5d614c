"""The default data set's serving side (`features.builder: flights`): its feature state, its context and the
features of raw flight records, behind the predictor's neutral interface (flightdelay.serving.predictor.RowFeatures).

The context (`ContextSource`) supplies what a flight's features need from other records: the day's schedule
(congestion at the airport, the aircraft's earlier legs that day) and the hourly origin weather before departure.
It never comes from the caller. By default it is the validated partitions of the months being scored
(`ContextSource.from_validated`, a path or an fsspec URL). A flight whose context is missing gets NaN for those
features (the model handles missing values) and is flagged as a fallback; it never fails. Features are computed by
flightdelay.modeling.flight_features.compute_features (the `features` stage's own code), and for a few checked
records on plain lists by flightdelay.serving.record_features (the same numbers, without pandas' per-call cost).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.errors import DataError
from flightdelay.modeling.flight_features import (
    FeatureContext,
    FeatureState,
    WeatherLookup,
    compute_features,
)
from flightdelay.serving.record_features import RecordLookups, record_features

_FLIGHT_COLUMNS = ["year", "month", "day", "sched_dep_time", "carrier", "flight", "tailnum", "origin", "dest"]
# The columns of each scored flight that `flightdelay score` writes beside its prediction.
KEYS = ["year", "month", "day", "carrier", "flight", "origin", "dest", "tailnum", "sched_dep_time"]

MAX_TREND_HOURS = 24 * 7  # a week of weather before departure; far above any useful features.weather_trend_hours


def _finite(value: Any, name: str, where: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < minimum:
        raise DataError(f"{where}: {name} is {str(value)[:40]!r}; expected a finite number >= {minimum:g}")
    return float(value)


def checked_state(data: dict[str, Any], where: str) -> FeatureState:
    """The package's feature state, its scalars and history sums/counts checked first: a hashed but hostile
    feature_state.json (text, bool, NaN, a list where a number goes) is refused here as DataError, never handed
    to the feature code (whose first use would be a TypeError per request, or a silently wrong probability; the
    canary re-scores model-input rows and does not exercise the feature state)."""
    state = FeatureState.from_dict(data, where)  # the format and the shape first
    prior = data.get("prior")
    if not isinstance(prior, dict):
        raise DataError(f"{where}: prior is not an object with sum and count")
    _finite(data.get("history_smoothing"), "history_smoothing", where)
    _finite(prior.get("sum"), "prior.sum", where)
    _finite(prior.get("count"), "prior.count", where)
    hours = data.get("weather_trend_hours")
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_TREND_HOURS:
        shown = str(hours)[:40]
        raise DataError(f"{where}: weather_trend_hours is {shown!r}; expected an integer 1..{MAX_TREND_HOURS}")
    if not isinstance(data.get("holiday_country"), str):
        raise DataError(f"{where}: holiday_country is not a text")
    for name, table in state.history.items():
        for column in ("sum", "count"):
            values = pd.to_numeric(table.frame[column], errors="coerce")
            if not pd.api.types.is_numeric_dtype(table.frame[column]) or not np.isfinite(values).all():
                raise DataError(f"{where}: history.{name}.{column} holds a value that is not a finite number")
            if (values < 0).any():
                raise DataError(f"{where}: history.{name}.{column} holds a negative value")
    return state


# ------------------------------------------------------------------------------------------------ context


class ContextSource:
    """The records a flight's features need from elsewhere: the schedule (flights table, only schedule columns are
    read, never outcomes) and the hourly weather (weather table), as the validate stage writes them."""

    def __init__(self, flights: pd.DataFrame, weather: pd.DataFrame, description: str = "frames") -> None:
        self.flights = flights[[c for c in _FLIGHT_COLUMNS if c in flights.columns]].reset_index(drop=True)
        self.weather = weather
        self.description = description
        self._built: dict[int, FeatureContext] = {}

    @staticmethod
    def empty() -> ContextSource:
        """No context: every flight is scored with the fallback (flagged)."""
        flights = pd.DataFrame({c: pd.Series(dtype="Int64") for c in _FLIGHT_COLUMNS})
        for c in ("carrier", "tailnum", "origin", "dest"):
            flights[c] = flights[c].astype("string")
        weather = pd.DataFrame(
            {"origin": pd.Series(dtype="string"), "time_hour": pd.Series(dtype="datetime64[ns, UTC]")}
        )
        return ContextSource(flights, weather, "none")

    @staticmethod
    def from_validated(location: str | Path, months: Iterable[str] | None = None) -> ContextSource:
        """The validated partitions (`<location>/flights/<YYYY-MM>.parquet`, `<location>/weather/...`) of `months`
        (all when None); the weather also of the month before each, for the trend over the hours before the first
        departures. `location` is a path or an fsspec URL (s3://..., gs://...)."""
        import fsspec

        fs, root = fsspec.core.url_to_fs(str(location))
        root = root.rstrip("/")

        def partitions(table: str) -> dict[str, str]:
            found = fs.glob(f"{root}/{table}/*.parquet") if fs.exists(f"{root}/{table}") else []
            return {Path(p).stem: p for p in sorted(found)}

        flight_files, weather_files = partitions("flights"), partitions("weather")
        wanted = sorted(flight_files) if months is None else sorted(set(months))
        missing = [m for m in wanted if m not in flight_files]
        if missing:
            raise DataError(
                f"{location}/flights: no validated partitions for {', '.join(missing)} "
                f"(it has {sorted(flight_files)}); run ingest and validate for those months, or score other months"
            )
        weather_months = sorted({*wanted, *(previous_month(m) for m in wanted)} & set(weather_files))

        def read(paths: list[str], columns: list[str] | None = None) -> pd.DataFrame:
            frames = []
            for path in paths:
                with fs.open(path, "rb") as handle:
                    frames.append(pd.read_parquet(handle, columns=columns))
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

        flights = read([flight_files[m] for m in wanted], _FLIGHT_COLUMNS)
        weather = read([weather_files[m] for m in weather_months])
        if weather.empty:
            weather = ContextSource.empty().weather
        return ContextSource(flights, weather, f"{location} ({', '.join(wanted)})")

    def build(self, trend_hours: int) -> FeatureContext:
        """The lookups (built once per trend window and kept)."""
        if trend_hours not in self._built:
            weather = WeatherLookup.from_records(self.weather, trend_hours) if len(self.weather) else None
            if weather is None:
                empty = pd.DataFrame(
                    {"origin": pd.Series(dtype=object), "time_hour": pd.Series(dtype="datetime64[ns, UTC]")}
                )
                weather = WeatherLookup.from_records(empty, trend_hours)
            self._built[trend_hours] = FeatureContext(self.flights, weather)
        return self._built[trend_hours]


def previous_month(month: str) -> str:
    """The 'YYYY-MM' before `month`."""
    year, number = int(month[:4]), int(month[5:7])
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


# ------------------------------------------------------------------------------------------------ RowFeatures


class FlightRows:
    """RowFeatures of the flights builder: compute_features with the package's state and a ContextSource."""

    def __init__(self, state: FeatureState, context: ContextSource) -> None:
        self.state = state
        self.context = context
        self.description = context.description
        self.context_rows = len(context.flights)
        self._context = context.build(state.weather_trend_hours)

    def compute(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """The feature frame of typed rows (as typed_rows gives them) and each row's fallback flag."""
        return compute_features(rows, self._context, self.state)

    def compute_records(self, records: Sequence[dict[str, Any]]) -> tuple[dict[str, list[Any]], np.ndarray] | None:
        """The features of a few checked records on plain lists (record_features), or None when only
        compute_features can compute them."""
        return record_features(records, self._record_lookups)

    @cached_property
    def _record_lookups(self) -> RecordLookups:
        return RecordLookups(self._context, self.state)

    def with_context(self, context: Any) -> FlightRows:
        return FlightRows(self.state, _context_of(context))


def _context_of(context: Any) -> ContextSource:
    if context is None:
        return ContextSource.empty()
    if not isinstance(context, ContextSource):
        raise DataError(
            f"a package of the flights feature builder scores with a ContextSource, not a {type(context).__name__}"
            " (the context of another builder's package)"
        )
    return context


# ------------------------------------------------------------------------------------------------ the builder


def rows_features(manifest: dict[str, Any], state: dict[str, Any], where: str, context: Any) -> FlightRows:
    """The predictor's RowFeatures for a package of this builder: its checked state and `context` (None: none)."""
    del manifest  # everything this builder needs is in its state
    return FlightRows(checked_state(state, where), _context_of(context))


def context_from_validated(location: str | Path, months: Iterable[str] | None, table: str) -> ContextSource:
    del table  # the flights builder reads its own tables
    return ContextSource.from_validated(location, months)


def month_context(
    read: Callable[[str, str], pd.DataFrame | None], period: str, rows: pd.DataFrame, table: str
) -> tuple[ContextSource, list[str]]:
    """The context of one month being scored: its flights (`rows`) and the weather of it and the month before
    (`read(table, month)`: a validated partition, None when there is none); the missing partitions, as 'table
    month'."""
    weather, missing = [], []
    for month in (previous_month(period), period):
        found = read("weather", month)
        if found is None:
            missing.append(f"weather {month}")
        else:
            weather.append(found)
    frame = pd.concat(weather, ignore_index=True) if weather else ContextSource.empty().weather
    return ContextSource(rows, weather=frame, description=f"{table} {period}"), missing


def key_columns(manifest: dict[str, Any]) -> list[str]:
    """The columns of each row `flightdelay score` writes beside its prediction."""
    del manifest
    return list(KEYS)
