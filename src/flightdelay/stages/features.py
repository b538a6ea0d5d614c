"""Join weather and aircraft, build features known at scheduling time, split by month.

Stage `features`: the one module that knows the flights data set.

Joins origin weather and aircraft facts to each flight, derives features known at scheduling time, labels
the target and splits by month into data/processed/{train,test}/<YYYY-MM>.parquet. Partitions are keyed by
their full 'YYYY-MM' name and the split (`features.split`) is a pair of month ranges, so a window of any
length keeps every month (2013-05 and 2014-05 are two partitions, never one).

Only facts known when the flight is scheduled are features: never dep_delay, dep_time, arr_time or air_time
(see LEAKY). Statistics learned from outcomes (the `history` group) come from training months only; a
training row's history excludes its own month ('YYYY-MM'), so no row ever sees its own label.

To use another data set, rewrite this module's `build_frame` and FEATURE_GROUPS; train, predict and
evaluate read data/processed/feature_spec.json and need no change.
"""

from __future__ import annotations

import argparse
import functools
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import holidays
import numpy as np
import pandas as pd

from flightdelay.core.config import ComputeParams, FeatureParams, Params, TrainParams
from flightdelay.core.contracts import FeatureSpec
from flightdelay.core.engine import map_partitions, read_parquet_url, remove_partials, write_parquet_atomic
from flightdelay.core.errors import DataError
from flightdelay.core.files import atomic_dir, partition_files, read_parquet, write_json

log = logging.getLogger(__name__)

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {"input": "the validate stage's folder"}
OUTPUTS = {"out": "folder for train/ and test/ partitions, feature_spec.json and counts.json"}
UNTRACKED: dict[str, str] = {}

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


# ------------------------------------------------------------------------------------------------ pure logic


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


