"""Turning the bytes of one raw file into a DataFrame, or a DataError that says what is wrong with it.

Read correctly: a UTF-8 byte-order mark, CRLF line ends, gzip-compressed CSV (by content, whatever the name).
Rejected with a message: an empty file, a header with no rows, a file cut off mid-row, another delimiter,
bytes that are not UTF-8, rows with too many fields, and files that are not CSV at all.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib

import pandas as pd

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
    """Reject empty, header-only, wrongly delimited and truncated files before parsing."""
    if not text.strip():
        raise DataError(f"{source}: empty file; the extract holds no header and no rows")
    lines = text.splitlines()
    header = lines[0]
    if "," not in header:
        for delimiter, name in OTHER_DELIMITERS.items():
            if delimiter in header:
                raise DataError(
                    f"{source}: the header is {name}-delimited ({header[:60]!r}...); "
                    "expected comma-separated values: re-export with ',' as the delimiter"
                )
    rows = [line for line in lines[1:] if line.strip()]
    if not rows:
        raise DataError(f"{source}: header only, no data rows")
    if not text.endswith(("\n", "\r")):
        fields = len(next(csv.reader([header])))
        last = next(csv.reader([lines[-1]]), [])
        if len(last) < fields:
            raise DataError(
                f"{source}: the file ends mid-row at line {len(lines)} ({len(last)} of {fields} fields, "
                "no final newline): the extract was cut off; fetch it again"
            )


def read_csv_bytes(data: bytes, source: str) -> pd.DataFrame:
    """Every value as text; "NA" and empty fields are missing."""
    text = decode(decompress(data, source), source)
    check_shape(text, source)
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, skip_blank_lines=True)
    except pd.errors.ParserError as exc:
        raise DataError(f"{source}: cannot be parsed as CSV: {exc}") from None


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


def repeated_headers(frame: pd.DataFrame) -> pd.Series:
    """Rows that repeat the header (extracts concatenated with their headers)."""
    if frame.empty:
        return pd.Series(False, index=frame.index)
    same = pd.Series(True, index=frame.index)
    for column in frame.columns:
        same &= frame[column].astype("string").str.strip().eq(str(column)).fillna(False).astype(bool)
    return same
