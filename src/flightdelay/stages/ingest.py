"""Read raw partitions in the date window, type columns, write Parquet by month.

Stage `ingest`: read raw partitions inside the date window, give every column its schema type, write Parquet.

Sources: files under `data.raw_dir` (or a table's own `path`), local or any fsspec URL (s3://, gcs://, ...),
or a SQL query through SQLAlchemy. Partitioned tables are read, typed and written one month at a time, so
memory follows the largest month. A value that cannot be read as its column's type, a row with more fields than
the header (rule `field_count:<header's width>`, its surplus fields as the value) and a repeated header line send
their row to data/quarantine/ingest.parquet with the file, row number, column and value.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from flightdelay.core.config import (
    ColumnSpec,
    ComputeParams,
    IngestParams,
    Params,
    RetryParams,
    Schema,
    Source,
    TableSpec,
    Window,
    load_schema,
)
from flightdelay.core.engine import map_partitions, remove_partials, write_parquet_atomic, write_table_atomic
from flightdelay.core.errors import DataError
from flightdelay.core.files import atomic_dir, write_json, write_parquet
from flightdelay.data import quarantine
from flightdelay.data.counts import total_rows
from flightdelay.data.readers import OVERFLOW, read_text, repeated_headers, text_frame
from flightdelay.data.retry import with_retry
from flightdelay.data.schema_checks import column_drift

log = logging.getLogger(__name__)

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {
    "schema": "the schema file: tables, column types and rules",
    "raw": "folder of raw partitions (params.yaml: data.raw_dir; a table's sources.path overrides it)",
}
OUTPUTS = {"out": "folder for the typed Parquet partitions", "quarantine": "Parquet file of the rows refused"}
UNTRACKED: dict[str, str] = {}

PARTITION_FILE = re.compile(r"^(?P<period>\d{4}-\d{2})\.(?P<ext>csv|csv\.gz|parquet)\Z")
TABLE_FILE = re.compile(r"^(?P<table>[^/]+)\.(?P<ext>csv|csv\.gz|parquet)\Z")
LINEAGE = ["_source", "_row"]
# A column whose values mostly fail to convert has changed type: stop rather than quarantine every row.
CHANGED_TYPE_SHARE = 0.5
# Numbers Arrow parses to exactly the double pandas' parser gives: a value Arrow reads as a number, written
# only with digits, a point and a minus sign, at most 15 characters long: at most 15 digits, an exact integer
# before the one correctly rounded division by a power of ten both parsers make. Not negative zero: pandas
# gives -0.0 or 0.0 for "-0" depending on the column's other values.
PLAIN_DECIMAL_CHARS = 15
PLAIN_BYTES = np.zeros(256, dtype=bool)
PLAIN_BYTES[list(b"0123456789.-")] = True
INTEGER_BYTES = PLAIN_BYTES.copy()
INTEGER_BYTES[ord(".")] = False
NANOSECOND_TIMES = (pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC"))
# A whole date and time, as the schema's datetime columns take it: the date, `T` or a space, hours and minutes,
# optional seconds and fraction, an optional zone (Z or an offset; no zone is UTC). pandas reads it; anything
# shorter, a date alone or a value cut off mid-time, is a bad value rather than a time pandas completes.
COMPLETE_TIME = re.compile(r"\s*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?\s*")


# ------------------------------------------------------------------------------------------------ pure logic


def plain_numbers(values: pd.Series) -> np.ndarray | None:
    """`pd.to_numeric(values)` as float64 (NaN where missing), computed by Arrow, for text whose every value is a
    plain decimal (see PLAIN_DECIMAL_CHARS); None (use pandas) for any other column: not Arrow-backed text, or
    holding another spelling of a number ("1e3", "+1", " 1", "nan", ...) or anything that is not one."""
    if not (isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"):
        return None
    return arrow_plain_numbers(pa.array(values.array))


def arrow_plain_numbers(text: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """`plain_numbers` of Arrow text."""
    text = plain_text(text)
    if text is None:
        return None
    try:
        number = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        return None
    if negative_zero(text, number):
        return None
    return np.asarray(number, dtype="float64")


def plain_text(text: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """`text` as one array when some value is present and every present value is written only with digits, `.`
    and `-` in at most PLAIN_DECIMAL_CHARS characters; else None. The checks run on the Arrow buffers (value
    lengths from the offsets, a count of each byte of the characters), not per value."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if text.null_count == len(text):
        return None
    offsets, chars = text_buffers(text)
    if np.diff(offsets).max() > PLAIN_DECIMAL_CHARS or np.bincount(chars, minlength=256)[~PLAIN_BYTES].any():
        return None
    return text


