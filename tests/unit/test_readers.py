"""flightdelay.data.readers: the fast (pyarrow) CSV parser gives what pandas gives, or steps aside.

Every case is read twice: by `read_csv_bytes` (pyarrow for a plain file, pandas otherwise) and by pandas alone,
as the reader did before it had a fast path. The frames, or the errors, must be the same.
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import pandas as pd
import pytest

from flightdelay.core.errors import DataError
from flightdelay.data.readers import (
    LINE_BREAK,
    NA_STRINGS,
    NON_SPACE,
    OVERFLOW,
    check_header,
    check_shape,
    decode,
    decompress,
    read_csv_bytes,
    read_csv_frame,
    read_plain_csv,
    repeated_headers,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
HEADER = "year,month,carrier,dep_delay"


def check_shape_by_lines(text: str, source: str) -> None:
    """check_shape as it was, splitting the text into lines: the reference the regex version must match."""
    if not text.strip():
        raise DataError(f"{source}: empty file; the extract holds no header and no rows")
    lines = text.splitlines()
    header = lines[0]
    if "," not in header:
        for delimiter, name in {";": "semicolon", "\t": "tab", "|": "pipe"}.items():
            if delimiter in header:
                raise DataError(
                    f"{source}: the header is {name}-delimited ({header[:60]!r}...); "
                    "expected comma-separated values: re-export with ',' as the delimiter"
                )
    if not [line for line in lines[1:] if line.strip()]:
        raise DataError(f"{source}: header only, no data rows")
    if not text.endswith(("\n", "\r")):
        fields = len(next(csv.reader([header])))
        last = next(csv.reader([lines[-1]]), [])
        if len(last) < fields:
            raise DataError(
                f"{source}: the file ends mid-row at line {len(lines)} ({len(last)} of {fields} fields, "
                "no final newline): the extract was cut off; fetch it again"
            )


def pandas_only(data: bytes, source: str) -> pd.DataFrame:
    """The reader without its fast path."""
    text = decode(decompress(data, source), source)
    check_shape_by_lines(text, source)
    check_header(text.splitlines()[0], source)
    return read_csv_frame(text, source)


def outcome(read, data: bytes) -> pd.DataFrame | str:
    try:
        return read(data, "flights/2013-01.csv")
    except DataError as exc:
        return f"DataError: {exc}"


def assert_same(data: bytes) -> None:
    fast, slow = outcome(read_csv_bytes, data), outcome(pandas_only, data)
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
        return
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    assert list(fast.dtypes) == list(slow.dtypes)


TEXTS = {
    "plain": f"{HEADER}\n2013,1,UA,-5\n2013,1,AA,12.5\n",
    "crlf": f"{HEADER}\r\n2013,1,UA,-5\r\n2013,1,AA,3\r\n",
    "cr": f"{HEADER}\r2013,1,UA,-5\r2013,1,AA,3\r",
    "no final newline": f"{HEADER}\n2013,1,UA,-5\n2013,1,AA,3",
    "blank lines": f"{HEADER}\n\n2013,1,UA,-5\n\n\n2013,1,AA,3\n\n",
    "whitespace-only line": f"{HEADER}\n2013,1,UA,-5\n   \n2013,1,AA,3\n",
    "every missing spelling": HEADER + "\n" + "".join(f"2013,{na},UA,{na}\n" for na in NA_STRINGS),
    "missing look-alikes": f"{HEADER}\n2013, NA,na,NA \n2013,Null,none,N.A.\n",
    "empty fields": f"{HEADER}\n2013,,,\n,,,\n",
    "spaces kept": f"{HEADER}\n 2013 ,1 , UA,-5 \n",
    "short row": f"{HEADER}\n2013,1,UA\n2013,1,AA,3\n",
    "long row": f"{HEADER}\n2013,1,UA,-5,extra\n2013,1,AA,3\n",
    "long rows": f'{HEADER}\n2013,1,UA,-5\n\n2013,1,"A,A",3,x,"y,z"\n2013,1,DL,-1,\n2013,1\n',
    "trailing comma": f"{HEADER},\n2013,1,UA,-5,\n",
    "quoted values": f'{HEADER}\n2013,1,"UA","-5"\n2013,1,"A""A",""\n2013,1,ab"c,3\n',
    "quoted newline": f'{HEADER}\n2013,1,"U\nA",-5\n',
    "quoted header": '"year","month",carrier,dep_delay\n2013,1,UA,-5\n',
    "duplicate header": "year,year,carrier,dep_delay\n2013,2014,UA,-5\n",
    "empty header name": "year,,carrier,dep_delay\n2013,1,UA,-5\n",
    "one column": "year\n2013\n  \n2014\n",
    "leading blank line": f"\n{HEADER}\n2013,1,UA,-5\n",
    "repeated header": f"{HEADER}\n2013,1,UA,-5\n{HEADER}\n2013,1,AA,3\n",
    "unicode": f"{HEADER}\n2013,1,Zürich ✈,-5\n",
    "header only": f"{HEADER}\n",
    "semicolons": "year;month;carrier\n2013;1;UA\n",
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_fast_reader_matches_pandas(name):
    assert_same(TEXTS[name].encode("utf-8"))


@pytest.mark.parametrize("name", ["plain", "crlf", "repeated header"])
def test_fast_reader_matches_pandas_after_a_byte_order_mark(name):
    assert_same(codecs.BOM_UTF8 + TEXTS[name].encode("utf-8"))


@pytest.mark.parametrize("path", sorted(p.name for p in (CORPUS / "cases").glob("*.csv*")))
def test_fast_reader_matches_pandas_on_the_corpus(path):
    assert_same((CORPUS / "cases" / path).read_bytes())


@pytest.mark.parametrize("path", ["flights/2013-01.csv", "weather/2013-01.csv", "planes.csv", "airports.csv"])
def test_fast_reader_matches_pandas_on_the_base_tables(path):
    assert_same((CORPUS / "base" / path).read_bytes())


FAST = ["plain", "crlf", "cr", "no final newline", "blank lines", "every missing spelling", "missing look-alikes",
        "empty fields", "spaces kept", "repeated header", "unicode"]  # fmt: skip


@pytest.mark.parametrize("name", FAST)
def test_the_fast_path_reads_plain_files(name):
    """Guards the speed: a plain file must not quietly fall back to pandas (the cases above compare the result)."""
    text = TEXTS[name]
    assert read_plain_csv(text.encode(), text.splitlines()[0]) is not None


def test_the_fast_path_reads_the_bundled_flights():
    path = CORPUS / "base" / "flights" / "2013-01.csv"
    frame = read_plain_csv(path.read_bytes().removeprefix(codecs.BOM_UTF8), path.read_text().splitlines()[0])
    assert frame is not None and len(frame) > 0


@pytest.mark.parametrize(
    "name",
    ["short row", "long row", "trailing comma", "quoted values", "quoted newline", "quoted header", "duplicate header",
     "empty header name", "one column", "whitespace-only line", "leading blank line"],
)  # fmt: skip
def test_the_fast_path_steps_aside_for_what_pandas_reads_differently(name):
    text = TEXTS[name]
    assert read_plain_csv(text.encode(), text.splitlines()[0]) is None


def test_na_strings_are_pandas_defaults():
    from pandas._libs.parsers import STR_NA_VALUES

    assert set(NA_STRINGS) == set(STR_NA_VALUES)


# ------------------------------------------------------------------------------------------------ repeated_headers


def test_repeated_headers_flags_only_whole_header_rows():
    frame = pd.DataFrame(
        {
            "year": ["2013", " year ", "year", "year", None, "year"],
            "month": ["1", "month", "1", None, "month", "month "],
        }
    )
    assert repeated_headers(frame).tolist() == [False, True, False, False, False, True]
    assert repeated_headers(frame.astype(pd.StringDtype("pyarrow"))).tolist() == repeated_headers(frame).tolist()


def test_repeated_headers_of_an_empty_frame():
    assert repeated_headers(pd.DataFrame({"year": pd.Series([], dtype=object)})).empty


# ------------------------------------------------------------------------------------------------ check_shape

SHAPES = [
    "", " ", "\n\n", " \t\n", "a,b", "a,b\n", "a,b\n \n\t\n", "a,b\n1,2", "a,b\n1", "a,b\r\n1", "a;b\n1;2\n",
    "a\tb\n1\t2\n", "a|b\n1|2\n", "\na,b\n1,2\n", "a,b\v1,2\n", "a,b\x1c1,2", "a,b\u2028\u2029\n", "a,b\x85x\n",
    "a,b\r\n\r\n", "a,b\r", "a,b\n1,2\v", "a,b\n1,2\x0c3", "a,b\n\xa0\n", "a,b\n\u3000x", "a,b\x1f1,2\n",
]  # fmt: skip


def shape_outcome(check, text: str) -> str:
    try:
        check(text, "s.csv")
    except DataError as exc:
        return str(exc)
    return "ok"


@pytest.mark.parametrize("text", SHAPES)
def test_check_shape_matches_the_line_by_line_version(text):
    assert shape_outcome(check_shape, text) == shape_outcome(check_shape_by_lines, text)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_check_shape_matches_the_line_by_line_version_on_the_texts(name):
    text = TEXTS[name]
    assert shape_outcome(check_shape, text) == shape_outcome(check_shape_by_lines, text)
    assert shape_outcome(check_shape, text.rstrip("\n")) == shape_outcome(check_shape_by_lines, text.rstrip("\n"))


def test_the_regexes_agree_with_str_methods_on_every_character():
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    assert [c for c in chars if bool(NON_SPACE.match(c)) == c.isspace()] == []
    assert [c for c in chars if bool(LINE_BREAK.fullmatch(c)) != (len(f"x{c}y".splitlines()) == 2)] == []


# ------------------------------------------------------------------------------------------------ check_header


@pytest.mark.parametrize("header", ["year,dep_time,dep_time", 'dep_time,year,"dep_time"', "a,b,c,b,a"])
def test_a_header_naming_a_column_twice_is_refused(header):
    with pytest.raises(DataError) as err:
        read_csv_bytes(f"{header}\n{','.join('1' * len(header.split(',')))}\n".encode(), "flights/2013-02.csv")
    message = str(err.value)
    assert message.startswith("flights/2013-02.csv: the header names column")
    assert "twice" in message and "fix the extract so each column is named once" in message
    assert "'dep_time'" in message or "'b'" in message


def test_check_header_names_the_column_and_both_positions():
    with pytest.raises(DataError, match=r"column 'dep_time' twice \(columns 2 and 4\)"):
        check_header("year,dep_time,month,dep_time", "s.csv")
    check_header("year,,,month", "s.csv")  # empty names are the schema check's


# ------------------------------------------------------------------------------------------------ long rows


def test_a_long_row_is_kept_apart_with_its_surplus_fields():
    """Rows with more fields than the header keep their place (so their row number) and their first fields; the
    surplus goes to OVERFLOW for ingest to quarantine. Blank lines are not rows; an empty surplus field counts."""
    frame = read_csv_bytes(TEXTS["long rows"].encode(), "flights/2013-02.csv")
    assert list(frame.columns) == [*HEADER.split(","), OVERFLOW]
    assert frame[OVERFLOW].tolist()[1:3] == ["x,y,z", ""]
    assert frame[OVERFLOW].isna().tolist() == [True, False, False, True]
    assert frame["carrier"].tolist()[:3] == ["UA", "A,A", "DL"]
    assert frame["dep_delay"].tolist()[:3] == ["-5", "3", "-1"]
    assert frame.index.tolist() == [0, 1, 2, 3]


def test_a_long_first_row_does_not_become_the_index():
    """pandas reads a first row one field longer than the header as 'index + values', shifting every column."""
    frame = read_csv_bytes(TEXTS["long row"].encode(), "flights/2013-02.csv")
    assert frame["year"].tolist() == ["2013", "2013"] and frame["dep_delay"].tolist() == ["-5", "3"]
    assert frame[OVERFLOW].tolist()[0] == "extra" and frame.index.tolist() == [0, 1]


def test_a_file_without_long_rows_has_no_overflow_column():
    assert OVERFLOW not in read_csv_bytes(TEXTS["quoted values"].encode(), "s.csv")


def test_a_long_row_the_parsers_do_not_agree_on_is_refused_with_its_row_and_counts():
    with pytest.raises(DataError) as err:
        read_csv_bytes(b'a,b\n1,2\n1,2,x\n""\n3,4\n', "flights/2013-02.csv")
    message = str(err.value)
    assert message.startswith("flights/2013-02.csv: data row 2 (1 = the first row after the header) has 3 fields")
    assert "the header 2" in message and "Quote such values or remove the surplus fields" in message


def test_another_parse_error_says_what_to_check():
    with pytest.raises(DataError, match=r"cannot be parsed as CSV: .*EOF inside string.*check the extract's quoting"):
        read_csv_bytes(f'{HEADER}\n2013,1,"UA,-5\n'.encode(), "s.csv")
