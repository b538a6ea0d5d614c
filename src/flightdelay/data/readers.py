"""Turning the bytes of one raw file into a DataFrame, or a DataError that says what is wrong with it.

Read correctly: a UTF-8 byte-order mark, CRLF line ends, gzip-compressed CSV (by content, whatever the name).
Rejected with a message: an empty file, a header with no rows, a header that names a column twice, a file cut
off mid-row, another delimiter, bytes that are not UTF-8, and files that are not CSV at all. A row with more
fields than the header is kept apart, its surplus fields in OVERFLOW, for ingest to quarantine.

Two parsers, one result. A plain file (no quotes, a simple header, every row as wide as the header) is parsed
by pyarrow's CSV reader, several times faster than pandas' and without a Python string per value; anything else
(quoting, ragged rows, blank-but-not-empty lines, odd headers) goes to `pandas.read_csv`, whose behaviour and
messages the rules above describe. Both give the same frame: every value as text (pandas' `str` dtype), pandas'
missing-value strings as missing (tests/unit/test_readers.py parses each case both ways).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import warnings
import zlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv

from flightdelay.core.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
BINARY_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"PK\x03\x04": "a zip archive",
    b"%PDF": "a PDF document",
    PARQUET_MAGIC: "a Parquet file (name it .parquet)",
    b"\x7fELF": "an executable",
}
OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
# What `pandas.read_csv` reads as missing by default (its na_values): the fast parser must agree.
NA_STRINGS = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip
# The dtype `pd.read_csv(dtype=str)` gives every column (pandas 3: Arrow-backed text, NaN for missing).
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
FIRST_LINE = re.compile(r"[^\r\n]*")  # the header as pandas and pyarrow split lines
LINE_BREAK = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")  # where str.splitlines splits
NON_SPACE = re.compile(r"\S")  # a character str.strip keeps
# The column that holds a long row's surplus fields (`read_long_rows`); only in the frame of a file that has one.
OVERFLOW = "_overflow"


def decompress(data: bytes, source: str) -> bytes:
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{source}: gzip data is corrupt or cut off ({exc}); re-export the file") from None


def decode(data: bytes, source: str) -> str:
    """UTF-8 text without a byte-order mark; a clear error naming the line of the first bad byte."""
    for magic, what in BINARY_MAGIC.items():
        if data.startswith(magic):
            raise DataError(f"{source}: not a CSV file: it is {what}")
    if b"\x00" in data[:65536]:
        raise DataError(f"{source}: not a CSV file: it holds binary data (NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{source}: not UTF-8: byte 0x{data[exc.start]:02x} at line {line}; re-export the file as UTF-8"
        ) from None


def check_shape(text: str, source: str) -> None:
    """Reject empty, header-only, wrongly delimited and truncated files before parsing.

    Lines are what `str.splitlines` makes of the text, but found with two regex searches (LINE_BREAK,
    NON_SPACE), not by splitting a file into a string per line: only a file without a final newline, which may
    have been cut off, is split to read its last line.
    """
    if NON_SPACE.search(text) is None:
        raise DataError(f"{source}: empty file; the extract holds no header and no rows")
    first_break = LINE_BREAK.search(text)
    header = text[: first_break.start()] if first_break else text
    if "," not in header:
        for delimiter, name in OTHER_DELIMITERS.items():
            if delimiter in header:
                raise DataError(
                    f"{source}: the header is {name}-delimited ({header[:60]!r}...); "
                    "expected comma-separated values: re-export with ',' as the delimiter"
                )
    if first_break is None or NON_SPACE.search(text, first_break.end()) is None:
        raise DataError(f"{source}: header only, no data rows")
    if not text.endswith(("\n", "\r")):
        lines = text.splitlines()
        fields = len(next(csv.reader([header])))
        last = next(csv.reader([lines[-1]]), [])
        if len(last) < fields:
            raise DataError(
                f"{source}: the file ends mid-row at line {len(lines)} ({len(last)} of {fields} fields, "
                "no final newline): the extract was cut off; fetch it again"
            )


def check_header(header: str, source: str) -> None:
    """Reject a header that names a column twice: pandas would read the second as `name.1` and the stage keep
    the first, silently. (Empty names are left to the schema check, which reports them as unexpected columns.)"""
    names = next(csv.reader([header]), [])
    seen: dict[str, int] = {}
    for position, name in enumerate(names, 1):
        if name and name in seen:
            raise DataError(
                f"{source}: the header names column {name!r} twice (columns {seen[name]} and {position}); "
                "which one holds the data is unclear: fix the extract so each column is named once"
            )
        seen.setdefault(name, position)


def read_plain_table(body: bytes, header: str) -> pa.Table | None:
    """The fast parser, for a plain file: `body` is UTF-8 without a byte-order mark, `header` its first line.
    Every value as Arrow text (`text_frame` makes the frame pandas gives of it).

    Returns None (use pandas) for anything the two parsers might read differently: quotes anywhere (pandas
    and Arrow treat a quote inside a field differently), NUL bytes, a header that is empty, has one column or
    repeats or leaves out a name (pandas renames those), and rows of another width (pyarrow stops; pandas pads
    short rows, skips whitespace-only lines and explains long ones).
    """
    names = header.split(",")
    if b'"' in body or b"\x00" in body or len(names) < 2 or len(set(names)) < len(names) or "" in names:
        return None
    try:
        return pv.read_csv(
            pa.py_buffer(body),
            read_options=pv.ReadOptions(skip_rows=1, column_names=names),
            parse_options=pv.ParseOptions(ignore_empty_lines=True),
            convert_options=pv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=list(NA_STRINGS),
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid:
        return None


def text_frame(table: pa.Table) -> pd.DataFrame:
    """The frame `pandas.read_csv(dtype=str)` gives of a file `read_plain_table` parsed."""
    return table.to_pandas(types_mapper={pa.string(): TEXT}.get)


def read_plain_csv(body: bytes, header: str) -> pd.DataFrame | None:
    """`read_plain_table` as a frame of text; None (use pandas) where it returns None."""
    table = read_plain_table(body, header)
    return None if table is None else text_frame(table)


def read_csv_text(data: bytes, source: str) -> pa.Table | pd.DataFrame:
    """`read_csv_bytes`, except that a plain file comes back as `read_plain_table`'s Arrow text, so a caller that
    works in Arrow need not make a frame of it."""
    body = decompress(data, source)
    text = decode(body, source)
    check_shape(text, source)
    first = FIRST_LINE.match(text)
    check_header(first.group() if first else "", source)
    plain = read_plain_table(body.removeprefix(codecs.BOM_UTF8), first.group() if first else "")
    if plain is not None:
        return plain
    return read_csv_frame(text, source)


def read_csv_frame(text: str, source: str) -> pd.DataFrame:
    """pandas' parse of a file the fast parser steps aside for. A row with more fields than the header is kept:
    see `read_long_rows`. (pandas alone stops the whole file at the first such row, or, when it is the first
    row, silently reads the first column as the frame's index.)"""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(io.StringIO(text), dtype=str, skip_blank_lines=True, index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        return read_long_rows(text, source, str(exc))


def read_long_rows(text: str, source: str, problem: str) -> pd.DataFrame:
    """The frame of a file with rows longer than its header: each row's first fields under the header's names,
    and the surplus fields, joined by commas, in OVERFLOW (missing for rows of the right width), so that ingest
    quarantines those rows with their row numbers and passes the rest.

    pandas reads the values (with enough columns for the longest row); the csv module counts each row's fields,
    which pandas cannot tell apart from empty ones. Where the two do not agree on the rows (odd quoting or blank
    lines), or no row is long (another parse error), the file is refused with a message instead.
    """
    try:
        records = [row for row in csv.reader(io.StringIO(text)) if row and (len(row) > 1 or row[0].strip())]
    except csv.Error:
        records = []
    width = len(records[0]) if records else 0
    counts = [len(row) for row in records[1:]]
    long = [number for number, count in enumerate(counts, 1) if count > width]
    if not long:
        raise DataError(f"{source}: cannot be parsed as CSV: {problem}; check the extract's quoting and fetch it again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            names = pd.read_csv(io.StringIO(text), nrows=0, index_col=False).columns
            wide = pd.read_csv(io.StringIO(text), dtype=str, header=None, names=range(max(counts)), index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning):
        wide = None
    if wide is None or len(wide) != len(records) or len(names) != width:
        number = long[0]
        raise DataError(
            f"{source}: data row {number} (1 = the first row after the header) has {counts[number - 1]} fields, "
            f"the header {width}: a value holding an unquoted comma, or a shifted row. Quote such values or remove "
            "the surplus fields in the extract, and fetch it again"
        )
    frame = wide.iloc[1:, :width].set_axis(names, axis=1).reset_index(drop=True)
    surplus = [",".join(row[width:]) if len(row) > width else None for row in records[1:]]
    frame[OVERFLOW] = pd.Series(surplus, dtype=TEXT)
    return frame


def read_csv_bytes(data: bytes, source: str) -> pd.DataFrame:
    """Every value as text; "NA" and empty fields are missing."""
    read = read_csv_text(data, source)
    return text_frame(read) if isinstance(read, pa.Table) else read


def read_parquet_bytes(data: bytes, source: str) -> pd.DataFrame:
    if not data.startswith(PARQUET_MAGIC):
        raise DataError(f"{source}: not a Parquet file (no PAR1 header)")
    try:
        return pd.read_parquet(io.BytesIO(data))
    except (OSError, ValueError) as exc:
        raise DataError(f"{source}: unreadable Parquet file: {exc}") from None


def read_bytes(data: bytes, name: str, source: str) -> pd.DataFrame:
    if name.endswith(".parquet"):
        return read_parquet_bytes(data, source)
    return read_csv_bytes(data, source)


def read_text(data: bytes, name: str, source: str) -> pa.Table | pd.DataFrame:
    """`read_bytes`, except that a plain CSV file comes back as Arrow text (`read_csv_text`)."""
    if name.endswith(".parquet"):
        return read_parquet_bytes(data, source)
    return read_csv_text(data, source)


def repeated_headers(frame: pd.DataFrame) -> pd.Series:
    """Rows that repeat the header (extracts concatenated with their headers): every value, stripped, is its
    column's name. Each column is compared only on the rows that still match, so a file without repeated
    headers costs one pass over its first column."""
    same = np.ones(len(frame), dtype=bool)
    for position, column in enumerate(frame.columns):
        rows = np.flatnonzero(same)
        if not rows.size:
            break
        values = frame.iloc[rows, position].astype("string").str.strip()
        same[rows] = values.eq(str(column)).fillna(False).to_numpy(dtype=bool)
    return pd.Series(same, index=frame.index)