def integer_text(text: pa.ChunkedArray) -> bool:
    """Whether every value is written only with digits and `-`, in at most PLAIN_DECIMAL_CHARS characters (checked
    chunk by chunk on the buffers, without joining the chunks)."""
    for chunk in text.chunks:
        offsets, chars = text_buffers(chunk)
        if len(chunk) and (
            np.diff(offsets).max() > PLAIN_DECIMAL_CHARS or np.bincount(chars, minlength=256)[~INTEGER_BYTES].any()
        ):
            return False
    return True


def text_buffers(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets of an Arrow text array and the bytes of its values (views, not copies)."""
    _, offset_buffer, data_buffer = text.buffers()
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(offset_buffer, dtype=width)[text.offset : text.offset + len(text) + 1]
    chars = (
        np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]] if data_buffer else np.empty(0, np.uint8)
    )
    return offsets, chars


def negative_zero(text: pa.Array, number: np.ndarray) -> bool:
    """Whether a value of `text` is a zero written with a minus sign (`number` is its parse)."""
    offsets, chars = text_buffers(text)
    lengths = np.diff(offsets)
    starts = offsets[:-1][lengths > 0] - offsets[0]
    return bool(((chars[starts] == ord("-")) & (number[lengths > 0] == 0)).any())


def plain_typed(number: np.ndarray, spec: ColumnSpec, values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """`coerce_column`'s result from `plain_numbers`: every present value parsed, so only an int column's
    fractions are bad. Built in numpy: the same values and dtypes as the pandas steps below, a fraction of
    their cost."""
    missing = np.isnan(number)
    bad = np.zeros(len(number), dtype=bool)
    if spec.dtype == "int":
        bad = ~missing & (np.mod(number, 1) != 0)
        hidden = missing | bad
        typed = pd.arrays.IntegerArray(np.where(hidden, 0, number).astype("int64"), hidden)
        return pd.Series(typed, index=values.index, name=values.name), pd.Series(
            bad, index=values.index, name=values.name
        )
    return pd.Series(number, index=values.index, name=values.name), pd.Series(bad, index=values.index, name=values.name)


def incomplete_times(values: pd.Series) -> pd.Series:
    """Text values that are not a whole date and time (COMPLETE_TIME), such as a date alone or a value cut off
    mid-time: pandas' ISO 8601 parser would fill in what is missing ("2013-02" as 2013-02-01 00:00, "T13:0" as
    13:00). Values that are not text (times read from Parquet or SQL) are left to the parser."""
    if pd.api.types.is_object_dtype(values.dtype):
        values = values.where(values.map(lambda v: isinstance(v, str)).astype(bool))
    elif not isinstance(values.dtype, pd.StringDtype):
        return pd.Series(False, index=values.index)
    whole = values.astype("string").str.fullmatch(COMPLETE_TIME.pattern).fillna(True)
    return ~whole.astype(bool)


def coerce_column(values: pd.Series, spec: ColumnSpec) -> tuple[pd.Series, pd.Series]:
    """Cast `values` to the column's type. Returns (typed values, mask of values that could not be cast)."""
    if spec.dtype in ("int", "float"):
        plain = plain_numbers(values)
        if plain is not None:
            return plain_typed(plain, spec, values)
    present = values.notna()
    if spec.dtype in ("int", "float"):
        number = pd.to_numeric(values, errors="coerce")
        bad = present & number.isna()
        if spec.dtype == "int":
            bad |= number.notna() & ((number % 1 != 0) | (number.abs() >= 2**63))
            return number.where(~bad).astype("Int64"), bad
        return number.where(~bad).astype("float64"), bad
    if spec.dtype == "datetime":
        cut_short = present & incomplete_times(values)
        stamp = pd.to_datetime(values.where(~cut_short), utc=True, errors="coerce", format="ISO8601")
        # pandas reads times outside nanoseconds' range (years before 1677 or after 2262) at a coarser unit: they
        # do not fit the column's type, so they are bad values, not a crash in the cast below
        stamp = stamp.where(stamp.isna() | stamp.between(*NANOSECOND_TIMES))
        return stamp.astype("datetime64[ns, UTC]"), present & stamp.isna()
    text = values.astype("string")
    return text, pd.Series(False, index=values.index)


