"""flightdelay.stages.validate: row rules quarantine rows, column rules stop the stage, profiles, summary."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet as pq
import pytest

from flightdelay.core.config import ColumnSpec, Schema, TableSpec
from flightdelay.core.engine import PARQUET_COMPRESSION, write_parquet_atomic
from flightdelay.core.errors import DataError
from flightdelay.core.value_counts import exact_quantile
from flightdelay.data import quarantine
from flightdelay.stages.validate import (
    ColumnPartial,
    Counted,
    arrow_check,
    check_partition,
    count_values,
    merge_partials,
    passes_schema,
    profile_column,
    profile_partial,
    repeats_key,
    rewrites_unchanged,
    summary_markdown,
    table_schema,
    validate_part,
    wrong_period,
)

SOURCE = "flights/2013-01.parquet"

SPEC = TableSpec(
    name="flights",
    columns={
        "year": ColumnSpec("int", min=1900, max=2100),
        "month": ColumnSpec("int", min=1, max=12),
        "flight": ColumnSpec("int", min=1, max=9999),
        "origin": ColumnSpec("str", allowed=("EWR", "JFK", "LGA")),
        "dep_delay": ColumnSpec("float", nullable=True, min=-120, max=2000),
        "distance": ColumnSpec("float"),
    },
    partitioned=True,
    period={"year": "year", "month": "month"},
    key=("flight",),
)


def partition(**overrides) -> pd.DataFrame:
    """Five valid rows of January 2013 as ingest writes them; `overrides` replace whole columns."""
    data = {
        "year": pd.array([2013] * 5, dtype="Int64"),
        "month": pd.array([1] * 5, dtype="Int64"),
        "flight": pd.array([1, 2, 3, 4, 5], dtype="Int64"),
        "origin": pd.array(["EWR", "JFK", "LGA", "EWR", "JFK"], dtype="string"),
        "dep_delay": np.array([0.0, np.nan, 5.0, -3.0, 10.0]),
        "distance": np.array([100.0, 200.0, 300.0, 400.0, 500.0]),
        "_source": pd.array(["flights/2013-01.csv"] * 5, dtype="string"),
        "_row": np.arange(1, 6, dtype="int64"),
    }
    for name, values in overrides.items():
        dtype = data[name].dtype
        data[name] = pd.array(values, dtype=dtype) if isinstance(dtype, pd.api.extensions.ExtensionDtype) else values
    return pd.DataFrame(data)


def test_valid_partition_passes_whole():
    frame = partition()
    passed, bad = check_partition(frame, SPEC, SOURCE, "2013-01")
    assert bad.empty
    assert list(bad.columns) == quarantine.COLUMNS
    pd.testing.assert_frame_equal(passed, frame)


def test_out_of_range_is_quarantined():
    passed, bad = check_partition(partition(dep_delay=[0.0, 2001.0, 5.0, -121.0, 10.0]), SPEC, SOURCE, "2013-01")
    assert bad[["row", "column", "rule", "value"]].to_dict("records") == [
        {"row": 2, "column": "dep_delay", "rule": "in_range(-120, 2000)", "value": "2001.0"},
        {"row": 4, "column": "dep_delay", "rule": "in_range(-120, 2000)", "value": "-121.0"},
    ]
    assert passed["_row"].tolist() == [1, 3, 5]


def test_value_not_allowed_is_quarantined():
    passed, bad = check_partition(partition(origin=["EWR", "JFK", "BOS", "EWR", "ewr"]), SPEC, SOURCE, "2013-01")
    assert bad["row"].tolist() == [3, 5]
    assert (bad["column"] == "origin").all()
    assert (bad["rule"] == "isin(['EWR', 'JFK', 'LGA'])").all()
    assert bad["value"].tolist() == ["BOS", "ewr"]
    assert passed["_row"].tolist() == [1, 2, 4]


def test_null_in_non_nullable_is_quarantined_null_in_nullable_is_not():
    frame = partition(distance=[100.0, 200.0, np.nan, 400.0, 500.0])  # row 2 has a null dep_delay (nullable)
    passed, bad = check_partition(frame, SPEC, SOURCE, "2013-01")
    assert bad[["row", "column", "rule"]].to_dict("records") == [
        {"row": 3, "column": "distance", "rule": "not_nullable"}
    ]
    assert pd.isna(bad["value"].iloc[0])
    assert passed["_row"].tolist() == [1, 2, 4, 5]


def test_duplicate_key_keeps_the_first_row():
    frame = partition(flight=[7, 8, 7, 9, 7], distance=[1.0, 2.0, 3.0, 4.0, 5.0])
    passed, bad = check_partition(frame, SPEC, SOURCE, "2013-01")
    assert bad[["row", "column", "rule", "value"]].to_dict("records") == [
        {"row": 3, "column": "flight", "rule": "unique_key", "value": "7"},
        {"row": 5, "column": "flight", "rule": "unique_key", "value": "7"},
    ]
    assert passed["flight"].tolist() == [7, 8, 9]
    assert passed["distance"].tolist() == [1.0, 2.0, 4.0]  # the first of the duplicates survives


MULTI_KEY = TableSpec(
    name="flights",
    columns=SPEC.columns,
    partitioned=True,
    period={"year": "year", "month": "month"},
    key=("year", "month", "origin"),
)


def test_duplicate_multi_column_key_keeps_the_first_row():
    frame = partition(origin=["EWR", "JFK", "EWR", "LGA", "EWR"])
    passed, bad = check_partition(frame, MULTI_KEY, SOURCE, "2013-01")
    assert passed["_row"].tolist() == [1, 2, 4]
    assert set(bad["row"]) == {3, 5}
    assert set(bad["rule"]) == {"unique_key"}
    assert set(bad["column"]) == {"year,month,origin"}


def test_duplicate_multi_column_key_gives_one_record_per_row():
    frame = partition(origin=["EWR", "JFK", "EWR", "LGA", "EWR"])
    _, bad = check_partition(frame, MULTI_KEY, SOURCE, "2013-01")
    assert bad["row"].tolist() == [3, 5]


def test_row_of_another_month_is_quarantined():
    frame = partition(month=[1, 2, 1, 12, 1])
    passed, bad = check_partition(frame, SPEC, SOURCE, "2013-01")
    assert bad[["row", "column", "rule", "value"]].to_dict("records") == [
        {"row": 2, "column": "month", "rule": "period:2013-01", "value": "2"},
        {"row": 4, "column": "month", "rule": "period:2013-01", "value": "12"},
    ]
    assert passed["_row"].tolist() == [1, 3, 5]


def test_period_is_not_checked_without_a_period():
    frame = partition(month=[1, 2, 1, 12, 1])
    passed, bad = check_partition(frame, SPEC, "flights.parquet", None)
    assert bad.empty
    assert len(passed) == 5


def test_wrong_period_flags_year_too():
    frame = partition(year=[2013, 2012, 2013, 2013, 2014])
    assert wrong_period(frame, SPEC, "2013-01").tolist() == [False, True, False, False, True]


def test_several_rules_one_partition():
    frame = partition(
        flight=[1, 1, 3, 4, 5],
        origin=["EWR", "JFK", "XXX", "EWR", "JFK"],
        month=[1, 1, 1, 1, 3],
        distance=[1.0, 2.0, 3.0, np.nan, 5.0],
    )
    passed, bad = check_partition(frame, SPEC, SOURCE, "2013-01")
    assert passed["_row"].tolist() == [1]
    assert sorted(zip(bad["row"], bad["rule"], strict=True)) == [
        (2, "unique_key"),
        (3, "isin(['EWR', 'JFK', 'LGA'])"),
        (4, "not_nullable"),
        (5, "period:2013-01"),
    ]
    assert (bad["source"] == "flights/2013-01.csv").all()
    assert json.loads(bad.loc[bad["row"] == 3, "record"].iloc[0])["origin"] == "XXX"


def test_check_partition_does_not_change_its_input():
    frame = partition(origin=["EWR", "BOS", "JFK", "EWR", "JFK"])
    before = frame.copy()
    check_partition(frame, SPEC, SOURCE, "2013-01")
    pd.testing.assert_frame_equal(frame, before)


def test_wrong_column_dtype_is_a_data_error():
    frame = partition()
    frame["flight"] = frame["flight"].astype("float64")
    with pytest.raises(DataError) as err:
        check_partition(frame, SPEC, SOURCE, "2013-01")
    message = str(err.value)
    assert message.startswith(f"{SOURCE}:")
    assert "'flight'" in message
    assert "float64" in message


def test_missing_column_is_a_data_error():
    with pytest.raises(DataError, match="distance"):
        check_partition(partition().drop(columns=["distance"]), SPEC, SOURCE, "2013-01")


def test_missing_column_message_names_the_column():
    with pytest.raises(DataError, match=r"missing column\(s\) \['distance'\]"):
        check_partition(partition().drop(columns=["distance"]), SPEC, SOURCE, "2013-01")


# ------------------------------------------------------------------------------------------------ profile


def test_profile_numeric_column():
    profile = profile_column(pd.Series([1, 2, 3, 4, None], dtype="Int64"), (0.0, 0.5, 1.0))
    assert profile == {
        "dtype": "Int64",
        "count": 5,
        "nulls": 1,
        "null_share": 0.2,
        "distinct": 4,
        "min": 1.0,
        "max": 4.0,
        "mean": 2.5,
        "std": pytest.approx(np.std([1, 2, 3, 4])),
        "quantiles": {"0.0": 1.0, "0.5": 2.5, "1.0": 4.0},
    }


def test_profile_string_column_top_values_by_count_then_name():
    profile = profile_column(pd.Series(["b", "a", "b", None, "c", "a", "d"], dtype="string"), (0.5,))
    assert profile["count"] == 7
    assert profile["nulls"] == 1
    assert profile["distinct"] == 4
    assert list(profile["top"].items()) == [("a", 2), ("b", 2), ("c", 1), ("d", 1)]
    assert "quantiles" not in profile
    assert "mean" not in profile


def test_profile_datetime_column():
    values = pd.Series(pd.to_datetime(["2013-01-02", None, "2013-01-01"], utc=True))
    profile = profile_column(values, (0.5,))
    assert profile["min"] == "2013-01-01T00:00:00+00:00"
    assert profile["max"] == "2013-01-02T00:00:00+00:00"
    assert profile["nulls"] == 1


def test_profile_all_null_column_has_only_counts():
    profile = profile_column(pd.Series([np.nan, np.nan]), (0.5,))
    assert profile == {"dtype": "float64", "count": 2, "nulls": 2, "null_share": 1.0, "distinct": 0}


# ------------------------------------------------------------------------------------------------ summary


def test_summary_markdown_lists_tables_and_rules():
    _, bad = check_partition(partition(origin=["EWR", "BOS", "JFK", "EWR", "SFO"]), SPEC, SOURCE, "2013-01")
    counts = {
        "flights": {"partitions": 1, "rows_in": 5, "rows_passed": 3, "rows_quarantined": 2},
        "planes": {"partitions": 1, "rows_in": 9, "rows_passed": 9, "rows_quarantined": 0},
    }
    text = summary_markdown(counts, bad, "data/quarantine/validate.parquet")
    lines = text.splitlines()
    assert "| flights | 1 | 5 | 3 | 2 |" in lines
    assert "| planes | 1 | 9 | 9 | 0 |" in lines
    examples = "flights/2013-01.csv:2 = BOS, flights/2013-01.csv:5 = SFO"
    assert f"| flights | origin | `isin(['EWR', 'JFK', 'LGA'])` | 2 | {examples} |" in lines
    assert "None: every row passed." not in text
    assert text.endswith("\n")


def test_summary_markdown_limits_examples():
    _, bad = check_partition(partition(origin=["A", "B", "C", "D", "E"]), SPEC, SOURCE, "2013-01")
    text = summary_markdown({}, bad, "q.parquet", examples=2)
    row = next(line for line in text.splitlines() if "isin" in line)
    assert "| 5 |" in row
    assert row.count("flights/2013-01.csv:") == 2


def test_summary_markdown_when_nothing_is_quarantined():
    counts = {"t": {"partitions": 2, "rows_in": 4, "rows_passed": 4, "rows_quarantined": 0}}
    text = summary_markdown(counts, quarantine.empty(), "q.parquet")
    assert "| t | 2 | 4 | 4 | 0 |" in text.splitlines()
    assert "None: every row passed." in text


@pytest.mark.parametrize("seed", range(5))
def test_exact_quantile_from_value_counts_is_numpys_quantile(seed):
    rng = np.random.default_rng(seed)
    column = np.round(rng.normal(0, 50, size=int(rng.integers(1, 400))), int(rng.integers(0, 3)))
    values, counts = np.unique(column, return_counts=True)
    for q in (0.0, 0.01, 0.25, 0.3, 0.5, 0.75, 0.99, 1.0):
        assert exact_quantile(values, counts, q) == float(np.quantile(column, q))


def test_merged_partition_partials_profile_the_whole_column_exactly():
    whole = {
        "n": pd.Series([5, None, 3, 3, 8, 1, None, 2, 9, 3], dtype="Int64"),
        "x": pd.Series([0.5, 1.25, np.nan, 1.25, -3.0, 7.0, 0.5, 2.0, 2.0, 11.5]),
        "s": pd.Series(["b", "a", None, "c", "b", "a", "d", "a", "e", "f"], dtype="string"),
        "t": pd.Series(pd.to_datetime(["2013-01-02", None, "2013-01-01", "2013-03-01", "2013-01-01"] * 2, utc=True)),
    }
    for name, column in whole.items():
        parts = [column.iloc[:3], column.iloc[3:3], column.iloc[3:7], column.iloc[7:]]
        merged = merge_partials([{name: ColumnPartial.of(p.reset_index(drop=True))} for p in parts], spec_of(name))
        assert profile_partial(merged[name], (0.1, 0.5, 0.9)) == profile_column(column, (0.1, 0.5, 0.9)), name


def spec_of(name: str) -> TableSpec:
    return TableSpec(name="t", columns={name: ColumnSpec("float")})


# ------------------------------------------------------------------------------------------------ passes_schema

DIRTY = {
    "below min": {"dep_delay": [0.0, np.nan, 5.0, -121.0, 10.0]},
    "above max": {"month": [1, 1, 13, 1, 1]},
    "at the bounds": {"dep_delay": [-120.0, 2000.0, np.nan, 0.0, 1.0]},
    "infinite": {"dep_delay": [0.0, np.inf, 5.0, -3.0, 10.0]},
    "not allowed": {"origin": ["EWR", "JFK", "BOS", "EWR", "JFK"]},
    "case": {"origin": ["EWR", "JFK", "lga", "EWR", "JFK"]},
    "null not allowed": {"distance": [100.0, np.nan, 300.0, 400.0, 500.0]},
    "null int": {"flight": [1, None, 3, 4, 5]},
    "null text": {"origin": ["EWR", None, "LGA", "EWR", "JFK"]},
    "duplicate key": {"flight": [1, 2, 3, 3, 5]},
    "wrong dtype": {"distance": pd.array([1, 2, 3, 4, 5], dtype="Int64")},
    "object text": {"origin": np.array(["EWR", "JFK", "LGA", "EWR", "JFK"], dtype=object)},
    "year range": {"year": [2013, 2013, 1899, 2013, 2013]},
}


def pandera_passes(frame: pd.DataFrame) -> bool:
    try:
        table_schema(SPEC).validate(frame, lazy=True)
    except Exception:  # any pandera failure, row or column level, means "not clean"
        return False
    return True


@pytest.mark.parametrize("case", ["clean", *sorted(DIRTY)])
def test_passes_schema_never_passes_what_pandera_fails(case):
    """The shortcut may only skip pandera when pandera would find nothing; it may send a clean frame to pandera
    (object text, which pandera accepts as "string"), but it passes the clean and at-the-bounds frames."""
    overrides = DIRTY.get(case, {})
    frame = partition()
    for name, values in overrides.items():
        frame[name] = values if not isinstance(values, list) else partition(**{name: values})[name]
    shortcut = passes_schema(frame, SPEC)
    assert not shortcut or pandera_passes(frame)
    assert shortcut == (case in ("clean", "at the bounds"))


def test_passes_schema_on_a_clean_partition_gives_the_same_result_as_pandera():
    frame = partition()
    assert passes_schema(frame, SPEC)
    passed, bad = check_partition(frame, SPEC, SOURCE, "2013-01")
    pd.testing.assert_frame_equal(passed, frame)
    assert bad.empty


# ------------------------------------------------------------------------------------------------ copying a clean file


def every_dtype() -> pd.DataFrame:
    """A partition as ingest writes it, with a missing value in every nullable dtype."""
    return partition().assign(
        dep_delay=[0.0, np.nan, -0.0, 1e-300, 12.5],
        origin=pd.array(["EWR", None, "LGA", "EWR", "JFK"], dtype="string"),
        flight=pd.array([1, None, 3, 4, 5], dtype="Int64"),
        time_hour=pd.to_datetime(
            ["2013-01-01T05:00Z", None, "2013-01-31T23:00Z", "2013-01-02T00:00Z", "2013-01-03T00:00Z"], utc=True
        ),
    )


def test_a_partition_read_back_is_written_as_the_same_bytes(tmp_path):
    """What copying a clean partition rests on: pandas + pyarrow write a frame read back from their own file as
    the very same bytes. If an upgrade breaks this, validate must encode again (and this test says so)."""
    write_parquet_atomic(every_dtype(), str(tmp_path / "a.parquet"))
    first = (tmp_path / "a.parquet").read_bytes()
    write_parquet_atomic(pd.read_parquet(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"))
    assert (tmp_path / "b.parquet").read_bytes() == first
    assert rewrites_unchanged(first)


def test_rewrites_unchanged_refuses_other_writers(tmp_path):
    every_dtype().to_parquet(tmp_path / "snappy.parquet", compression="snappy")
    assert not rewrites_unchanged((tmp_path / "snappy.parquet").read_bytes())
    assert not rewrites_unchanged(b"PAR1 not a parquet file")


@pytest.mark.parametrize("dirty", [False, True])
def test_validate_part_copies_a_clean_partition_and_encodes_a_dirty_one(tmp_path, monkeypatch, dirty):
    frame = partition(distance=[100.0, 200.0, 9000.0 if dirty else 300.0, 400.0, 500.0])
    write_parquet_atomic(frame, str(tmp_path / "in" / "flights" / "2013-01.parquet"))
    encoded = []
    monkeypatch.setattr(
        "flightdelay.stages.validate.write_parquet_atomic", lambda f, url: encoded.append(write_parquet_atomic(f, url))
    )
    spec = TableSpec(**{**SPEC.__dict__, "columns": {**SPEC.columns, "distance": ColumnSpec("float", max=6000)}})
    result = validate_part(
        ("flights", "flights/2013-01.parquet", "2013-01"),
        Schema(tables={"flights": spec}),
        limit=0.5,
        in_dir=str(tmp_path / "in"),
        out_dir=str(tmp_path / "out"),
    )
    written = tmp_path / "out" / "flights" / "2013-01.parquet"
    assert result.rows_passed == (4 if dirty else 5)
    expected = frame[frame["distance"] <= 6000].reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_parquet(written), expected)
    write_parquet_atomic(expected, str(tmp_path / "expected.parquet"))
    assert written.read_bytes() == (tmp_path / "expected.parquet").read_bytes()
    assert len(encoded) == (1 if dirty else 0)  # the clean partition was copied, not encoded again


# ------------------------------------------------------------------------------------------------ checked in Arrow

TIMED = TableSpec(
    name="flights",
    columns={
        **SPEC.columns,
        "time_hour": ColumnSpec("datetime", nullable=True),
        "tailnum": ColumnSpec("str", nullable=True),
    },
    partitioned=True,
    period={"year": "year", "month": "month"},
    key=("month", "origin", "flight"),
)


def timed(**overrides) -> pd.DataFrame:
    frame = every_dtype().assign(flight=pd.array([1, 2, 3, 4, 5], dtype="Int64"), origin=partition()["origin"])
    frame["dep_delay"] = [0.0, np.nan, -5.5, 1e-300, 12.5]
    frame["time_hour"] = frame["time_hour"].astype("datetime64[ns, UTC]")  # as ingest types it
    frame["tailnum"] = pd.array(["N1", None, "N1", "Zürich ✈", ""], dtype="string")
    for name, values in overrides.items():
        frame[name] = pd.Series(values, dtype=frame[name].dtype) if isinstance(values, list) else values
    return frame


def as_written(frame: pd.DataFrame) -> pyarrow.Table:
    """The table `validate_part` reads from a file ingest wrote with `frame`."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow", compression=PARQUET_COMPRESSION)
    assert rewrites_unchanged(buffer.getvalue())
    return pq.read_table(pyarrow.BufferReader(buffer.getvalue()))


