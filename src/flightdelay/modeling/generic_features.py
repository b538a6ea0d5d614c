"""Features of any tabular time-stamped data set, driven by config (`features.builder: generic`).

Pure functions over DataFrames; flightdelay.modeling.generic_builder reads and writes the files. From the main table
(dataset.table), one row per entity (dataset.entity_keys) and time (features.generic.time_column):

- `numeric`, `categorical`: the current row's own columns, used as they are (known at prediction time);
- `lags`: a column's value 1, 2, ... rows earlier for the same entity (`<column>_lag<k>`);
- `rolling`: statistics of a column over the `w` rows before the current one for the same entity
  (`<column>_roll<w>_<stat>`), never the current row or a later one;
- `calendar`: parts of the time column (month, day of week, ...);
- `joins`: columns of a reference table joined by key (`<table>_<column>`);
- `history`: the smoothed mean target per key, learned from training rows only; a training row's own month
  ('YYYY-MM') is left out, so no row's feature contains its own label (the default data set's own rule).

The target (dataset.target.<task>): the value of `source` `shift` rows later for the same entity (shift -1: the
next row, "tomorrow"), through `rule` (e.g. `> 0`) for classification. Rows whose target is missing (the last row
of each entity for shift -1) are dropped and counted. What scoring later rows needs from the training months (the
history sums, the joined tables) is the `GenericState`, JSON data that travels in the model package.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.config import ClassificationTarget, GenericFeatureParams, RegressionTarget
from flightdelay.core.contracts import FeatureSpec
from flightdelay.core.errors import DataError

STATE_FORMAT = "generic-1"
PERIOD = "period"  # the 'YYYY-MM' column the builder adds; each row's partition
GROUPS = ("current", "lags", "rolling", "calendar", "joined", "history")
RULES: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


# ------------------------------------------------------------------------------------------------ per entity


def _by_entity(frame: pd.DataFrame, keys: list[str], column: str) -> Any:
    """`frame[column]` grouped by entity (the whole column when there are no entity keys). `frame` is in time order
    within each entity (`ordered`)."""
    if not keys:
        return frame[column]
    return frame.groupby(keys, sort=False, dropna=False, observed=True)[column]


def ordered(frame: pd.DataFrame, keys: list[str], time_column: str) -> pd.DataFrame:
    """The rows sorted by entity, then time (ties keep their input order), index reset: the order lags read."""
    return frame.sort_values([*keys, time_column], kind="stable").reset_index(drop=True)


def lag_features(frame: pd.DataFrame, keys: list[str], lags: dict[str, tuple[int, ...]]) -> pd.DataFrame:
    """`<column>_lag<k>`: the column's value k rows earlier for the same entity (NaN when there is none)."""
    out = {}
    for column, steps in lags.items():
        values = pd.to_numeric(frame[column], errors="raise").astype("float64")
        grouped = _by_entity(frame.assign(**{column: values}), keys, column)
        for k in steps:
            out[f"{column}_lag{k}"] = grouped.shift(k)
    return pd.DataFrame(out, index=frame.index)


def _rolling(values: pd.Series, window: int, stat: str) -> pd.Series:
    past = values.shift(1)  # the rows before the current one, never the current one
    result: pd.Series = getattr(past.rolling(window, min_periods=1), stat)()
    return result


def rolling_features(frame: pd.DataFrame, keys: list[str], rolling: dict[str, Any]) -> pd.DataFrame:
    """`<column>_roll<w>_<stat>`: a statistic of the column over the w rows before the current one for the same
    entity (NaN for an entity's first row)."""
    out = {}
    for column, spec in rolling.items():
        values = pd.to_numeric(frame[column], errors="raise").astype("float64")
        for window in spec.windows:
            for stat in spec.stats:
                name = f"{column}_roll{window}_{stat}"
                if keys:
                    grouped = values.groupby([frame[k] for k in keys], sort=False, dropna=False, observed=True)
                    out[name] = grouped.transform(lambda s, w=window, f=stat: _rolling(s, w, f))
                else:
                    out[name] = _rolling(values, window, stat)
    return pd.DataFrame(out, index=frame.index)