def coerce_frame(frame: pd.DataFrame, spec: TableSpec, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Type every schema column of `frame` (raw values, `_source`/`_row` attached).

    Returns (rows that typed cleanly, quarantine records for the rest). A row with several bad values
    gets one record per value.
    """
    column_drift(list(frame.columns), spec, source)
    typed: dict[str, pd.Series] = {}
    bad_any = pd.Series(False, index=frame.index)
    problems = []
    for name, col in spec.columns.items():
        values, bad = coerce_column(frame[name], col)
        typed[name] = values
        if not bad.any():
            continue
        present = int(frame[name].notna().sum())
        if bad.sum() >= 5 and bad.sum() > CHANGED_TYPE_SHARE * present:
            example = frame.loc[bad, name].iloc[0]
            raise DataError(
                f"{source}: column {name!r}: {int(bad.sum())} of {present} values are not {col.dtype} "
                f"(e.g. {example!r}); did the column's type change? Fix the extract or the schema file."
            )
        problems.append(quarantine.records(spec.name, frame[bad], name, f"dtype:{col.dtype}", frame.loc[bad, name]))
        bad_any |= bad
    out = pd.DataFrame(typed, index=frame.index)
    out["_source"] = frame["_source"].astype("string")
    out["_row"] = frame["_row"].astype("int64")
    if problems:  # filtering copies every column: only when some row must go
        out = out[~bad_any]
    return out.reset_index(drop=True), quarantine.concat(problems)


def with_lineage(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Attach the source name and the 1-based data row number (the header is row 0)."""
    out = frame.copy()
    out["_source"] = source
    out["_row"] = range(1, len(frame) + 1)
    return out


# What `coerce_frame` gives each schema type (and the lineage columns): the frame `write_parquet_atomic` encodes.
TYPED_DTYPES = {"int": "Int64", "float": "float64", "str": "string", "datetime": "datetime64[ns, UTC]"}


def typed_schema(spec: TableSpec) -> pa.Schema:
    """The Arrow schema, pandas metadata included, that pyarrow gives a frame `coerce_frame` typed for `spec`
    (the metadata depends on the columns' names and dtypes, not on their values)."""
    return _typed_schema(tuple((name, col.dtype) for name, col in spec.columns.items()))


@functools.cache
def _typed_schema(columns: tuple[tuple[str, str], ...]) -> pa.Schema:
    empty = pd.DataFrame({name: pd.Series(dtype=TYPED_DTYPES[dtype]) for name, dtype in columns})
    empty["_source"] = pd.Series(dtype="string")
    empty["_row"] = pd.Series(dtype="int64")
    return pa.Schema.from_pandas(empty, preserve_index=False)


def repeated_text(value: str, n: int) -> pa.Array:
    """`value` n times as Arrow large text, built from its buffers (no Python object per row)."""
    data = value.encode("utf-8")
    offsets = np.arange(n + 1, dtype="int64") * len(data)
    return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)])