def arrow_or_frame(frame: pd.DataFrame, spec: TableSpec, period: str | None = "2013-01") -> str:
    """Which path judges `frame`; where Arrow does, its partials are the frame path's, value for value."""
    checked = arrow_check(as_written(frame), spec, SOURCE, period)
    try:
        passed, bad = check_partition(frame, spec, SOURCE, period)
    except DataError:
        assert checked is None, "the Arrow check passed what the frame path refuses"
        return "frame"
    if checked is None:
        return "frame"
    assert bad.empty, "the Arrow check passed a partition with rows to quarantine"
    assert list(checked) == list(spec.columns)
    for name in spec.columns:
        slow, fast = ColumnPartial.of(passed[name]), checked[name]
        assert (fast.dtype, fast.count, fast.nulls) == (slow.dtype, slow.count, slow.nulls), name
        pd.testing.assert_series_equal(fast.values, slow.values, check_exact=True)
    return "arrow"


def test_arrow_check_gives_the_partials_of_a_clean_partition():
    assert arrow_or_frame(timed(), TIMED) == "arrow"
    assert arrow_or_frame(partition(), SPEC) == "arrow"


@pytest.mark.parametrize("case", sorted(DIRTY))
def test_arrow_check_never_passes_what_the_frame_path_quarantines(case):
    frame = partition()
    for name, values in DIRTY[case].items():
        frame[name] = values if not isinstance(values, list) else partition(**{name: values})[name]
    assert arrow_or_frame(frame, SPEC) == ("arrow" if case == "at the bounds" else "frame")


