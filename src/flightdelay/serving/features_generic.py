"""The generic feature builder's serving side (`features.builder: generic`), behind the predictor's neutral interface
(flightdelay.serving.predictor.RowFeatures).

The features of raw rows of the main table (dataset.table) come from flightdelay.modeling.generic_features, the
`features` stage's own functions: the row's own columns, calendar parts, joined reference columns (the package's
state holds the joined tables), history rates (the state's sums and counts over every training month) and lags and
rolling windows over each entity's earlier rows. Those earlier rows are the context: rows of the main table as the
validate stage writes them (`GenericContext`), never sent by the caller. A context row with the same entity and time
as a row being scored is that row, and is left out (the scored row's own values are used). A row with fewer earlier
rows of its entity in the context than its longest lag or rolling window needs is computed from the rows there are
(NaN where there are none, as the `features` stage does for an entity's first rows) and flagged as a fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import TypeAdapter

from flightdelay.core.config import GenericFeatureParams, shift_period
from flightdelay.core.errors import DataError
from flightdelay.modeling.generic_features import (
    PERIOD,
    GenericState,
    HistorySums,
    calendar_features,
    join_features,
    lag_features,
    ordered,
    rolling_features,
)
from flightdelay.modeling.model import prepare

CONTEXT_MONTHS = 2  # `flightdelay score` reads this many months before each scored month as its rows' context
_ROW = "__scored_row"  # the position of a scored row among the rows being scored; -1 for a context row


@dataclass(frozen=True)
class GenericContext:
    """Rows of the main table (validated: typed as the validate stage writes them) that scored rows' lags and
    rolling windows read as each entity's earlier rows."""

    rows: pd.DataFrame
    description: str = "frames"

    @staticmethod
    def empty() -> GenericContext:
        return GenericContext(pd.DataFrame(), "none")

    @staticmethod
    def from_validated(location: str | Path, months: Iterable[str] | None, table: str) -> GenericContext:
        """The validated partitions `<location>/<table>/<YYYY-MM>.parquet` of `months` and the CONTEXT_MONTHS before
        each (every partition when None); `location` is a path or an fsspec URL."""
        import fsspec

        fs, root = fsspec.core.url_to_fs(str(location))
        root = root.rstrip("/")
        found = fs.glob(f"{root}/{table}/*.parquet") if fs.exists(f"{root}/{table}") else []
        files = {Path(p).stem: p for p in sorted(found)}
        if months is not None:
            wanted = {shift_period(m, -k) for m in months for k in range(CONTEXT_MONTHS + 1)}
            files = {m: p for m, p in files.items() if m in wanted}
        frames = []
        for month in sorted(files):
            with fs.open(files[month], "rb") as handle:
                frames.append(pd.read_parquet(handle))
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return GenericContext(rows, f"{location}/{table} ({len(files)} months)")


def _utc(values: pd.Series) -> pd.Series:
    """A time column as UTC timestamps (naive times are taken as UTC, as ingest reads them)."""
    stamps = pd.to_datetime(values, utc=True)
    return stamps.astype("datetime64[ns, UTC]")