def arrow_typed(text: pa.ChunkedArray, spec: ColumnSpec) -> pa.Array | pa.ChunkedArray | None:
    """One column of Arrow text typed as `coerce_column` types it and as pyarrow then converts it for Parquet,
    or None when a value does not type (the chunk goes the pandas way, which quarantines it)."""
    if spec.dtype == "str":
        # in the parser's chunks, as the frame's text column keeps them: where a large column's dictionary fills
        # up, and so the encoding of its pages, depends on them
        return text.cast(pa.large_string())
    if spec.dtype == "int" and text.null_count < len(text) and integer_text(text):
        # digits and minus signs, at most 15: where Arrow reads an integer, pandas reads the same exact double
        with contextlib.suppress(pa.ArrowInvalid):
            return pc.cast(text, pa.int64()).combine_chunks()  # one chunk, as numpy's column converts
    plain = plain_text(text) if spec.dtype in ("int", "float") else None
    if plain is not None and spec.dtype == "int":
        number = arrow_plain_numbers(plain)
        if number is not None:  # written with a point: pandas' check that each is whole
            missing = np.isnan(number)
            if (np.mod(number[~missing], 1) != 0).any():
                return None
            return pa.array(np.where(missing, 0, number).astype("int64"), mask=missing)  # as Int64's own conversion
    elif plain is not None:
        number = arrow_plain_numbers(plain)
        if number is not None:
            return pa.array(number, from_pandas=True)  # NaN is missing, as pyarrow converts a float64 column
    return typed_distinct(text, spec)  # a number column of other spellings, or a time column


def typed_distinct(text: pa.ChunkedArray, spec: ColumnSpec) -> pa.Array | None:
    """`arrow_typed` of a number column that is not all plain decimals (say "3.4523399999999995", 18 characters) or
    of a time column: each distinct text is parsed once, and Arrow spreads the result over the rows. Times written
    the one way both parsers read alike are parsed by Arrow (`utc_seconds`); the rest by pandas, with a missing
    value once if there is one, so its type inference sees the same kinds of value as on the whole column. None
    when a value does not type."""
    codes = text.combine_chunks().dictionary_encode()
    values = codes.dictionary
    if spec.dtype == "datetime" and (utc := utc_seconds(values)) is not None:
        return utc.take(codes.indices)
    if text.null_count:
        values = pa.concat_arrays([values, pa.nulls(1, values.type)])
    typed, bad = coerce_column(text_frame(pa.table({"v": values}))["v"], spec)
    if bad.any():
        return None
    return pa.array(typed, from_pandas=True).take(codes.indices)


UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # 2013-01-01T05:00:00Z, as the raw files write times
UTC_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
UTC_MARKS = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: "Z"}


def utc_seconds(text: pa.Array) -> pa.Array | None:
    """Text whose every value is a UTC time written `YYYY-MM-DDTHH:MM:SSZ` (checked on the bytes), parsed by Arrow
    as the timestamp[ns, UTC] pandas' ISO 8601 parser gives; None for any other text, a null, and a value Arrow
    would read otherwise than pandas: a date that does not exist (Arrow rolls 2013-02-30 over, so each parse must
    print back as its text) or a time outside pandas' nanosecond range."""
    if not len(text) or text.null_count:
        return None
    offsets, chars = text_buffers(text)
    if (np.diff(offsets) != len("2013-01-01T05:00:00Z")).any():
        return None
    grid = chars.reshape(len(text), -1)
    digits = grid[:, UTC_DIGITS]
    if ((digits < ord("0")) | (digits > ord("9"))).any():
        return None
    if any((grid[:, i] != ord(mark)).any() for i, mark in UTC_MARKS.items()):
        return None
    try:
        parsed = pc.strptime(text, format=UTC_FORMAT, unit="s")
        if not pc.all(pc.equal(pc.strftime(parsed, format=UTC_FORMAT), text.cast(pa.string()))).as_py():
            return None
        return parsed.cast(pa.timestamp("s", tz="UTC")).cast(pa.timestamp("ns", tz="UTC"))
    except pa.ArrowInvalid:  # out of range: pandas' path names the value
        return None


