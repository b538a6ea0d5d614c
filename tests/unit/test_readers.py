"""flightdelay.data.readers: the fast (pyarrow) CSV parser gives what pandas gives, or steps aside.

Every case is read twice: by `read_csv_bytes` (pyarrow for a plain file, pandas otherwise) and by pandas alone,
as the reader did before it had a fast path. The frames, or the errors, must be the same.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path

import pandas as pd
import pytest

from flightdelay.core.errors import DataError
from flightdelay.data.readers import (
    NA_STRINGS,
    check_shape,
    decode,
    decompress,
    read_csv_bytes,
    read_plain_csv,
    repeated_headers,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
HEADER = "year,month,carrier,dep_delay"


def pandas_only(data: bytes, source: str) -> pd.DataFrame:
    """The reader without its fast path."""
    text = decode(decompress(data, source), source)
    check_shape(text, source)
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, skip_blank_lines=True)
    except pd.errors.ParserError as exc:
        raise DataError(f"{source}: cannot be parsed as CSV: {exc}") from None


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