class GenericRows:
    """RowFeatures of the generic builder (see the module docstring)."""

    def __init__(
        self,
        *,
        state: GenericState,
        params: GenericFeatureParams,
        keys: list[str],
        numeric: list[str],
        categorical: list[str],
        context: GenericContext,
    ) -> None:
        self.state = state
        self.params = params
        self.keys = keys
        self.numeric = numeric
        self.categorical = categorical
        self.context = context
        self.description = context.description
        self.context_rows = len(context.rows)
        steps = [k for ks in params.lags.values() for k in ks] + [w for r in params.rolling.values() for w in r.windows]
        self.earlier_rows = max(steps, default=0)  # earlier rows of its entity a row needs in the context
        self._history = self._history_sums()
        # The context's times as UTC once, not on every request (they are compared with each request's rows).
        rows = context.rows.reset_index(drop=True)
        if not rows.empty and params.time_column in rows.columns:
            rows = rows.assign(**{params.time_column: _utc(rows[params.time_column]).to_numpy()})
        self._context = rows

    def _history_sums(self) -> HistorySums | None:
        """The state's sums and counts over every training month as HistorySums of one period, so that
        HistorySums.transform (the `features` stage's code) computes a scored row's history features."""
        if not self.params.history:
            return None
        keys = {name: list(columns) for name, columns in self.params.history.items()}
        per_period = {name: self.state.history[name].assign(**{PERIOD: "all"}) for name in keys}
        overall = pd.DataFrame({PERIOD: ["all"], "sum": [self.state.prior_sum], "count": [self.state.prior_count]})
        return HistorySums(keys, per_period, overall)

    def compute(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """The model-input frame of typed rows (as typed_rows gives them), one per row in order, and each row's
        fallback flag (fewer earlier rows of its entity in the context than its lags and windows need)."""
        gp, time = self.params, self.params.time_column
        new = rows.reset_index(drop=True).assign(**{time: _utc(rows[time]).to_numpy(), _ROW: np.arange(len(rows))})
        earlier = self._context_rows(new)
        combined = pd.concat([earlier, new], ignore_index=True) if len(earlier) else new
        ordered_rows = ordered(combined, self.keys, time)
        lags = lag_features(ordered_rows, self.keys, gp.lags)
        rolling = rolling_features(ordered_rows, self.keys, gp.rolling)
        before = (
            ordered_rows.groupby(self.keys, sort=False, dropna=False, observed=True).cumcount()
            if self.keys
            else pd.Series(np.arange(len(ordered_rows)))
        )
        scored = ordered_rows[_ROW].to_numpy() >= 0
        position = ordered_rows.loc[scored, _ROW].to_numpy()
        back = np.empty(len(new), dtype=np.intp)
        back[position] = np.flatnonzero(scored)  # each scored row's place in ordered_rows
        parts = [
            new[[*gp.numeric]].apply(pd.to_numeric, errors="raise").astype("float64"),
            new[[*gp.categorical]].astype("string"),
            lags.iloc[back].reset_index(drop=True),
            rolling.iloc[back].reset_index(drop=True),
            calendar_features(new[time], gp.calendar),
            join_features(new, self.state.joined, gp.joins),
        ]
        if self._history is not None:
            parts.append(self._history.transform(self._keyed(new), self.state.smoothing, None))
        frame = pd.concat(parts, axis=1)
        missing = [c for c in (*self.numeric, *self.categorical) if c not in frame.columns]
        if missing:
            raise DataError(f"the package's model reads {missing}, which its features.generic params do not build")
        fallback = before.to_numpy()[back] < self.earlier_rows
        return prepare(frame, self.numeric, self.categorical), fallback  # as the `predict` stage scores rows

    def _context_rows(self, new: pd.DataFrame) -> pd.DataFrame:
        """The context's rows less those with the entity and time of a row being scored, in the scored rows'
        columns."""
        context = self._context
        if context.empty:
            return new.iloc[:0]
        time = self.params.time_column
        absent = [c for c in new.columns if c not in context.columns and c != _ROW]
        if absent:
            raise DataError(f"{self.description}: the context rows have no column(s) {absent}")
        earlier = context[[c for c in new.columns if c != _ROW]]
        ident = [*self.keys, time]
        same = pd.MultiIndex.from_frame(earlier[ident].astype(object)).isin(
            pd.MultiIndex.from_frame(new[ident].astype(object))
        )
        return earlier[~same].assign(**{_ROW: -1})

    def _keyed(self, new: pd.DataFrame) -> pd.DataFrame:
        """The scored rows' history key columns in the state's types (JSON gives numbers and texts)."""
        out = new.copy()
        for name, columns in self.params.history.items():
            table = self.state.history[name]
            for column in columns:
                out[column] = new[column].astype(object).where(new[column].notna(), None)
                if pd.api.types.is_numeric_dtype(table[column]):
                    out[column] = pd.to_numeric(out[column]).astype(table[column].dtype)
        return out

    def compute_records(self, records: Sequence[dict[str, Any]]) -> None:
        """No plain-list path: every batch goes through `compute`."""
        del records

    def with_context(self, context: Any) -> GenericRows:
        return GenericRows(
            state=self.state,
            params=self.params,
            keys=self.keys,
            numeric=self.numeric,
            categorical=self.categorical,
            context=_context_of(context),
        )


def _context_of(context: Any) -> GenericContext:
    if context is None:
        return GenericContext.empty()
    if not isinstance(context, GenericContext):
        raise DataError(
            f"a package of the generic feature builder scores with a GenericContext, not a {type(context).__name__}"
            " (the context of another builder's package)"
        )
    return context


# ------------------------------------------------------------------------------------------------ the builder


def checked_state(data: dict[str, Any], where: str) -> GenericState:
    """The package's feature state, its numbers checked: a hashed but hostile feature_state.json (text, bool, NaN or
    a negative count where a number goes) is refused here as DataError, never handed to the feature code."""
    state = GenericState.from_dict(data, where)
    for name, value in (("history_smoothing", data.get("history_smoothing")), *data.get("prior", {}).items()):
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
            raise DataError(f"{where}: {name} is {str(value)[:40]!r}; expected a finite number >= 0")
    for name, table in state.history.items():
        for column in ("sum", "count"):
            values = table[column] if column in table.columns else pd.Series([np.nan])
            numbers = pd.to_numeric(values, errors="coerce")
            if not pd.api.types.is_numeric_dtype(values) or not np.isfinite(numbers).all() or (numbers < 0).any():
                raise DataError(f"{where}: history.{name}.{column} holds a value that is not a finite number >= 0")
    return state


def rows_features(manifest: dict[str, Any], state: dict[str, Any], where: str, context: Any) -> GenericRows:
    """The predictor's RowFeatures for a package of this builder, from its manifest's params and its state."""
    params = manifest["params"]
    generic = TypeAdapter(GenericFeatureParams).validate_python(params["features"]["generic"])
    features = manifest["model"]["features"]
    return GenericRows(
        state=checked_state(state, where),
        params=generic,
        keys=list(params["dataset"]["entity_keys"]),
        numeric=list(features["numeric"]),
        categorical=list(features["categorical"]),
        context=_context_of(context),
    )


def context_from_validated(location: str | Path, months: Iterable[str] | None, table: str) -> GenericContext:
    return GenericContext.from_validated(location, months, table)


def month_context(
    read: Callable[[str, str], pd.DataFrame | None], period: str, rows: pd.DataFrame, table: str
) -> tuple[GenericContext, list[str]]:
    """The context of one month being scored: its rows and the main table's CONTEXT_MONTHS months before it
    (`read(table, month)`: a validated partition, None when there is none); the missing ones, as 'table month'."""
    frames, missing = [], []
    for back in range(CONTEXT_MONTHS, 0, -1):
        month = shift_period(period, -back)
        found = read(table, month)
        if found is None:
            missing.append(f"{table} {month}")
        else:
            frames.append(found)
    frames.append(rows)
    return GenericContext(pd.concat(frames, ignore_index=True), f"{table} {period}"), missing


def key_columns(manifest: dict[str, Any]) -> list[str]:
    """The columns of each row `flightdelay score` writes beside its prediction: the time column and entity keys."""
    params = manifest["params"]
    time = params["features"]["generic"]["time_column"]
    return list(dict.fromkeys([time, *params["dataset"]["entity_keys"]]))