def typed_table(text: pa.Table, spec: TableSpec, source: str, ip: IngestParams) -> pa.Table | None:
    """`ingest_chunk` of the fast reader's Arrow text without a frame: the table pyarrow would make of the typed
    frame, for a chunk whose every row types. None (use `ingest_chunk`) for a chunk with a row that may repeat the
    header or a value that does not type, and an empty chunk: that path finds, quarantines and explains them."""
    extra = column_drift(text.column_names, spec, source, ip.extra_columns)
    if not text.num_rows or pc.any(pc.match_substring(text.column(0), text.column_names[0])).as_py():
        return None  # a value that holds the first column's name may be a repeated header: let repeated_headers see
    columns = []
    for name, col in spec.columns.items():
        typed = arrow_typed(text.column(name), col)
        if typed is None:
            return None
        columns.append(typed)
    columns.append(repeated_text(source, text.num_rows))
    columns.append(pa.array(np.arange(1, text.num_rows + 1, dtype="int64")))
    if extra:
        log.warning("ingest: %s has column(s) not in the schema, dropped: %s", source, extra)
    return pa.Table.from_arrays(columns, schema=typed_schema(spec))


def select_partitions(names: list[str], window: Window) -> dict[str, str]:
    """Map period -> file name for the partition files inside the window (one file per period)."""
    months = set(window.months())
    chosen: dict[str, str] = {}
    for name in sorted(names):
        match = PARTITION_FILE.match(name)
        if not match or match["period"] not in months:
            continue
        period = match["period"]
        if period in chosen:
            raise DataError(f"two files for month {period}: {chosen[period]} and {name}; keep exactly one")
        chosen[period] = name
    return chosen


# ------------------------------------------------------------------------------------------------ reading


def read_file(fs: fsspec.AbstractFileSystem, path: str, source: str, retry: RetryParams) -> pd.DataFrame:
    """Read one raw file, retrying transient errors; CSV values as text, Parquet as stored."""
    read = read_file_text(fs, path, source, retry)
    return text_frame(read) if isinstance(read, pa.Table) else read


def read_file_text(
    fs: fsspec.AbstractFileSystem, path: str, source: str, retry: RetryParams
) -> pa.Table | pd.DataFrame:
    """`read_file`, except that a plain CSV file comes back as Arrow text (`readers.read_text`)."""

    def fetch() -> bytes:
        with fs.open(path, "rb") as fh:
            return fh.read()

    return read_text(with_retry(f"reading {source}", fetch, retry), path, source)


@dataclass(frozen=True)
class Chunk:
    """One unit of input: a month of a partitioned table (period set) or a whole reference table."""

    source: str
    frame: pd.DataFrame
    period: str | None = None


@dataclass(frozen=True)
class Part:
    """One unit of input before it is read: planned in the stage's process, read and typed by the engine.

    A file part has `url` (a path or fsspec URL); a SQL part has `query_url` and `query` (and `bind`, the year and
    month of a partitioned table's month).
    """

    table: str
    source: str
    period: str | None = None
    url: str | None = None
    query_url: str | None = None
    query: str | None = None
    bind: tuple[tuple[str, int], ...] = ()

    def output(self, out_dir: str) -> str:
        """Where its typed rows go inside the output directory."""
        name = f"{self.table}/{self.period}.parquet" if self.period else f"{self.table}.parquet"
        return f"{out_dir.rstrip('/')}/{name}"


@dataclass(frozen=True)
class PartResult:
    """What a part's task sends back to the stage: counts and quarantine records, never the rows."""

    table: str
    source: str
    rows_in: int
    rows_passed: int
    quarantine: pd.DataFrame
    seconds: float


RAW_FIX = (
    "The raw folder is data.raw_dir in params.yaml (or the table's path in ingest.sources): run `dvc repro raw` "
    "to write the bundled data there, or point it at the folder that holds your extracts."
)