@pytest.mark.parametrize(
    ("case", "overrides", "path"),
    [
        ("another month", {"month": [1, 1, 2, 1, 1]}, "frame"),
        ("another year", {"year": [2013, 2014, 2013, 2013, 2013]}, "frame"),
        ("repeated key", {"flight": [1, 2, 1, 4, 5], "origin": ["EWR", "JFK", "EWR", "EWR", "JFK"]}, "frame"),
        ("key repeated in part", {"flight": [1, 2, 1, 4, 5]}, "arrow"),
        ("both zeros", {"dep_delay": [0.0, -0.0, 1.0, np.nan, 2.0]}, "frame"),
        ("one zero of each row's sign", {"dep_delay": [-0.0, -0.0, 1.0, np.nan, 2.0]}, "arrow"),
        ("tiny and huge numbers", {"distance": [1e-300, 2.0, 1e300, 4.0, 5.0]}, "arrow"),
        ("wide ints", {"flight": [1, 10**12, -(10**12), 7, 9]}, "frame"),
        ("not a float's integer", {"flight": [1, 2**53 + 1, 3, 4, 5]}, "frame"),
        ("text times", {"time_hour": pd.array(["a", "b", "c", "d", "e"], dtype="string")}, "frame"),
        ("naive times", {"time_hour": pd.Series(pd.to_datetime(["2013-01-01"] * 5)).astype("datetime64[ns]")}, "frame"),
        ("times in microseconds", {"time_hour": pd.Series(pd.to_datetime(["2013-01-01"] * 5, utc=True))}, "frame"),
        ("float where int", {"flight": pd.Series([1.0, 2.0, 3.0, 4.0, 5.0])}, "frame"),
        ("object text", {"origin": pd.Series(["EWR", "JFK", "LGA", "EWR", "JFK"], dtype=object)}, "frame"),
    ],
)
def test_arrow_check_on_awkward_partitions(case, overrides, path):
    assert arrow_or_frame(timed(**overrides), TIMED) == path, case


