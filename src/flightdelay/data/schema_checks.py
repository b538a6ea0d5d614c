"""File-level checks against the schema: a partition whose columns drifted, or whose nulls spiked, stops the
stage with a message naming the partition and the columns (rows are not quarantined one by one)."""

from __future__ import annotations

import difflib

import pandas as pd

from flightdelay.core.config import TableSpec
from flightdelay.core.errors import DataError

LINEAGE = ("_source", "_row")


def column_drift(columns: list[str], spec: TableSpec, source: str, extra_columns: str = "drop") -> list[str]:
    """Raise DataError for missing (or renamed) columns, and for extra ones when `extra_columns` is 'error'.

    Returns the extra columns (to be dropped with a warning).
    """
    present = [c for c in columns if c not in LINEAGE]
    missing = [c for c in spec.columns if c not in present]
    extra = [c for c in present if c not in spec.columns]
    if missing:
        hints = []
        for column in missing:
            close = difflib.get_close_matches(column, extra, n=1, cutoff=0.5)
            if close:
                hints.append(f"{close[0]!r} may be {column!r} renamed")
        raise DataError(
            f"{source}: table {spec.name!r} is missing column(s) {missing}"
            + (f"; unexpected column(s) {extra}" if extra else "")
            + (f" ({'; '.join(hints)})" if hints else "")
            + ". Fix the extract, or update the schema file (params: data.schema) if the source changed."
        )
    if extra and extra_columns == "error":
        raise DataError(
            f"{source}: table {spec.name!r} has column(s) not in the schema: {extra}. Add them to the schema "
            "file, or set ingest.extra_columns: drop to ignore them."
        )
    return extra


def null_spikes(frame: pd.DataFrame, spec: TableSpec, source: str) -> None:
    """Raise DataError when a column's share of missing values in this partition exceeds its max_null_rate."""
    if frame.empty:
        return
    for name, column in spec.columns.items():
        if column.max_null_rate is None or name not in frame:
            continue
        rate = float(frame[name].isna().mean())
        if rate > column.max_null_rate:
            raise DataError(
                f"{source}: column {name!r} is {rate:.1%} missing ({int(frame[name].isna().sum())} of "
                f"{len(frame)} rows), over its max_null_rate of {column.max_null_rate:.1%} in the schema file. "
                "A null spike usually means a broken extract: fix it, or raise max_null_rate if this is real."
            )