def plan_files(root: str, spec: TableSpec, window: Window, retry: RetryParams) -> list[Part]:
    """The files to read for one table: one per month of the window for a partitioned table, else one."""
    fs, base = fsspec.core.url_to_fs(root)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    if spec.partitioned:
        if not with_retry(f"listing {root}", lambda: fs.isdir(base), retry):
            raise DataError(f"{root}: no such directory for partitioned table {spec.name!r}. {RAW_FIX}")
        names = [Path(p).name for p in with_retry(f"listing {root}", lambda: fs.ls(base, detail=False), retry)]
        chosen = select_partitions(names, window)
        absent = [m for m in window.months() if m not in chosen]
        if absent:
            log.warning(
                "ingest: %s has no file for %d month(s) of the window: %s",
                spec.name,
                len(absent),
                absent,
            )
        return [
            Part(spec.name, f"{spec.name}/{name}", period, url=f"{prefix}{base}/{name}")
            for period, name in sorted(chosen.items())
        ]
    for ext in ("csv", "csv.gz", "parquet"):
        candidate = base if base.endswith(f".{ext}") else f"{base}.{ext}"
        if with_retry(f"looking for {candidate}", functools.partial(fs.exists, candidate), retry):
            return [Part(spec.name, Path(candidate).name, url=f"{prefix}{candidate}")]
    raise DataError(f"{root}: no file for table {spec.name!r} (looked for .csv, .csv.gz, .parquet). {RAW_FIX}")


def plan_sql(source: Source, spec: TableSpec, window: Window) -> list[Part]:
    """The table's query, once per month of the window for a partitioned table, else once."""
    url, query = str(source.url), str(source.query)
    if not spec.partitioned:
        return [Part(spec.name, f"sql:{spec.name}", query_url=url, query=query)]
    return [
        Part(
            spec.name,
            f"sql:{spec.name}/{period}",
            period,
            query_url=url,
            query=query,
            bind=(("year", int(period[:4])), ("month", int(period[5:]))),
        )
        for period in window.months()
    ]


def plan_parts(name: str, source: Source, spec: TableSpec, raw_dir: str, ip: IngestParams) -> list[Part]:
    if source.kind == "sql":
        return plan_sql(source, spec, ip.window)
    return plan_files(source.path or f"{raw_dir.rstrip('/')}/{name}", spec, ip.window, ip.retry)


def read_part(part: Part, retry: RetryParams) -> Chunk:
    """Read one part (a file, or a query run), retrying transient errors."""
    if part.url is not None:
        fs, path = fsspec.core.url_to_fs(part.url)
        return Chunk(part.source, read_file(fs, path, part.source, retry), part.period)
    import sqlalchemy as sa

    engine = sa.create_engine(str(part.query_url))
    bind = dict(part.bind) or None

    def query() -> pd.DataFrame:
        with engine.connect() as conn:
            return pd.read_sql(sa.text(str(part.query)), conn, params=bind)

    try:
        return Chunk(part.source, with_retry(f"querying {part.source}", query, retry), part.period)
    finally:
        engine.dispose()