def test_arrow_check_counts_a_wide_int_column_by_hash():
    spec = TableSpec(name="t", columns={"n": ColumnSpec("int", nullable=True), "s": ColumnSpec("str")}, key=("n",))
    frame = pd.DataFrame({"n": pd.array([10**12, None, -5, 3], dtype="Int64"), "s": pd.array(list("abca"), "string")})
    assert arrow_or_frame(frame, spec, None) == "arrow"
    assert arrow_or_frame(frame.assign(n=pd.array([10**12, None, None, 3], dtype="Int64")), spec, None) == "frame"


def test_arrow_check_leaves_a_null_spike_to_its_message():
    spec = TableSpec(name="t", columns={"x": ColumnSpec("float", nullable=True, max_null_rate=0.5)})
    assert arrow_or_frame(pd.DataFrame({"x": [1.0, np.nan, np.nan, 4.0]}), spec, None) == "frame"  # at the rate
    assert arrow_or_frame(pd.DataFrame({"x": [1.0, np.nan, np.nan, np.nan]}), spec, None) == "frame"  # over it
    assert arrow_or_frame(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), spec, None) == "arrow"


def test_arrow_check_of_an_empty_partition_is_left_to_the_frame_path():
    assert arrow_or_frame(partition().iloc[:0], SPEC) == "frame"


