"""Quarantine records: every row a stage does not pass on, with where it came from and why.

One record per (row, broken rule). `record` holds the row's original values as JSON so nothing is lost.
"""

from __future__ import annotations

import functools
import json

import pandas as pd

COLUMNS = ["table", "source", "row", "column", "rule", "value", "record"]


def empty() -> pd.DataFrame:
    return _empty().copy()


@functools.cache
def _empty() -> pd.DataFrame:
    # built once per process (seven typed columns cost some milliseconds); callers get copies
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else "string") for c in COLUMNS})


def _record(row: pd.Series) -> str:
    values = {k: (None if pd.isna(v) else str(v)) for k, v in row.items() if not str(k).startswith("_")}
    return json.dumps(values, ensure_ascii=False)


def records(
    table: str,
    rows: pd.DataFrame,
    column: str,
    rule: str,
    values: pd.Series | None = None,
) -> pd.DataFrame:
    """Quarantine records for `rows` (which carry `_source` and `_row`) that broke `rule` on `column`."""
    if rows.empty:
        return empty()
    vals = rows[column] if values is None and column in rows else values
    out = pd.DataFrame(
        {
            "table": table,
            "source": rows["_source"].astype("string").to_numpy(),
            "row": rows["_row"].astype("int64").to_numpy(),
            "column": column,
            "rule": rule,
            "value": (
                pd.Series([None] * len(rows), dtype="string")
                if vals is None
                else vals.map(lambda v: None if pd.isna(v) else str(v)).astype("string")
            ).to_numpy(),
            "record": [_record(r) for _, r in rows.iterrows()],
        }
    )
    return out.astype({c: "string" for c in COLUMNS if c != "row"})


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty()
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["table", "source", "row", "column"], kind="stable", ignore_index=True)