def calendar_features(times: pd.Series, parts: tuple[str, ...]) -> pd.DataFrame:
    """Parts of each row's time: year, quarter, month, day_of_month, day_of_week (Monday 0), day_of_year,
    week_of_year (ISO), is_weekend, hour."""
    t = pd.to_datetime(times)
    columns = {
        "year": lambda: t.dt.year,
        "quarter": lambda: t.dt.quarter,
        "month": lambda: t.dt.month,
        "day_of_month": lambda: t.dt.day,
        "day_of_week": lambda: t.dt.day_of_week,
        "day_of_year": lambda: t.dt.day_of_year,
        "week_of_year": lambda: t.dt.isocalendar().week,
        "is_weekend": lambda: t.dt.day_of_week >= 5,
        "hour": lambda: t.dt.hour,
    }
    return pd.DataFrame({part: columns[part]().astype("int16") for part in parts}, index=times.index)


def target_values(frame: pd.DataFrame, keys: list[str], target: ClassificationTarget | RegressionTarget) -> pd.Series:
    """The target of each row: `source` `shift` rows later for the same entity, through `rule` for
    classification (int8 0/1); NaN where the value is missing (the row is dropped)."""
    if target.source is None:
        raise DataError(
            f"dataset.target: the generic feature builder needs dataset.target.<task>.source (and rule for "
            f"classification) to build {target.column!r}, e.g. source: precipitation, shift: -1, rule: '> 0'"
        )
    values = pd.to_numeric(frame[target.source], errors="raise").astype("float64")
    later = _by_entity(frame.assign(**{target.source: values}), keys, target.source).shift(target.shift)
    rule = getattr(target, "rule", None)
    if rule is None:
        return later.rename(target.column)
    op = next(symbol for symbol in RULES if rule.startswith(symbol))
    threshold = float(rule[len(op) :])
    hit = RULES[op](later, threshold).astype("float64")
    return hit.where(later.notna()).rename(target.column)


# ------------------------------------------------------------------------------------------------ joins


def join_features(frame: pd.DataFrame, tables: dict[str, pd.DataFrame], joins: tuple[Any, ...]) -> pd.DataFrame:
    """`<table>_<column>` for each join: the reference table's row with the same key (NaN when there is none)."""
    out = pd.DataFrame(index=frame.index)
    for join in joins:
        table, on = tables[join.table], list(join.on)
        missing = [c for c in [*on, *join.columns] if c not in table.columns]
        if missing:
            raise DataError(f"features.generic.joins: table {join.table!r} has no column(s) {missing}")
        doubled = table.duplicated(on)
        if doubled.any():
            row = int(np.flatnonzero(doubled)[0])
            raise DataError(
                f"{join.table}: row {row} repeats key {on} = {table.loc[doubled].iloc[0][on].tolist()}; a joined "
                "table needs one row per key (list the key in the schema, so validate quarantines duplicates)"
            )
        picked = table[[*on, *join.columns]].rename(columns={c: f"{join.table}_{c}" for c in join.columns})
        merged = frame[on].merge(picked, on=on, how="left", validate="many_to_one")
        for c in join.columns:
            out[f"{join.table}_{c}"] = merged[f"{join.table}_{c}"].to_numpy()
    return out


# ------------------------------------------------------------------------------------------------ history


