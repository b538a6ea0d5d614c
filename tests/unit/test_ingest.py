"""flightdelay.stages.ingest: typing raw values, quarantining the ones that do not fit, choosing partitions."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from flightdelay.core.config import ColumnSpec, IngestParams, RetryParams, TableSpec, Window, load_schema
from flightdelay.core.engine import write_parquet_atomic, write_table_atomic
from flightdelay.core.errors import DataError
from flightdelay.data.readers import read_csv_text, text_frame
from flightdelay.stages.ingest import (
    Chunk,
    coerce_column,
    coerce_frame,
    ingest_chunk,
    plain_numbers,
    plan_files,
    repeated_text,
    select_partitions,
    typed_table,
    utc_seconds,
    with_lineage,
)


def raw(values: list) -> pd.Series:
    """Values as read from CSV (`dtype=str`): strings, or missing."""
    return pd.Series(values, dtype=object)


# ------------------------------------------------------------------------------------------------ coerce_column


def test_coerce_int():
    values, bad = coerce_column(raw(["1", "2", "abc", "1.5", None, "-3", "4.0"]), ColumnSpec("int"))
    assert str(values.dtype) == "Int64"
    assert bad.tolist() == [False, False, True, True, False, False, False]
    assert values.tolist() == [1, 2, pd.NA, pd.NA, pd.NA, -3, 4]


def test_coerce_int_missing_value_is_not_bad():
    values, bad = coerce_column(raw([None, None]), ColumnSpec("int", nullable=False))
    assert not bad.any()  # nullability is validate's job, not ingest's
    assert values.isna().all()


def test_coerce_int_out_of_int64_range_is_flagged():
    values, bad = coerce_column(raw(["1", "1e300", "99999999999999999999"]), ColumnSpec("int"))
    assert bad.tolist() == [False, True, True]
    assert values.tolist()[0] == 1


def test_coerce_float():
    values, bad = coerce_column(raw(["1.5", "abc", None, "-2", "1e3"]), ColumnSpec("float"))
    assert values.dtype == "float64"
    assert bad.tolist() == [False, True, False, False, False]
    assert values.iloc[0] == 1.5
    assert values.iloc[3] == -2.0
    assert values.iloc[4] == 1000.0
    assert values.iloc[[1, 2]].isna().all()


def test_coerce_str_never_flags_and_keeps_missing():
    values, bad = coerce_column(raw(["EWR", None, "1"]), ColumnSpec("str"))
    assert str(values.dtype) == "string"
    assert not bad.any()
    assert values.iloc[0] == "EWR"
    assert values.iloc[2] == "1"
    assert pd.isna(values.iloc[1])


def test_coerce_datetime_to_utc():
    values, bad = coerce_column(
        raw(["2013-01-01 05:00:00", "2013-01-01T06:00:00-05:00", "not a date", None, "2013-02-30"]),
        ColumnSpec("datetime"),
    )
    assert str(values.dtype) == "datetime64[ns, UTC]"
    assert bad.tolist() == [False, False, True, False, True]
    assert values.iloc[0] == pd.Timestamp("2013-01-01 05:00", tz="UTC")
    assert values.iloc[1] == pd.Timestamp("2013-01-01 11:00", tz="UTC")
    assert values.iloc[2:].isna().all()


@pytest.mark.parametrize(
    "value",
    ["2013-02", "2013-02-01", "2013", "2013-02-01T13", "2013-02-01T13:0", "2013-02-01T13:00:0",
     "2013-02-01T13:00:00.", "2013-02-01T13:00:00+0", "2013-02-01T13:00:00+01:0", "2013-02-01 13"],
)  # fmt: skip
@pytest.mark.parametrize("text", [raw, lambda values: pd.Series(values, dtype=ARROW_TEXT)], ids=["object", "arrow"])
def test_coerce_datetime_cut_short_is_a_bad_value(value, text):
    """A date alone or a time cut off (a file cut mid-value) is a bad value, not a time pandas completes."""
    values, bad = coerce_column(text(["2013-02-01T10:00:00Z", value, None]), ColumnSpec("datetime"))
    assert bad.tolist() == [False, True, False]
    assert values.isna().tolist() == [False, True, True]


@pytest.mark.parametrize(
    "value",
    ["2013-02-01T13:00:00Z", "2013-02-01 13:00", "2013-02-01T13:00:00-05:00", "2013-02-01T13:00:00.5Z",
     "2013-02-01T13:00:00+0100", "2013-02-01 13:00:00"],
)  # fmt: skip
def test_coerce_datetime_keeps_whole_times_in_other_spellings(value):
    values, bad = coerce_column(raw([value]), ColumnSpec("datetime"))
    assert not bad.any()
    assert values.iloc[0] == pd.to_datetime(value, utc=True, format="ISO8601")  # as pandas reads it alone


def test_coerce_datetime_leaves_times_that_are_not_text_to_the_parser():
    stored = pd.Series(pd.to_datetime(["2013-02-01 13:00"]), dtype="datetime64[ns]")
    values, bad = coerce_column(stored, ColumnSpec("datetime"))
    assert not bad.any() and values.iloc[0] == pd.Timestamp("2013-02-01 13:00", tz="UTC")


def test_coerce_column_does_not_change_its_input():
    values = raw(["1", "x"])
    coerce_column(values, ColumnSpec("int"))
    assert values.tolist() == ["1", "x"]


# ------------------------------------------------------------------------------------------------ coerce_frame

SPEC = TableSpec(
    name="flights",
    columns={
        "flight": ColumnSpec("int"),
        "distance": ColumnSpec("float"),
        "origin": ColumnSpec("str"),
        "time_hour": ColumnSpec("datetime"),
    },
)


def raw_flights() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "flight": ["10", "x1", "30", "4.5"],
            "distance": ["100", "200", "300", "far"],
            "origin": ["EWR", "JFK", "LGA", "EWR"],
            "time_hour": ["2013-01-01 05:00", "2013-01-01 06:00", "2013-01-01 07:00", "2013-01-01 08:00"],
            "extra": ["a", "b", "c", "d"],
        },
        dtype=object,
    )
    return with_lineage(frame, "flights/2013-01.csv")


def test_with_lineage_numbers_data_rows_from_one():
    frame = pd.DataFrame({"a": ["x", "y", "z"]})
    out = with_lineage(frame, "t.csv")
    assert out["_row"].tolist() == [1, 2, 3]
    assert (out["_source"] == "t.csv").all()
    assert list(frame.columns) == ["a"]  # input untouched


def test_coerce_frame_passes_clean_rows_typed_with_lineage():
    passed, _ = coerce_frame(raw_flights(), SPEC, "flights/2013-01.csv")
    assert list(passed.columns) == ["flight", "distance", "origin", "time_hour", "_source", "_row"]
    assert passed["_row"].tolist() == [1, 3]
    assert passed["_source"].tolist() == ["flights/2013-01.csv"] * 2
    assert passed["flight"].tolist() == [10, 30]
    assert str(passed["flight"].dtype) == "Int64"
    assert passed["distance"].tolist() == [100.0, 300.0]
    assert str(passed["time_hour"].dtype) == "datetime64[ns, UTC]"
    assert passed.index.tolist() == [0, 1]


def test_coerce_frame_quarantines_bad_rows_with_original_values():
    _, bad = coerce_frame(raw_flights(), SPEC, "flights/2013-01.csv")
    # row 2 has a bad flight; row 4 a bad flight and a bad distance: one record per bad value
    assert bad[["row", "column", "rule", "value"]].to_dict("records") == [
        {"row": 2, "column": "flight", "rule": "dtype:int", "value": "x1"},
        {"row": 4, "column": "distance", "rule": "dtype:float", "value": "far"},
        {"row": 4, "column": "flight", "rule": "dtype:int", "value": "4.5"},
    ]
    assert (bad["table"] == "flights").all()
    assert (bad["source"] == "flights/2013-01.csv").all()
    record = json.loads(bad.loc[bad["row"] == 2, "record"].iloc[0])
    assert record == {
        "flight": "x1",
        "distance": "200",
        "origin": "JFK",
        "time_hour": "2013-01-01 06:00",
        "extra": "b",
    }


def test_coerce_frame_rows_in_equal_rows_passed_plus_rows_quarantined():
    frame = raw_flights()
    passed, bad = coerce_frame(frame, SPEC, "flights/2013-01.csv")
    assert len(passed) + bad["row"].nunique() == len(frame)
    assert set(passed["_row"]).isdisjoint(bad["row"])


def test_coerce_frame_all_clean_gives_empty_quarantine():
    frame = raw_flights().iloc[[0, 2]]
    passed, bad = coerce_frame(frame, SPEC, "s")
    assert len(passed) == 2
    assert bad.empty
    assert "record" in bad.columns


def test_coerce_frame_missing_column_names_the_source_and_column():
    frame = raw_flights().drop(columns=["distance"])
    with pytest.raises(DataError) as err:
        coerce_frame(frame, SPEC, "flights/2013-01.csv")
    message = str(err.value)
    assert message.startswith("flights/2013-01.csv:")
    assert "['distance']" in message
    assert "'flights'" in message


# ------------------------------------------------------------------------------------------------ select_partitions


def test_select_partitions_picks_files_in_the_window():
    names = [
        "2013-01.csv",
        "2013-02.csv.gz",
        "2013-03.parquet",
        "2012-12.csv",  # before the window
        "2013-04.csv",  # after the window
        "README.md",
        "2013-01.txt",
        "2013-1.csv",
        "notes-2013-02.csv",
    ]
    chosen = select_partitions(names, Window("2013-01", "2013-03"))
    assert chosen == {"2013-01": "2013-01.csv", "2013-02": "2013-02.csv.gz", "2013-03": "2013-03.parquet"}


def test_select_partitions_across_a_year_boundary():
    chosen = select_partitions(["2014-01.csv", "2013-12.csv", "2013-10.csv"], Window("2013-11", "2014-01"))
    assert chosen == {"2013-12": "2013-12.csv", "2014-01": "2014-01.csv"}


def test_select_partitions_empty_when_nothing_matches():
    assert select_partitions(["2012-01.csv"], Window("2013-01", "2013-12")) == {}


def test_select_partitions_two_files_for_one_month_is_an_error():
    with pytest.raises(DataError, match=r"two files for month 2013-02: 2013-02\.csv and 2013-02\.parquet"):
        select_partitions(["2013-01.csv", "2013-02.parquet", "2013-02.csv"], Window("2013-01", "2013-12"))


@pytest.mark.parametrize(
    ("table", "what"),
    [("flights", "no such directory for partitioned table 'flights'"), ("planes", "no file for table 'planes'")],
)
def test_a_missing_raw_folder_says_where_it_comes_from(table, what, tmp_path):
    spec = load_schema(Path(__file__).resolve().parents[2] / "config" / "schema.yaml").tables[table]
    with pytest.raises(DataError) as err:
        plan_files(str(tmp_path / "nope" / table), spec, Window("2013-01", "2013-01"), RetryParams(attempts=1))
    message = str(err.value)
    assert f"nope/{table}: {what}" in message
    assert "data.raw_dir in params.yaml" in message and "dvc repro raw" in message


def test_select_partitions_duplicate_outside_the_window_is_ignored():
    chosen = select_partitions(["2012-05.csv", "2012-05.parquet", "2013-01.csv"], Window("2013-01", "2013-01"))
    assert chosen == {"2013-01": "2013-01.csv"}


# ------------------------------------------------------------------------------------------------ the Arrow path

ARROW_TEXT = pd.StringDtype("pyarrow", na_value=float("nan"))  # what the CSV reader gives
HOSTILE = [
    "1", "-3", "007", "4.0", "1.5", "-0.25", "123456789012345", "12345678901.25", "0.1", "2.675", "1013.2",
    "1234567890123456", "9007199254740993", "99999999999999999999", "1e3", "1E-2", "+1", ".5", "1.", " 1", "1 ",
    "nan", "inf", "-inf", "abc", "1,5", "0x10", "-0", "-0.0", "-.0", "-0.", "0", "0.0", "-", "", None, "-.5", "1.",
    "-1.", ".", "..", "1-2", "--1", "1.2.3", "-12.", "00012.50",
]  # fmt: skip


@pytest.mark.parametrize("dtype", ["int", "float"])
@pytest.mark.parametrize(
    "values",
    [
        *(["12", value, "3.5", None] for value in HOSTILE),
        *(["12", value, "3", None] for value in HOSTILE),
        HOSTILE,
        ["1", "-3", "42", None, "7"],
        ["1.5", "-0.25", "1013.2", "39.02", None, "-12"],
        ["2013", "2013", "2013"],
        ["0.1", "0.2", "0.30000000000001", "123.456789"],
        ["-0", "1"],
        [None, None],
    ],
)
def test_coerce_column_on_arrow_text_matches_pandas(values, dtype):
    """Arrow-backed text (the fast path for plain decimals) gives what pandas gives for the same values."""
    arrow, arrow_bad = coerce_column(pd.Series(values, dtype=ARROW_TEXT), ColumnSpec(dtype))
    slow, slow_bad = coerce_column(raw(values), ColumnSpec(dtype))
    pd.testing.assert_series_equal(arrow, slow, check_exact=True)
    pd.testing.assert_series_equal(arrow_bad, slow_bad, check_exact=True)
    if dtype == "float":  # the sign of zero too (assert_series_equal treats -0.0 == 0.0)
        assert [str(v) for v in arrow.tolist()] == [str(v) for v in slow.tolist()]


def test_plain_numbers_takes_plain_decimals_only():
    assert plain_numbers(pd.Series(["1", "-2.5", None, "1013.2", ".5", "7."], dtype=ARROW_TEXT)) is not None
    for odd in ["1e3", "+1", " 1", "nan", "inf", "-0", "-0.0", "1234567890123456", "abc", "1-2"]:
        assert plain_numbers(pd.Series(["1", odd], dtype=ARROW_TEXT)) is None, odd
    assert plain_numbers(raw(["1", "2"])) is None  # object text: pandas reads it


# ------------------------------------------------------------------------------------------------ typed in Arrow

IP = IngestParams(window=Window("2013-01", "2013-01"), sources={}, max_invalid_share=1.0)
TYPED = TableSpec(
    name="flights",
    columns={
        "flight": ColumnSpec("int"),
        "dep_time": ColumnSpec("int", nullable=True),
        "distance": ColumnSpec("float"),
        "dep_delay": ColumnSpec("float", nullable=True),
        "origin": ColumnSpec("str"),
        "tailnum": ColumnSpec("str", nullable=True),
        "time_hour": ColumnSpec("datetime"),
    },
)
HEADER = "flight,dep_time,distance,dep_delay,origin,tailnum,time_hour"
ROWS = [
    "1545,517,1400,2,EWR,N14228,2013-01-01T10:00:00Z",
    "1714,,1416.5,-4,LGA,,2013-01-01T10:00:00Z",
    "461,554,762,NA,JFK,Zürich ✈,2013-01-01T11:00:00Z",
]
CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


def both_ways(text: str | bytes, spec: TableSpec, tmp_path: Path, source: str = "flights/2013-01.csv"):
    """The bytes the Arrow path writes (None where it steps aside) and those the frame path writes (or its
    DataError's message), for one file's contents."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    read = read_csv_text(data, source)
    assert isinstance(read, pa.Table), "not a plain file: the Arrow path never sees it"
    table = typed_table(read, spec, source, IP)
    if table is not None:
        write_table_atomic(table, str(tmp_path / "arrow.parquet"))
    try:
        typed, _ = ingest_chunk(Chunk(source, text_frame(read)), spec, IP)
    except DataError as exc:
        assert table is None, "the Arrow path wrote what the frame path refuses"
        return None, str(exc)
    write_parquet_atomic(typed, str(tmp_path / "frame.parquet"))
    slow = (tmp_path / "frame.parquet").read_bytes()
    return (None if table is None else (tmp_path / "arrow.parquet").read_bytes()), slow


def csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def test_typed_table_writes_the_bytes_of_the_frame_path(tmp_path):
    fast, slow = both_ways(csv(*ROWS), TYPED, tmp_path)
    assert fast is not None  # guards the speed: a plain, clean file stays in Arrow
    assert fast == slow


@pytest.mark.parametrize("column", ["flight", "dep_time", "distance", "dep_delay"])
@pytest.mark.parametrize("value", HOSTILE)
def test_typed_table_on_hostile_numbers(column, value, tmp_path):
    """Each hostile spelling in a number column: the same bytes both ways, or the Arrow path steps aside (for a
    value that does not type, which the frame path quarantines)."""
    frame = pd.DataFrame([row.split(",") for row in ROWS], columns=HEADER.split(","))
    frame.loc[1, column] = "" if value is None else value
    if "," in frame.loc[1, column]:
        pytest.skip("a comma is a field separator")
    fast, slow = both_ways(csv(*(",".join(row) for row in frame.itertuples(index=False))), TYPED, tmp_path)
    assert fast is None or fast == slow


@pytest.mark.parametrize(
    ("case", "rows", "stays_in_arrow"),
    [
        ("int written with a point", ["1545.0,517,1400,2,EWR,N1,2013-01-01T10:00:00Z"], True),
        ("int with a fraction", ["1545.5,517,1400,2,EWR,N1,2013-01-01T10:00:00Z"], False),
        ("exponent", ["1e3,517,1.5e3,2,EWR,N1,2013-01-01T10:00:00Z"], True),
        ("negative zeros", ["-0,-0,-0.0,-0,EWR,N1,2013-01-01T10:00:00Z", *ROWS], True),
        ("every value missing", ["1,,1,,EWR,,2013-01-01T10:00:00Z", "2,,2,,JFK,,2013-01-01T11:00:00Z"], True),
        ("other date spellings", ["1,1,1,1,EWR,N1,2013-01-01 05:00", "2,2,2,2,EWR,N2,2013-01-01T06:00:00+01:00"], True),
        ("impossible date", ["1,1,1,1,EWR,N1,2013-02-30T05:00:00Z", *ROWS], False),
        ("missing date", ["1,1,1,1,EWR,N1,", *ROWS], True),
        ("a time cut off", [*ROWS, "1,1,1,1,EWR,N1,2013-01-01T13:0"], False),
        ("a date without a time", ["1,1,1,1,EWR,N1,2013-02", *ROWS], False),
        ("not a number", ["x1,517,1400,2,EWR,N1,2013-01-01T10:00:00Z", *ROWS], False),
        ("too big", ["99999999999999999999,1,1,1,EWR,N1,2013-01-01T10:00:00Z", *ROWS], False),
        ("repeated header", [ROWS[0], HEADER, ROWS[1]], False),
        ("a value holding the first name", ["1,1,1,1,EWR,flight,2013-01-01T10:00:00Z", "flight9,1,1,1,EWR,N,"], False),
        ("spaces", [" 1545,517 , 1400,2 ,EWR , N1,2013-01-01T10:00:00Z"], True),
    ],
)
def test_typed_table_on_awkward_files(case, rows, stays_in_arrow, tmp_path):
    fast, slow = both_ways(csv(*rows), TYPED, tmp_path)
    assert (fast is not None) == stays_in_arrow, case
    assert fast is None or fast == slow, case


def test_a_row_with_too_many_fields_is_quarantined_and_the_rest_pass():
    text = csv(ROWS[0], f"{ROWS[1]},x,y", ROWS[2], f"{HEADER},extra", f"{ROWS[0]},")
    read = read_csv_text(text.encode(), "flights/2013-01.csv")
    typed, bad = ingest_chunk(Chunk("flights/2013-01.csv", read), TYPED, IP)
    assert typed["_row"].tolist() == [1, 3]
    assert bad[["row", "column", "rule", "value"]].to_dict("records") == [
        {"row": 2, "column": "*", "rule": "field_count:7", "value": "x,y"},
        {"row": 4, "column": "*", "rule": "field_count:7", "value": "extra"},
        {"row": 5, "column": "*", "rule": "field_count:7", "value": ""},
    ]
    assert json.loads(bad["record"].iloc[0]) == {
        k: v or None for k, v in zip(HEADER.split(","), ROWS[1].split(","), strict=True)
    }


def test_typed_table_drops_extra_columns_with_one_warning(tmp_path, caplog):
    text = csv(*(f"{row},x" for row in ROWS), header=f"{HEADER},extra")
    with caplog.at_level("WARNING"):
        fast, slow = both_ways(text, TYPED, tmp_path)
    assert fast is not None and fast == slow
    assert sum("not in the schema, dropped: ['extra']" in r.message for r in caplog.records) == 2  # once each way


def test_typed_table_leaves_a_missing_column_to_its_message(tmp_path):
    text = csv(*(row.rsplit(",", 1)[0] for row in ROWS), header=HEADER.rsplit(",", 1)[0])
    with pytest.raises(DataError, match="missing column"):
        both_ways(text, TYPED, tmp_path)


def test_typed_table_of_a_column_of_zero_rows_is_left_to_pandas():
    table = pa.table({name: pa.array([], pa.string()) for name in HEADER.split(",")})
    assert typed_table(table, TYPED, "flights/2013-01.csv", IP) is None


def test_repeated_text_is_large_text():
    assert repeated_text("flights/2013-01.csv", 3).to_pylist() == ["flights/2013-01.csv"] * 3
    assert repeated_text("é", 2).type == pa.large_string()
    assert repeated_text("x", 0).to_pylist() == []


@pytest.mark.parametrize("path", sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.csv")))
def test_typed_table_on_the_corpus(path, tmp_path):
    """Every plain file of the corpus (broken extracts and the base tables), typed with the real schema: the
    same bytes both ways, or the Arrow path steps aside."""
    schema = load_schema(Path(__file__).resolve().parents[2] / "config" / "schema.yaml")
    name = Path(path).parent.name if Path(path).parent.name in ("flights", "weather") else Path(path).stem
    spec = schema.tables.get(name, schema.tables["flights"])
    try:
        read = read_csv_text((CORPUS / path).read_bytes(), path)
    except DataError:
        pytest.skip("refused before typing")
    if not isinstance(read, pa.Table):
        pytest.skip("not a plain file")
    try:
        fast, slow = both_ways((CORPUS / path).read_bytes(), spec, tmp_path, path)
    except DataError:  # a column missing, renamed or of another table: both ways refuse it before typing
        assert path.startswith("cases/")
        return
    assert fast is None or fast == slow
    if path.startswith("base/"):
        assert fast is not None


def test_typed_table_keeps_the_parsers_chunks_of_a_large_text_column(tmp_path):
    """A file of several parser blocks whose text column has too many distinct values for one dictionary page:
    where the writer gives up the dictionary depends on the column's chunks, so the Arrow path must keep the
    parser's chunks, as the frame's text column does (30x data found this; 10x did not)."""
    rows = [f"{i % 9000 + 1},517,1400,2,EWR,N{i:099d},2013-01-01T10:00:00Z" for i in range(60_000)]
    read = read_csv_text(csv(*rows).encode(), "flights/2013-01.csv")
    assert isinstance(read, pa.Table) and read.column("tailnum").num_chunks > 1
    fast, slow = both_ways(csv(*rows), TYPED, tmp_path)
    assert fast is not None and fast == slow


# ------------------------------------------------------------------------------------------------ distinct values

NUMBERS = TableSpec(
    name="flights",
    columns={"flight": ColumnSpec("int", nullable=True), "wind": ColumnSpec("float", nullable=True)},
)
SPELLINGS = [v for v in HOSTILE if v is None or "," not in v]


def test_numbers_parsed_once_per_distinct_text_match_the_frame_path(tmp_path):
    """Columns of spellings drawn with repeats (and missing values) at random: parsing each distinct text once
    (`typed_distinct`) writes the bytes of parsing every row, or steps aside where the frame path quarantines."""
    stayed = 0
    for seed in range(80):
        rng = random.Random(seed)
        ints = [*rng.sample(SPELLINGS, rng.randint(1, 3)), "12", "-7", "1234567890123456"]
        floats = [*rng.sample(SPELLINGS, rng.randint(1, 3)), "3.4523399999999995", "1013.2", "1e3"]
        rows = [f"{rng.choice(ints) or ''},{rng.choice(floats) or ''}" for _ in range(rng.randint(1, 40))]
        fast, slow = both_ways(csv(*rows, header="flight,wind"), NUMBERS, tmp_path)
        assert fast is None or fast == slow, rows
        stayed += fast is not None
    assert stayed >= 10  # the draws reach the Arrow path, not only the frame path


def test_long_decimals_stay_in_arrow(tmp_path):
    """Wind speeds as the source writes them (18 characters, past what Arrow and pandas surely parse alike):
    pandas parses each distinct text once and the file stays on the Arrow path, with the frame path's bytes."""
    rows = [f"{i % 7},{['4.60312', '3.4523399999999995', 'NA', '10.357019999999999'][i % 4]}" for i in range(50)]
    fast, slow = both_ways(csv(*rows, header="flight,wind"), NUMBERS, tmp_path)
    assert fast is not None and fast == slow


TIMES = TableSpec(name="flights", columns={"flight": ColumnSpec("int"), "time_hour": ColumnSpec("datetime")})
AWKWARD_TIMES = [
    "2013-02-30T05:00:00Z", "2013-01-01T24:00:00Z", "2013-01-01T23:59:60Z", "2013-13-01T00:00:00Z",
    "0000-01-01T00:00:00Z", "2263-01-01T00:00:00Z", "1677-09-21T00:12:43Z", "1600-01-01T00:00:00Z",
    "2013-01-01T10:00:00z", "2013-01-01t10:00:00Z", "2013-01-01 10:00:00Z", "2013-1-01T10:00:00Z",
    "2013-01-01T10:00:00+00:00", "2013-01-01T10:00Z", "2013-01-01", "+013-01-01T10:00:00Z", "2013-01-0\uff11T10:00:00Z",
    "2013-01-01T10:00:00.5Z", "2013/01/01T10:00:00Z", "2013-02-29T00:00:00Z", "2016-02-29T00:00:00Z", "",
]  # fmt: skip


@pytest.mark.parametrize("value", AWKWARD_TIMES)
def test_utc_times_on_awkward_values(value, tmp_path):
    """An awkward time among plain UTC ones: the same bytes both ways, or the Arrow path steps aside."""
    rows = ["1,2013-01-01T10:00:00Z", f"2,{value}", "3,2013-12-31T23:00:00Z"]
    fast, slow = both_ways(csv(*rows, header="flight,time_hour"), TIMES, tmp_path)
    assert fast is None or fast == slow


def test_utc_seconds_reads_only_the_one_layout():
    plain = pa.array(["2013-01-01T10:00:00Z", "2016-02-29T23:59:59Z"])
    assert utc_seconds(plain).to_pylist() == pd.to_datetime(plain.to_pylist(), utc=True).tolist()
    assert utc_seconds(plain).type == pa.timestamp("ns", tz="UTC")
    for value in [v for v in AWKWARD_TIMES if v not in ("2016-02-29T00:00:00Z", "1677-09-21T00:12:43Z")]:
        assert utc_seconds(pa.array(["2013-01-01T10:00:00Z", value])) is None, value
    assert utc_seconds(pa.array(["2013-01-01T10:00:00Z", None])) is None
    assert utc_seconds(pa.array([], pa.string())) is None


def test_coerce_datetime_outside_nanoseconds_is_a_bad_value_not_a_crash():
    values = raw(["2013-01-01T10:00:00Z", "0000-01-01T00:00:00Z", "2263-01-01T00:00:00Z", "1677-09-21T00:12:43Z"])
    typed, bad = coerce_column(values, ColumnSpec("datetime"))
    assert bad.tolist() == [False, True, True, True]
    assert typed.dtype == "datetime64[ns, UTC]" and typed.isna().tolist() == [False, True, True, True]