def test_arrow_check_names_a_missing_column():
    with pytest.raises(DataError, match="missing column"):
        arrow_check(as_written(partition().drop(columns="distance")), SPEC, SOURCE, "2013-01")


def test_count_values_counts_missing_values_as_one_number():
    counted = count_values(pyarrow.chunked_array([[3, None, 1], [3, None]], pyarrow.int64()))
    assert counted.distinct.to_pylist() == [1, 3] and counted.counts.tolist() == [1, 2]
    assert counted.codes[1] == counted.codes[4] and counted.codes[1] not in (counted.codes[0], counted.codes[2])


def test_repeats_key_renumbers_before_the_product_overflows():
    size = 2**40
    wide = [Counted(pyarrow.array([]), np.array([]), np.array([0, size - 2, 0, 5]), size) for _ in range(3)]
    assert repeats_key(wide)  # rows 0 and 2 agree on every column
    wide[2] = Counted(pyarrow.array([]), np.array([]), np.array([0, size - 2, 1, 5]), size)
    assert not repeats_key(wide)


@pytest.mark.parametrize("size", [16, 2**30])  # a bitmap of the possible numbers, or a hash of the rows' numbers
def test_repeats_key_by_bitmap_and_by_hash(size):
    def key(*codes: int) -> list[Counted]:
        return [Counted(pyarrow.array([]), np.array([]), np.array(codes), size)]

    assert repeats_key(key(0, size - 1, 0)) and not repeats_key(key(0, size - 1, 1))


@pytest.mark.parametrize(
    "parts",
    [
        [[1.0, 2.0, 2.0], [2.0, 3.5, np.nan], [-1.0, 1.0]],
        [[0.0, 1.0], [0.0, 0.0, 2.0]],
        [[-0.0, 1.0], [0.0, 2.0]],  # the signed zeros: left to pandas' group-by
        [[1e300, -1e300], [5e-324]],
        [[], [1.0]],
    ],
)
def test_merging_counts_of_numbers_in_numpy_gives_the_group_by(parts):
    partials = [ColumnPartial.of(pd.Series(p, dtype="float64", name="x")) for p in parts]
    merged = ColumnPartial.merge_all(partials)
    expected = pd.concat([p.values for p in partials]).groupby(level=0, sort=True).sum().astype("int64")
    pd.testing.assert_series_equal(merged.values, expected, check_exact=True)
    assert [str(v) for v in merged.values.index] == [str(v) for v in expected.index]
