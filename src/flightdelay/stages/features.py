"""Build the features (features.builder; flights joins weather and aircraft), split by month.

Stage `features`: learn the feature state from the training months and write the feature table by month.

Computes every flight's features with flightdelay.modeling.flight_features.compute_features, the code batch scoring
and the service use too: each month's flights are their own schedule context (congestion is counted over the whole
schedule, before flights without an arrival are dropped), and the origin weather its weather context: each month's
task reads its own month's weather and the months either side (`MonthlyWeather`), so memory follows a month, not
the window, and the values are those of one weather table over the whole window. Labels the target and splits by
month into data/processed/{train,test}/<YYYY-MM>.parquet. Partitions are keyed by their full 'YYYY-MM' name and
the split (`features.split`) is a pair of month ranges, so a window of any length keeps every month (2013-05 and
2014-05 are two partitions, never one).

Statistics learned from outcomes (the `history` group) come from training months only; a training row's history
excludes its own month ('YYYY-MM'), so no row ever sees its own label. The first pass brings back each training
month's sums per key and folds them into totals a batch of months at a time; the second pass takes a training
month's own sums (computed again from its rows) from the totals. So the stage holds sums per key, not per month and
key: its memory follows the keys, not the window's months. What the test months (and any later month)
are scored with, the history over all training months, the aircraft table and the holiday calendar, is written as
data/processed/feature_state.json, which the package stage puts in the model package.

This module is the default data set's builder (`features.builder: flights`); `features.builder: generic` runs
flightdelay.modeling.generic_builder instead, driven by config. Both write what flightdelay.core.processed
describes (partitions, feature_spec.json, counts.json, feature_state.json); the later stages read only that.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from flightdelay.core.config import ComputeParams, DatasetParams, FeatureParams, Params, TrainParams, shift_period
from flightdelay.core.contracts import FeatureSpec
from flightdelay.core.engine import engine, read_parquet_url, remove_partials, write_parquet_atomic
from flightdelay.core.errors import DataError
from flightdelay.core.files import atomic_dir, partition_files, read_parquet, window_partitions, write_json
from flightdelay.core.processed import FeatureBuilder
from flightdelay.modeling import generic_builder
from flightdelay.modeling.flight_features import (
    CATEGORICAL,
    FEATURE_GROUPS,
    FOLD_MONTHS,
    HISTORY_KEYS,
    HOLIDAY_YEARS_AHEAD,
    ID_COLUMNS,
    LEAKY,
    TARGETS,
    WEATHER,
    FeatureContext,
    FeatureState,
    History,
    HistoryPartial,
    HistoryTable,
    Span,
    WeatherLookup,
    aircraft_table,
    clip_spans,
    compute_features,
    history_features,
    holiday_calendar,
    label,
    merge_spans,
    weather_spans,
    weather_table,
)

__all__ = ["FEATURE_GROUPS", "LEAKY", "TARGETS", "build_frame", "feature_spec", "run"]

log = logging.getLogger(__name__)

NO_HISTORY: tuple[float, float, dict[str, HistoryTable]] = (0.0, 0.0, {})  # features built without history columns
HISTORY_COLUMNS = sorted({key for keys in HISTORY_KEYS.values() for key in keys})  # the history features' key columns

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {"input": "the validate stage's folder"}
OUTPUTS = {
    "out": "folder for train/ and test/ partitions, feature_spec.json, counts.json and feature_state.json (the "
    "fitted feature state the package carries)"
}
UNTRACKED: dict[str, str] = {}
STATE_FILE = "feature_state.json"

# ------------------------------------------------------------------------------------------------ pure logic


def build_frame(
    flights: pd.DataFrame,
    context: FeatureContext,
    state: FeatureState,
    missing_target: str,
    history: tuple[float, float, dict[str, HistoryTable]] | None = None,
) -> tuple[pd.DataFrame, int]:
    """Every feature of one partition of flights, with the targets. Returns (frame, rows dropped).

    The features come from `compute_features` (`history` overrides the state's history tables); then flights
    without an arrival are dropped (or labelled late). Congestion is counted on the whole schedule: whether a
    flight was later cancelled is an outcome, and must not change its neighbours' features.
    """
    frame, _ = compute_features(flights, context, state, history)
    return with_targets(frame, flights, missing_target)


def build_own_month_out(
    flights: pd.DataFrame,
    context: FeatureContext,
    state: FeatureState,
    missing_target: str,
    history: History,
    period: str,
) -> tuple[pd.DataFrame, int]:
    """`build_frame` of training month `period`, whose history features leave the month's own rows out: the
    month's own sums per key come from the frame built without history (as pass 1 computed them), and are taken
    from the training months' totals (`History.tables`)."""
    base, _ = compute_features(flights, context, state, NO_HISTORY)
    keys = base[HISTORY_COLUMNS].assign(arr_delay=flights["arr_delay"].to_numpy())  # what the sums need
    own = HistoryPartial.of(period, label(keys, missing_target)[0], history.target)
    prior_sum, prior_count, tables = history.tables(own)
    hist = history_features(base, tables, state.smoothing, prior_sum, prior_count)
    return with_targets(pd.concat([base, hist], axis=1), flights, missing_target)


def with_targets(frame: pd.DataFrame, flights: pd.DataFrame, missing_target: str) -> tuple[pd.DataFrame, int]:
    """The features with the targets in their columns, flights without an arrival dropped or labelled late
    (`label`). Returns (frame, rows dropped)."""
    at = len(ID_COLUMNS) + 1  # after the ID columns and distance, where the targets have always been
    frame.insert(at, "arr_delay", flights["arr_delay"].to_numpy())
    frame, dropped = label(frame, missing_target)
    frame.insert(at + 1, "late", frame.pop("late"))
    return frame, dropped


def initial_state(fp: FeatureParams, aircraft: pd.DataFrame, first_year: int, last_year: int) -> FeatureState:
    """The state before history is learned: aircraft, the holiday calendar (the year before the split to
    HOLIDAY_YEARS_AHEAD years after it), smoothing and trend hours."""
    return FeatureState(
        holiday_country=fp.holiday_country,
        calendar=holiday_calendar(fp.holiday_country, first_year - 1, last_year + HOLIDAY_YEARS_AHEAD),
        weather_trend_hours=fp.weather_trend_hours,
        smoothing=fp.history_smoothing,
        prior_sum=0.0,
        prior_count=0.0,
        history={},
        aircraft=aircraft,
    )


def feature_spec(groups: dict[str, list[str]], task_targets: dict[str, str]) -> FeatureSpec:
    return FeatureSpec(
        groups=groups,
        categorical=sorted(c for cols in groups.values() for c in cols if c in CATEGORICAL),
        targets=task_targets,
        id_columns=ID_COLUMNS,
        leaky_columns=sorted(LEAKY),
    )


# ------------------------------------------------------------------------------------------------ entry point


@dataclasses.dataclass(frozen=True)
class Month:
    """What a month's task sends back: its counts, never its rows (a training month's input rows and drops
    were counted in pass 1, so they are 0 here)."""

    name: str
    split: str | None
    rows_in: int
    dropped: int
    rows_out: int


@dataclasses.dataclass(frozen=True)
class TrainingMonth:
    """What a training month's pass-1 task sends back: its counts and its history partial (sums per key)."""

    name: str
    rows_in: int
    dropped: int
    rows_out: int
    seconds: float
    history: HistoryPartial


@dataclasses.dataclass(frozen=True)
class MonthlyWeather:
    """The origin weather of each month's task: the weather partitions of its month and of the months either side,
    on the hours that the whole window's hourly grid has there (`clip_spans` of `spans`, each origin's first and
    last hour over the window). Every weather feature looks back at most a day, so a month's hours get the values
    one table over the whole window gives them, and a task holds three months of weather, not the window's
    (tests/unit/test_monthly_weather.py compares the two)."""

    files: dict[str, str]  # period 'YYYY-MM' -> its weather partition
    spans: dict[Any, Span]
    trend_hours: int

    def lookup(self, period: str) -> WeatherLookup:
        before, after = shift_period(period, -1), shift_period(period, 1)
        parts = [self.files[p] for p in (before, period, after) if p in self.files]
        weather = pd.concat(
            [read_parquet_url(f) for f in parts or [next(iter(self.files.values()))]], ignore_index=True
        )
        if not parts:  # no weather in these three months: the columns only, on the window's grid
            weather = weather.iloc[:0]
        tz = next(iter(self.spans.values()))[0].tz if self.spans else None
        start = pd.Timestamp(f"{before}-01", tz=tz)
        end = pd.Timestamp(f"{shift_period(period, 2)}-01", tz=tz) - pd.Timedelta(hours=1)
        return WeatherLookup(weather_table(weather, self.trend_hours, clip_spans(self.spans, start, end)))


@functools.cache
def no_weather() -> WeatherLookup:
    """A weather lookup with no hours: every flight's weather missing."""
    return WeatherLookup(weather_table(pd.DataFrame(columns=["origin", "time_hour", *WEATHER]), 0))


def learn_month(
    item: tuple[str, str],
    *,
    state: FeatureState,
    missing_target: str,
    target: str,
) -> TrainingMonth:
    """The engine's task for pass 1: build one training month's features without history and return the
    month's outcome sums and counts per key (its rows stay on the worker). The sums need only the keys and the
    label, so the month's weather is not read (`no_weather`)."""
    period, path = item
    start = time.perf_counter()
    flights = read_parquet_url(path)
    frame, dropped = build_frame(flights, FeatureContext(flights, no_weather()), state, missing_target, NO_HISTORY)
    partial = HistoryPartial.of(period, frame, target)
    return TrainingMonth(Path(path).name, len(flights), dropped, len(frame), time.perf_counter() - start, partial)


def write_month(
    item: tuple[str, str, str | None],
    *,
    weather: MonthlyWeather,
    state: FeatureState,
    history: History,
    missing_target: str,
    out_dir: str,
) -> Month:
    """The engine's task for pass 2: build one month's features with history (a training month's own month
    left out), write it into its split."""
    period, path, split = item
    name = Path(path).name
    if split is None:
        return Month(name, None, len(read_parquet_url(path, columns=["month"])), 0, 0)
    flights = read_parquet_url(path)
    context = FeatureContext(flights, weather.lookup(period))
    if split == "train":
        frame, dropped = build_own_month_out(flights, context, state, missing_target, history, period)
    else:
        frame, dropped = build_frame(flights, context, state, missing_target)
    write_parquet_atomic(frame, f"{out_dir}/{split}/{name}")
    counted = split == "test"
    return Month(name, split, len(flights) if counted else 0, dropped if counted else 0, len(frame))


def _monthly_weather(in_dir: Path, trend_hours: int) -> MonthlyWeather:
    """Each month's weather partition, and each origin's first and last hour over them all (two columns read)."""
    files = partition_files(in_dir / "weather")
    if not files:
        raise DataError(
            f"features: {in_dir / 'weather'} holds no weather partitions, and the flight features need the origin "
            "weather of every month: if validate has run, its input had no weather table (add it to ingest.sources); "
            "if not, run `dvc repro validate`"
        )
    spans = merge_spans(weather_spans(read_parquet(f, columns=["origin", "time_hour"])) for f in files)
    return MonthlyWeather({f.stem: str(f) for f in files}, spans, trend_hours)


# The other feature builders (features.builder), each in its own module; `flights` is this module's run().
BUILDERS: dict[str, FeatureBuilder] = {"generic": generic_builder.run}


def main(args: argparse.Namespace, params: Params) -> dict[str, int]:
    return run(params.features, params.train, params.dataset, params.compute, in_dir=args.input, out_dir=args.out)


def run(
    features: FeatureParams,
    train: TrainParams,
    dataset: DatasetParams,
    compute: ComputeParams,
    *,
    in_dir: str | Path,
    out_dir: str | Path,
) -> dict[str, int]:
    if features.builder in BUILDERS:  # another builder, in its own module; below: the flights builder
        return BUILDERS[features.builder](features, train, dataset, compute, in_dir=in_dir, out_dir=out_dir)
    fp = features
    source = Path(in_dir)
    train_periods = fp.split.train_months()
    test_periods = fp.split.test_months()
    by_period = window_partitions(source / "flights", [*train_periods, *test_periods])
    weather = _monthly_weather(source, fp.weather_trend_hours)
    aircraft = aircraft_table(read_parquet(source / "planes.parquet"))
    target = TARGETS[train.task]
    if target == "arr_delay" and fp.missing_target == "late":
        raise DataError("features.missing_target: 'late' is for classification; use 'drop' for regression")
    years = [int(p[:4]) for p in (*train_periods, *test_periods)]
    state = initial_state(fp, aircraft, min(years), max(years))

    counts = {
        "rows_in": 0,
        "rows_dropped_no_arrival": 0,
        "rows_unused_months": 0,
        "train": 0,
        "test": 0,
    }
    with atomic_dir(out_dir) as tmp, engine(compute) as session:
        # Pass 1: outcome sums per key from training months only, one month per task; only the sums come back.
        def learned() -> Iterator[HistoryPartial]:
            """Each training month's sums as its task returns them, a batch of months at a time: the history folds
            them into its totals as they come, so no process holds every month's."""
            for batch in session.batches(
                functools.partial(learn_month, target=target),
                [(period, str(by_period[period])) for period in train_periods],
                name="features-history",
                size=FOLD_MONTHS,
                shared={"state": state, "missing_target": fp.missing_target},
            ):
                for done in batch:
                    counts["rows_in"] += done.rows_in
                    counts["rows_dropped_no_arrival"] += done.dropped
                    log.info(
                        "features: %s %7d flights -> %7d rows (%.2fs)",
                        done.name,
                        done.rows_in,
                        done.rows_out,
                        done.seconds,
                    )
                    yield done.history

        history = History.merge(learned(), target)
        prior_sum, prior_count, tables = history.tables(None)
        state = dataclasses.replace(state, prior_sum=prior_sum, prior_count=prior_count, history=tables)
        # Pass 2: build each month again (cheaper than holding them all), with history, write to its split.
        months = [
            (period, str(path), "train" if period in train_periods else "test" if period in test_periods else None)
            for period, path in sorted(by_period.items())
        ]
        shared = {"weather": weather, "state": state, "history": history, "missing_target": fp.missing_target}
        task = functools.partial(write_month, out_dir=str(tmp.resolve()))
        for month in session.map(task, months, name="features", shared=shared):
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
        (tmp / STATE_FILE).write_text(state.to_json(), encoding="utf-8")
    log.info("features: %s", counts)
    return {
        "rows_in": counts["rows_in"],
        "rows_out": counts["train"] + counts["test"],
        "rows_dropped": counts["rows_dropped_no_arrival"] + counts["rows_unused_months"],
    }