def schedule_features(flights: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=flights.index)
    date = pd.to_datetime(pd.DataFrame({"year": flights["year"], "month": flights["month"], "day": flights["day"]}))
    out["month"] = flights["month"].astype("int16")
    out["day_of_week"] = date.dt.day_of_week.astype("int16")
    out["dep_hour"] = (flights["sched_dep_time"] // 100).astype("int16")
    out["dep_minute_of_day"] = (out["dep_hour"] * 60 + flights["sched_dep_time"] % 100).astype("int16")
    out["arr_hour"] = (flights["sched_arr_time"] // 100).astype("int16")
    out["overnight"] = (flights["sched_arr_time"] < flights["sched_dep_time"]).astype("int8")
    out["day_of_month"] = flights["day"].astype("int16")
    out["is_weekend"] = (out["day_of_week"] >= 5).astype("int8")
    return out


def holiday_features(dates: pd.Series, country: str) -> pd.DataFrame:
    """Days to the next and since the previous public holiday, capped at 60."""
    years = range(int(dates.dt.year.min()) - 1, int(dates.dt.year.max()) + 2)
    days = np.array(sorted(holidays.country_holidays(country, years=years)), dtype="datetime64[D]")
    values = dates.to_numpy().astype("datetime64[D]")
    nxt = np.searchsorted(days, values, side="left")
    prv = np.searchsorted(days, values, side="right") - 1
    to_next = (days[np.minimum(nxt, len(days) - 1)] - values).astype(int)
    since_prev = (values - days[np.maximum(prv, 0)]).astype(int)
    return pd.DataFrame(
        {
            "days_to_next_holiday": np.clip(to_next, 0, 60).astype("int16"),
            "days_since_prev_holiday": np.clip(since_prev, 0, 60).astype("int16"),
        },
        index=dates.index,
    )


def congestion_features(flights: pd.DataFrame) -> pd.DataFrame:
    """Counts from the schedule itself (all flights of the partition, known in advance, no outcomes)."""
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


def weather_table(weather: pd.DataFrame, trend_hours: int) -> pd.DataFrame:
    """Hourly origin weather on a complete hourly grid, with trailing-window trend features."""
    frames = []
    for origin, group in weather.sort_values(["origin", "time_hour"], kind="stable").groupby("origin", sort=True):
        group = group.drop_duplicates("time_hour").set_index("time_hour")
        grid = pd.date_range(group.index.min(), group.index.max(), freq="h", name="time_hour")
        hourly = group[WEATHER].reindex(grid)
        window = hourly.rolling(trend_hours + 1, min_periods=1)
        hourly["precip_trend_sum"] = window["precip"].sum()
        hourly["visib_trend_min"] = window["visib"].min()
        hourly["wind_trend_max"] = window["wind_speed"].max()
        hourly["pressure_trend_change"] = hourly["pressure"] - hourly["pressure"].shift(trend_hours)
        local_day = grid.tz_convert("America/New_York").date
        hourly["precip_day_so_far"] = hourly["precip"].fillna(0).groupby(local_day).cumsum()
        hourly["origin"] = origin
        frames.append(hourly.reset_index())
    if not frames:
        return pd.DataFrame(columns=["origin", "time_hour", *WEATHER])
    return pd.concat(frames, ignore_index=True)


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


def build_frame(
    flights: pd.DataFrame, weather: pd.DataFrame, aircraft: pd.DataFrame, params: FeatureParams
) -> tuple[pd.DataFrame, int]:
    """Every feature except `history`, for one partition of flights. Returns (frame, rows dropped).

    Congestion is counted on the whole schedule before flights without an arrival are dropped: whether a
    flight was later cancelled is an outcome, and must not change its neighbours' features.
    """
    congestion = congestion_features(flights)
    flights, dropped = label(pd.concat([flights, congestion], axis=1), params.missing_target)
    date = pd.to_datetime(pd.DataFrame({"year": flights["year"], "month": flights["month"], "day": flights["day"]}))
    parts = [
        flights[ID_COLUMNS].astype({"month": "int16"}),
        flights[["distance", "arr_delay", "late"]],
        schedule_features(flights).drop(columns=["month"]),
        holiday_features(date, params.holiday_country),
        flights[list(congestion.columns)],
    ]
    frame = pd.concat(parts, axis=1)
    frame["time_hour"] = flights["time_hour"]
    frame = frame.merge(weather, on=["origin", "time_hour"], how="left", validate="many_to_one")
    frame = frame.merge(aircraft, on="tailnum", how="left", validate="many_to_one")
    frame["plane_age"] = frame["year"].astype("float64") - frame.pop("plane_year")
    frame = frame.drop(columns=["time_hour"])
    for column in CATEGORICAL:
        frame[column] = frame[column].astype("string")
    return frame, dropped


@dataclass(frozen=True)
class History:
    """Outcome sums and counts per key and training month ('YYYY-MM'), from which history features are computed."""

    target: str
    per_period: dict[str, pd.DataFrame]  # feature -> rows (key columns..., sum, count, period)
    overall: pd.DataFrame  # period, sum, count

    @staticmethod
    def collect(frames: Iterable[tuple[str, pd.DataFrame]], target: str) -> History:
        """Sums and counts from (period 'YYYY-MM', training frame) pairs, taken one at a time (a generator keeps
        one month in memory). Each frame holds the rows of its own month only."""
        parts: dict[str, list[pd.DataFrame]] = {feature: [] for feature in HISTORY_KEYS}
        overall: list[pd.DataFrame] = []
        for period, frame in frames:
            for feature, keys in HISTORY_KEYS.items():
                sums = frame.groupby(keys, dropna=True, observed=True)[target].agg(["sum", "count"]).reset_index()
                sums["period"] = period
                parts[feature].append(sums)
            overall.append(frame.assign(period=period).groupby("period")[target].agg(["sum", "count"]).reset_index())
        if not overall:
            raise DataError("features: no training rows to learn history features from")
        return History(
            target,
            {feature: pd.concat(p, ignore_index=True) for feature, p in parts.items()},
            pd.concat(overall, ignore_index=True),
        )

    def apply(self, frame: pd.DataFrame, smoothing: float, exclude_period: str | None) -> pd.DataFrame:
        """Smoothed mean outcome per key over training months, leaving out `exclude_period` (a training row's
        own month, 'YYYY-MM') so no row's feature contains its own label."""
        out = frame.copy()
        overall = self.overall[self.overall["period"] != exclude_period]
        prior = float(overall["sum"].sum() / max(overall["count"].sum(), 1))
        for feature, keys in HISTORY_KEYS.items():
            table = self.per_period[feature]
            table = table[table["period"] != exclude_period]
            stats = table.groupby(keys, observed=True)[["sum", "count"]].sum().reset_index()
            stats[feature] = (stats["sum"] + smoothing * prior) / (stats["count"] + smoothing)
            out = out.merge(stats[[*keys, feature]], on=keys, how="left", validate="many_to_one")
            out[feature] = out[feature].fillna(prior).astype("float64")
        return out


def feature_spec(groups: dict[str, list[str]], task_targets: dict[str, str]) -> FeatureSpec:
    return FeatureSpec(
        groups=groups,
        categorical=sorted(c for cols in groups.values() for c in cols if c in CATEGORICAL),
        targets=task_targets,
        id_columns=ID_COLUMNS,
        leaky_columns=sorted(LEAKY),
    )


# ------------------------------------------------------------------------------------------------ entry point


@dataclass(frozen=True)
class Month:
    """What a month's task sends back: its counts, never its rows (a training month's input rows and drops
    were counted in pass 1, so they are 0 here)."""

    name: str
    split: str | None
    rows_in: int
    dropped: int
    rows_out: int


def write_month(
    item: tuple[str, str, str | None],
    *,
    weather: pd.DataFrame,
    aircraft: pd.DataFrame,
    history: History,
    fp: FeatureParams,
    out_dir: str,
) -> Month:
    """The engine's task for pass 2: build one month's features, attach history, write it into its split."""
    period, path, split = item
    name = Path(path).name
    if split is None:
        return Month(name, None, len(read_parquet_url(path, columns=["month"])), 0, 0)
    flights = read_parquet_url(path)
    frame, dropped = build_frame(flights, weather, aircraft, fp)
    frame = history.apply(frame, fp.history_smoothing, period if split == "train" else None)
    write_parquet_atomic(frame, f"{out_dir}/{split}/{name}")
    counted = split == "test"
    return Month(name, split, len(flights) if counted else 0, dropped if counted else 0, len(frame))


def _load_weather(in_dir: Path, trend_hours: int) -> pd.DataFrame:
    files = partition_files(in_dir / "weather")
    if not files:
        raise DataError(f"{in_dir / 'weather'}: no weather partitions; run the validate stage first")
    weather = pd.concat([read_parquet(f) for f in files], ignore_index=True)
    return weather_table(weather, trend_hours)


def main(args: argparse.Namespace, params: Params) -> dict[str, int]:
    return run(params.features, params.train, params.compute, in_dir=args.input, out_dir=args.out)


def run(
    features: FeatureParams, train: TrainParams, compute: ComputeParams, *, in_dir: str | Path, out_dir: str | Path
) -> dict[str, int]:
    fp = features
    source = Path(in_dir)
    by_period = {f.stem: f for f in partition_files(source / "flights")}
    train_periods = fp.split.train_months()
    test_periods = fp.split.test_months()
    missing = [p for p in (*train_periods, *test_periods) if p not in by_period]
    if missing:
        has = f"{len(by_period)} months, {min(by_period)} to {max(by_period)}" if by_period else "no partitions"
        raise DataError(
            f"features: months {', '.join(missing)} of features.split are not in {source / 'flights'} "
            f"(it has {has}); widen ingest.window or change the split"
        )
    weather = _load_weather(source, fp.weather_trend_hours)
    aircraft = aircraft_table(read_parquet(source / "planes.parquet"))
    target = TARGETS[train.task]
    if target == "arr_delay" and fp.missing_target == "late":
        raise DataError("features.missing_target: 'late' is for classification; use 'drop' for regression")

    counts = {
        "rows_in": 0,
        "rows_dropped_no_arrival": 0,
        "rows_unused_months": 0,
        "train": 0,
        "test": 0,
    }
    with atomic_dir(out_dir) as tmp:
        # Pass 1: outcome sums per key from training months only, one month in memory at a time.
        def training_frames() -> Iterator[tuple[str, pd.DataFrame]]:
            for period in train_periods:
                start = time.perf_counter()
                flights = read_parquet(by_period[period])
                frame, dropped = build_frame(flights, weather, aircraft, fp)
                counts["rows_in"] += len(flights)
                counts["rows_dropped_no_arrival"] += dropped
                log.info(
                    "features: %s %7d flights -> %7d rows (%.2fs)",
                    by_period[period].name,
                    len(flights),
                    len(frame),
                    time.perf_counter() - start,
                )
                yield period, frame

        history = History.collect(training_frames(), target)
        # Pass 2: build each month again (cheaper than holding them all), attach history, write to its split.
        months = [
            (period, str(path), "train" if period in train_periods else "test" if period in test_periods else None)
            for period, path in sorted(by_period.items())
        ]
        shared = {"weather": weather, "aircraft": aircraft, "history": history, "fp": fp}
        task = functools.partial(write_month, out_dir=str(tmp.resolve()))
        for month in map_partitions(task, months, compute, name="features", shared=shared):
            counts["rows_in"] += month.rows_in
            if month.split is None:
                counts["rows_unused_months"] += month.rows_in
                log.info("features: %s in neither range of features.split, %d rows unused", month.name, month.rows_in)
                continue
            counts["rows_dropped_no_arrival"] += month.dropped
            counts[month.split] += month.rows_out
            log.info("features: %s -> %s, %d rows", month.name, month.split, month.rows_out)
        remove_partials(tmp)
        feature_spec(FEATURE_GROUPS, TARGETS).save(tmp / "feature_spec.json")
        write_json(tmp / "counts.json", counts)
    log.info("features: %s", counts)
    return {
        "rows_in": counts["rows_in"],
        "rows_out": counts["train"] + counts["test"],
        "rows_dropped": counts["rows_dropped_no_arrival"] + counts["rows_unused_months"],
    }