@dataclass(frozen=True)
class HistorySums:
    """Target sums and counts per key and training month, from which history features are computed."""

    keys: dict[str, list[str]]  # feature -> key columns
    per_period: dict[str, pd.DataFrame]  # feature -> key columns..., period, sum, count
    overall: pd.DataFrame  # period, sum, count

    @staticmethod
    def fit(train: pd.DataFrame, target: str, keys: dict[str, list[str]]) -> HistorySums:
        """Sums and counts from training rows only (`train` holds the PERIOD and the target)."""
        if train.empty:
            raise DataError("features: no training rows to learn history features from")
        per_period = {
            name: train.groupby([*cols, PERIOD], dropna=True, observed=True)[target].agg(["sum", "count"]).reset_index()
            for name, cols in keys.items()
        }
        overall = train.groupby(PERIOD)[target].agg(["sum", "count"]).reset_index()
        return HistorySums(keys, per_period, overall)

    def totals(self, name: str) -> pd.DataFrame:
        """Sums and counts per key over every training month."""
        return self.per_period[name].groupby(self.keys[name], observed=True)[["sum", "count"]].sum().reset_index()

    def transform(self, frame: pd.DataFrame, smoothing: float, leave_out: pd.Series | None) -> pd.DataFrame:
        """The history features of `frame`: (sum + smoothing * prior) / (count + smoothing) per key over the training
        months, less each row's `leave_out` month (a training row's own month; None: keep every month)."""
        out_of = leave_out if leave_out is not None else pd.Series(None, index=frame.index, dtype="object")
        own = self.overall.set_index(PERIOD).reindex(out_of.to_numpy()).fillna(0.0)
        prior_sum = self.overall["sum"].sum() - own["sum"].to_numpy()
        prior_count = self.overall["count"].sum() - own["count"].to_numpy()
        prior = prior_sum / np.maximum(prior_count, 1)
        columns = {}
        for name, keys in self.keys.items():
            rows = frame[keys].reset_index(drop=True)
            total = rows.merge(self.totals(name), on=keys, how="left")
            mine = rows.assign(**{PERIOD: out_of.to_numpy()}).merge(
                self.per_period[name], on=[*keys, PERIOD], how="left"
            )
            s = total["sum"].fillna(0.0).to_numpy() - mine["sum"].fillna(0.0).to_numpy()
            n = total["count"].fillna(0.0).to_numpy() - mine["count"].fillna(0.0).to_numpy()
            columns[name] = ((s + smoothing * prior) / (n + smoothing)).astype("float64")
        return pd.DataFrame(columns, index=frame.index)


# ------------------------------------------------------------------------------------------------ state


def _column(values: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else (v.item() if isinstance(v, np.generic) else v) for v in values.tolist()]