def ingest_chunk(chunk: Chunk, spec: TableSpec, ip: IngestParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check, type and quarantine one chunk. Returns (typed rows, quarantine records)."""
    raw = chunk.frame.drop(columns=OVERFLOW, errors="ignore")
    extra = column_drift(list(raw.columns), spec, chunk.source, ip.extra_columns)
    if extra:
        log.warning("ingest: %s has column(s) not in the schema, dropped: %s", chunk.source, extra)
    frame = with_lineage(raw, chunk.source)
    held = []
    if OVERFLOW in chunk.frame:
        long = chunk.frame[OVERFLOW].notna().to_numpy()
        rule = f"field_count:{len(raw.columns)}"
        held.append(quarantine.records(spec.name, frame[long], "*", rule, chunk.frame.loc[long, OVERFLOW]))
        frame = frame[~long]
    headers = repeated_headers(frame[raw.columns])
    if headers.any():
        held.append(quarantine.records(spec.name, frame[headers], "*", "repeated_header"))
        frame = frame[~headers.to_numpy()]
    typed, bad = coerce_frame(frame, spec, chunk.source)
    held.append(bad)
    n_in = len(chunk.frame)
    n_bad = n_in - len(typed)
    if n_in and n_bad / n_in > ip.max_invalid_share:
        records = quarantine.concat(held)
        first = records.iloc[0]
        raise DataError(
            f"{chunk.source}: {n_bad} of {n_in} rows ({n_bad / n_in:.1%}) cannot be read as their schema types, "
            f"over ingest.max_invalid_share={ip.max_invalid_share:.1%}; e.g. row {first['row']} column "
            f"{first['column']!r} value {first['value']!r} ({first['rule']}). Fix the extract, or raise the "
            "threshold if this is expected."
        )
    return typed, quarantine.concat(held)


def ingest_part(part: Part, schema: Schema, ip: IngestParams, out_dir: str) -> PartResult:
    """The engine's task: read, type and quarantine one part, write its typed rows into `out_dir`. A plain CSV
    file whose every row types stays in Arrow from parse to write (`typed_table`), the same bytes as the frame
    `ingest_chunk` would give."""
    start = time.perf_counter()
    spec = schema.tables[part.table]
    if part.url is not None:
        fs, path = fsspec.core.url_to_fs(part.url)
        read = read_file_text(fs, path, part.source, ip.retry)
        if isinstance(read, pa.Table):
            table = typed_table(read, spec, part.source, ip)
            if table is not None:
                write_table_atomic(table, part.output(out_dir))
                return PartResult(
                    part.table, part.source, len(read), len(read), quarantine.empty(), time.perf_counter() - start
                )
            read = text_frame(read)
        chunk = Chunk(part.source, read, part.period)
    else:
        chunk = read_part(part, ip.retry)
    typed, bad = ingest_chunk(chunk, spec, ip)
    write_parquet_atomic(typed, part.output(out_dir))
    return PartResult(part.table, part.source, len(chunk.frame), len(typed), bad, time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------ entry point


def main(args: argparse.Namespace, params: Params) -> dict[str, int]:
    return run(
        params.ingest,
        params.compute,
        load_schema(args.schema),
        raw_dir=args.raw,
        out_dir=args.out,
        quarantine_file=args.quarantine,
    )


def run(
    ingest: IngestParams,
    compute: ComputeParams,
    schema: Schema,
    *,
    raw_dir: str,
    out_dir: str | Path,
    quarantine_file: str | Path,
) -> dict[str, int]:
    window = ingest.window
    parts: list[Part] = []
    for name, spec in schema.tables.items():
        planned = plan_parts(name, ingest.sources.get(name, Source()), spec, raw_dir, ingest)
        if not planned:
            raise DataError(
                f"ingest: table {name!r} has no data in the window {window.start}..{window.end}; "
                "check data.raw_dir and ingest.window"
            )
        parts += planned
    counts: dict[str, dict[str, int]] = {}
    with atomic_dir(out_dir) as tmp:
        task = functools.partial(ingest_part, schema=schema, ip=ingest, out_dir=str(tmp.resolve()))
        results = map_partitions(task, parts, compute, name="ingest")
        remove_partials(tmp)
        for result in results:
            totals = counts.setdefault(
                result.table, {"partitions": 0, "rows_in": 0, "rows_passed": 0, "rows_quarantined": 0}
            )
            n_bad = result.rows_in - result.rows_passed
            totals["partitions"] += 1
            totals["rows_in"] += result.rows_in
            totals["rows_passed"] += result.rows_passed
            totals["rows_quarantined"] += n_bad
            log.info(
                "ingest: %-24s %7d rows in, %7d passed, %4d quarantined (%.2fs)",
                result.source,
                result.rows_in,
                result.rows_passed,
                n_bad,
                result.seconds,
            )
        write_json(tmp / "counts.json", counts)
    write_parquet(quarantine.concat([r.quarantine for r in results]), quarantine_file)
    for name, totals in counts.items():
        log.info("ingest: %s total %s", name, totals)
    return total_rows(counts)
