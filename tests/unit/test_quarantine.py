"""flightdelay.data.quarantine: one record per (row, rule), original values kept, stable order."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from flightdelay.data import quarantine


def rows(source: str = "t/2013-01.csv", numbers: tuple[int, ...] = (3, 1)) -> pd.DataFrame:
    n = len(numbers)
    return pd.DataFrame(
        {
            "a": pd.array([10, None, 30][:n], dtype="Int64"),
            "b": ["x", "y", None][:n],
            "c": [1.5, np.nan, 2.0][:n],
            "_source": source,
            "_row": list(numbers),
        }
    )


def test_empty_has_the_columns_and_types():
    out = quarantine.empty()
    assert list(out.columns) == quarantine.COLUMNS
    assert out.empty
    assert out["row"].dtype == "int64"
    assert str(out["rule"].dtype) == "string"


def test_records_shape_and_values():
    out = quarantine.records("t", rows(), "a", "in_range(0, 5)")
    assert list(out.columns) == quarantine.COLUMNS
    assert len(out) == 2
    assert out["table"].tolist() == ["t", "t"]
    assert out["source"].tolist() == ["t/2013-01.csv"] * 2
    assert out["row"].tolist() == [3, 1]
    assert out["row"].dtype == "int64"
    assert out["column"].tolist() == ["a", "a"]
    assert out["rule"].tolist() == ["in_range(0, 5)"] * 2
    assert out["value"].iloc[0] == "10"
    assert pd.isna(out["value"].iloc[1])
    assert all(str(out[c].dtype) == "string" for c in quarantine.COLUMNS if c != "row")


def test_record_json_holds_original_values_without_lineage():
    out = quarantine.records("t", rows(), "b", "rule")
    first, second = (json.loads(r) for r in out["record"])
    assert first == {"a": "10", "b": "x", "c": "1.5"}
    assert second == {"a": None, "b": "y", "c": None}


def test_records_explicit_values_override_the_column():
    frame = rows()
    out = quarantine.records("t", frame, "a", "dtype:int", pd.Series(["abc", "1.5"], index=frame.index))
    assert out["value"].tolist() == ["abc", "1.5"]


def test_records_for_a_column_not_in_the_rows_have_no_value():
    out = quarantine.records("t", rows(), "a,b", "unique_key")
    assert out["value"].isna().all()
    assert out["column"].tolist() == ["a,b", "a,b"]


def test_records_of_no_rows_is_empty():
    out = quarantine.records("t", rows().iloc[:0], "a", "rule")
    assert out.empty
    assert list(out.columns) == quarantine.COLUMNS


def test_concat_sorts_by_table_source_row_column():
    parts = [
        quarantine.records("t", rows("t/2013-02.csv", (2, 1)), "b", "r1"),
        quarantine.empty(),
        quarantine.records("t", rows("t/2013-01.csv", (5,)), "c", "r2"),
        quarantine.records("t", rows("t/2013-01.csv", (5, 4)), "a", "r3"),
        quarantine.records("s", rows("s.csv", (9,)), "a", "r4"),
    ]
    out = quarantine.concat(parts)
    assert len(out) == 6
    assert out.index.tolist() == list(range(6))
    assert list(zip(out["table"], out["source"], out["row"], out["column"], strict=True)) == [
        ("s", "s.csv", 9, "a"),
        ("t", "t/2013-01.csv", 4, "a"),
        ("t", "t/2013-01.csv", 5, "a"),
        ("t", "t/2013-01.csv", 5, "c"),
        ("t", "t/2013-02.csv", 1, "b"),
        ("t", "t/2013-02.csv", 2, "b"),
    ]


def test_concat_of_nothing_is_empty():
    for frames in ([], [quarantine.empty(), quarantine.empty()]):
        out = quarantine.concat(frames)
        assert out.empty
        assert list(out.columns) == quarantine.COLUMNS