@dataclass(frozen=True)
class GenericState:
    """What scoring later rows needs from the training months, as JSON data: history sums per key (over every
    training month), the prior, the smoothing and the joined reference columns."""

    smoothing: float
    prior_sum: float
    prior_count: float
    history: dict[str, pd.DataFrame]  # feature -> key columns..., sum, count
    joined: dict[str, pd.DataFrame]  # table -> key and joined columns

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "history_smoothing": self.smoothing,
            "prior": {"sum": float(self.prior_sum), "count": float(self.prior_count)},
            "history": {n: {c: _column(t[c]) for c in t.columns} for n, t in self.history.items()},
            "joined": {n: {c: _column(t[c]) for c in t.columns} for n, t in self.joined.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False) + "\n"

    @staticmethod
    def from_dict(data: dict[str, Any], where: str) -> GenericState:
        try:
            if data.get("format") != STATE_FORMAT:
                raise DataError(f"{where}: feature state format {data.get('format')!r}, expected {STATE_FORMAT!r}")
            return GenericState(
                smoothing=float(data["history_smoothing"]),
                prior_sum=float(data["prior"]["sum"]),
                prior_count=float(data["prior"]["count"]),
                history={n: pd.DataFrame(t) for n, t in data["history"].items()},
                joined={n: pd.DataFrame(t) for n, t in data["joined"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{where}: not a feature state ({type(exc).__name__}: {str(exc)[:120]})") from None


# ------------------------------------------------------------------------------------------------ all features


@dataclass(frozen=True)
class Built:
    """The builder's result: every row with a target (id columns, PERIOD, target, features), the spec, the state
    and the rows dropped for a missing target."""

    frame: pd.DataFrame
    spec: FeatureSpec
    state: GenericState
    dropped: pd.Series  # PERIOD of each dropped row


def check_config(gp: GenericFeatureParams, target: ClassificationTarget | RegressionTarget, columns: list[str]) -> None:
    """One line for the first problem: a column the table lacks, or the target's own value used as a feature."""
    named = [*gp.numeric, *gp.categorical, *gp.lags, *gp.rolling, gp.time_column]
    named += [c for keys in gp.history.values() for c in keys]
    named += [c for join in gp.joins for c in join.on]
    named += [target.source] if target.source is not None else []
    missing = sorted({c for c in named if c not in columns})
    if missing:
        raise DataError(f"features.generic: column(s) {missing} are not in the main table (it has {columns})")
    if target.shift == 0 and target.source in [*gp.numeric, *gp.categorical]:
        raise DataError(
            f"features.generic: {target.source!r} is the target's own value (dataset.target shift 0) and cannot be "
            "a feature of the same row; use its lags or rolling windows, or predict a later row (shift: -1)"
        )


def build(
    frame: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    gp: GenericFeatureParams,
    keys: list[str],
    target: ClassificationTarget | RegressionTarget,
    task: str,
    train_periods: list[str],
    smoothing: float,
) -> Built:
    """Every feature of the main table's rows (`frame` holds PERIOD, each row's 'YYYY-MM'), the target of `task`,
    history learned from the rows of `train_periods` only."""
    check_config(gp, target, [c for c in frame.columns if c != PERIOD])
    rows = ordered(frame, keys, gp.time_column)
    y = target_values(rows, keys, target)
    current = rows[list(gp.numeric)].apply(pd.to_numeric, errors="raise").astype("float64")
    for column in gp.categorical:
        current[column] = rows[column].astype("string")
    lags = lag_features(rows, keys, gp.lags)
    rolling = rolling_features(rows, keys, gp.rolling)
    calendar = calendar_features(rows[gp.time_column], gp.calendar)
    joined = join_features(rows, tables, gp.joins)
    for column in joined.columns:
        if not pd.api.types.is_numeric_dtype(joined[column]):
            joined[column] = joined[column].astype("string")
    ids = list(dict.fromkeys([gp.time_column, *keys]))
    parts = [
        rows[[*(c for c in ids if c not in current.columns), PERIOD]],
        y.to_frame(),
        current,
        lags,
        rolling,
        calendar,
        joined,
    ]
    names = [c for part in parts for c in part.columns] + list(gp.history)
    doubled = sorted({c for c in names if names.count(c) > 1})
    if doubled:
        raise DataError(
            f"features.generic: column name(s) {doubled} made twice (an id column, the target column "
            "dataset.target.<task>.column, a feature or a history name); rename one"
        )
    out = pd.concat(parts, axis=1)
    has_target = out[target.column].notna().to_numpy()
    dropped = out.loc[~has_target, PERIOD].reset_index(drop=True)
    out = out[has_target].reset_index(drop=True)
    if task == "classification":
        out[target.column] = out[target.column].astype("int8")
    history_keys = {name: list(cols) for name, cols in gp.history.items()}
    key_columns = list(dict.fromkeys(c for cols in history_keys.values() for c in cols))
    base = rows.loc[has_target, [*key_columns, PERIOD]].reset_index(drop=True)
    base[target.column] = out[target.column]
    in_train = base[PERIOD].isin(train_periods)
    sums = HistorySums.fit(base[in_train], target.column, history_keys) if history_keys else None
    if sums is not None:
        leave_out = base[PERIOD].where(in_train)
        out = pd.concat([out, sums.transform(base, smoothing, leave_out)], axis=1)
    categorical = [*gp.categorical, *(c for c in joined.columns if not pd.api.types.is_numeric_dtype(joined[c]))]
    groups = {
        "current": [*gp.numeric, *gp.categorical],
        "lags": list(lags.columns),
        "rolling": list(rolling.columns),
        "calendar": list(calendar.columns),
        "joined": list(joined.columns),
        "history": list(history_keys),
    }
    leaky = [target.column, *([target.source] if target.shift == 0 and target.source else [])]
    spec = FeatureSpec(
        groups=groups,
        categorical=sorted(categorical),
        targets={task: target.column},
        id_columns=ids,
        leaky_columns=sorted(set(leaky)),
    )
    state = GenericState(
        smoothing=float(smoothing),
        prior_sum=float(sums.overall["sum"].sum()) if sums else 0.0,
        prior_count=float(sums.overall["count"].sum()) if sums else 0.0,
        history={name: sums.totals(name) for name in history_keys} if sums else {},
        joined={j.table: tables[j.table][[*j.on, *j.columns]].reset_index(drop=True) for j in gp.joins},
    )
    return Built(out, spec, state, dropped)
