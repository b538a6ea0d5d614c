"""Check ingested data against the schema, quarantine bad rows, profile columns.

Stage `validate`: check ingested data against the schema (pandera), quarantine rows that break it, profile.

Row-level failures (out of range, not in the allowed set, null where not allowed, duplicate key, a row in
the wrong month's file) send the row to data/quarantine/validate.parquet; the rest go to data/validated/.
Column-level failures (wrong type, missing column) and partitions with too many bad rows stop the stage
with a message naming the file, column and rule.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flightdelay.core.config import ColumnSpec, ComputeParams, Params, Schema, TableSpec, ValidateParams, load_schema
from flightdelay.core.engine import (
    PARQUET_COMPRESSION,
    map_batches,
    remove_partials,
    write_bytes_atomic,
    write_parquet_atomic,
)
from flightdelay.core.errors import DataError
from flightdelay.core.files import atomic_dir, partition_files, write_json, write_parquet, write_text
from flightdelay.core.tables import markdown_table
from flightdelay.core.value_counts import exact_quantile
from flightdelay.data import quarantine
from flightdelay.data.counts import total_rows
from flightdelay.data.schema_checks import column_drift, null_spikes

if TYPE_CHECKING:
    import pandera.pandas as pa

log = logging.getLogger(__name__)

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {"schema": "the schema file: tables, column types and rules", "input": "the ingest stage's folder"}
OUTPUTS = {
    "out": "folder for the partitions that pass",
    "quarantine": "Parquet file of the rows refused, with file, row, column and rule",
    "profile": "JSON profile of every column",
    "summary": "Markdown summary of counts and rules broken",
}
UNTRACKED: dict[str, str] = {}

PANDAS_DTYPES = {
    "int": "Int64",
    "float": "float64",
    "str": "string",
    "datetime": "datetime64[ns, UTC]",
}
# The dtypes themselves, looked up once: `pandas_dtype` of a name searches pandas' registry of dtypes each time (a
# third of a millisecond), and the checks below ask for one per column of every partition.
DTYPES = {kind: pd.api.types.pandas_dtype(name) for kind, name in PANDAS_DTYPES.items()}


# ------------------------------------------------------------------------------------------------ pure logic


def pandera() -> ModuleType:
    """pandera, imported when a partition needs it (about half a second of a process start-up otherwise)."""
    import pandera.pandas

    return pandera.pandas


def column_schema(spec: ColumnSpec) -> pa.Column:
    pa = pandera()
    checks = []
    if spec.min is not None and spec.max is not None:
        checks.append(pa.Check.in_range(spec.min, spec.max))
    elif spec.min is not None:
        checks.append(pa.Check.ge(spec.min))
    elif spec.max is not None:
        checks.append(pa.Check.le(spec.max))
    if spec.allowed is not None:
        checks.append(pa.Check.isin(list(spec.allowed)))
    return pa.Column(PANDAS_DTYPES[spec.dtype], checks=checks, nullable=spec.nullable)


def table_schema(spec: TableSpec) -> pa.DataFrameSchema:
    """The pandera schema of one table, built from the schema file."""
    pa = pandera()
    return pa.DataFrameSchema(
        {name: column_schema(col) for name, col in spec.columns.items()},
        unique=list(spec.key) or None,
        report_duplicates="exclude_first",
        strict=False,
        name=spec.name,
    )


def passes_schema(frame: pd.DataFrame, spec: TableSpec) -> bool:
    """True when `table_schema(spec)` can find nothing wrong with `frame`: every column present with exactly its
    schema dtype, no missing value where the schema forbids one, every present value inside its range and its
    allowed set, no repeated key. One vectorised pass per column, several times cheaper than pandera; False only
    means "let pandera look": pandera finds, names and counts the rows, so the records never depend on this."""
    try:
        for name, column in spec.columns.items():
            if name not in frame or frame[name].dtype != DTYPES[column.dtype]:
                return False
            values = frame[name]
            if column.dtype in ("int", "float"):  # numpy, not pandas: a few microseconds a check, not a hundred
                numbers = values.to_numpy(dtype="float64", na_value=np.nan)
                missing = np.isnan(numbers)
                present: Any = numbers[~missing]
            else:
                missing = values.isna().to_numpy()
                present = values[~missing]
            if not column.nullable and missing.any():
                return False
            if column.min is not None and not bool((present >= column.min).all()):
                return False
            if column.max is not None and not bool((present <= column.max).all()):
                return False
            if column.allowed is not None and not bool(pd.Series(present).isin(list(column.allowed)).all()):
                return False
    except (TypeError, ValueError):  # a comparison the column's values do not support: pandera says what is wrong
        return False
    return not (spec.key and bool(frame.duplicated(subset=list(spec.key)).any()))


def wrong_period(frame: pd.DataFrame, spec: TableSpec, period: str | None) -> pd.Series:
    """Rows of a monthly partition whose own year/month is another month."""
    if period is None or not spec.partitioned or spec.period is None:
        return pd.Series(False, index=frame.index)
    year = frame[spec.period["year"]]
    month = frame[spec.period["month"]]
    return ~((year == int(period[:4])) & (month == int(period[5:]))).fillna(False).astype(bool)


def check_partition(
    frame: pd.DataFrame, spec: TableSpec, source: str, period: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate one partition. Returns (rows that pass, quarantine records).

    Raises DataError for failures that concern a whole column rather than rows.
    """
    frame = frame.reset_index(drop=True)
    column_drift(list(frame.columns), spec, source, extra_columns="drop")
    null_spikes(frame, spec, source)
    problems: list[pd.DataFrame] = []
    bad = pd.Series(False, index=frame.index)
    try:
        if not passes_schema(frame, spec):
            table_schema(spec).validate(frame, lazy=True)
    except pandera().errors.SchemaErrors as err:
        cases = err.failure_cases
        column_level = cases[cases["index"].isna()]
        if not column_level.empty:
            first = column_level.iloc[0]
            if first["check"] == "column_in_dataframe":
                raise DataError(
                    f"{source}: missing column {first['failure_case']!r} of table {spec.name!r}; "
                    "fix the extract or the schema file"
                ) from None
            raise DataError(
                f"{source}: column {first['column']!r} fails {first['check']} "
                f"(found {first['failure_case']}); fix the extract or the schema file"
            ) from None
        # pandera reports a duplicate key once per key column: one record per row is enough.
        unique = cases["check"] == "multiple_fields_uniqueness"
        cases = pd.concat([cases[~unique], cases[unique].drop_duplicates("index").assign(column=",".join(spec.key))])
        for (column, check), group in cases.groupby(["column", "check"], sort=True):
            index = pd.Index(group["index"].astype("int64").unique())
            rule = "unique_key" if check == "multiple_fields_uniqueness" else str(check)
            rows = frame.loc[index]
            values = rows[column] if column in rows else None
            problems.append(quarantine.records(spec.name, rows, str(column), rule, values))
            bad.loc[index] = True
    misplaced = wrong_period(frame, spec, period) & ~bad
    if misplaced.any():
        rows = frame[misplaced]
        problems.append(
            quarantine.records(spec.name, rows, spec.period["month"] if spec.period else "", f"period:{period}")
        )
        bad |= misplaced
    return frame[~bad].reset_index(drop=True), quarantine.concat(problems)


@dataclass(frozen=True)
class ColumnPartial:
    """A column's profile over some rows, mergeable with another's: the merge of every partition's partial
    profiles the whole column exactly, so no process needs the whole column. `values` counts each distinct
    present value (sorted by value); quantiles, mean and spread come from these counts."""

    dtype: str
    count: int
    nulls: int
    values: pd.Series

    @classmethod
    def of(cls, values: pd.Series) -> ColumnPartial:
        present = values.dropna()
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            present = present.astype("float64")
        counted = present.value_counts(sort=False).sort_index(kind="stable").astype("int64")
        return cls(str(values.dtype), int(values.size), int(values.isna().sum()), counted)

    def merge(self, other: ColumnPartial) -> ColumnPartial:
        return ColumnPartial.merge_all([self, other])

    @staticmethod
    def merge_all(partials: list[ColumnPartial]) -> ColumnPartial:
        """The partials merged in one pass (one concat and one group-by, not one per pair): the same counts as
        merging them pair by pair, at a fraction of the cost for a table of many partitions."""
        if len(partials) == 1:
            return partials[0]
        values = ColumnPartial.merge_numbers(partials)
        if values is None:
            values = pd.concat([p.values for p in partials]).groupby(level=0, sort=True).sum().astype("int64")
        return ColumnPartial(partials[0].dtype, sum(p.count for p in partials), sum(p.nulls for p in partials), values)

    @staticmethod
    def merge_numbers(partials: list[ColumnPartial]) -> pd.Series | None:
        """The group-by of `merge_all` in numpy for counts of doubles (sorted distinct values, summed counts); None
        for other values, and where the group-by would pick one of 0.0 and -0.0 to stand for both."""
        first = partials[0].values
        if any(p.values.index.dtype != np.float64 for p in partials):
            return None
        numbers = np.concatenate([p.values.index.to_numpy() for p in partials])
        if np.signbit(numbers[numbers == 0]).any():
            return None
        distinct, inverse = np.unique(numbers, return_inverse=True)
        counts = np.zeros(len(distinct), dtype="int64")
        np.add.at(counts, inverse, np.concatenate([p.values.to_numpy(dtype="int64") for p in partials]))
        return pd.Series(counts, index=pd.Index(distinct, name=first.index.name), name=first.name)


def profile_partial(partial: ColumnPartial, quantiles: tuple[float, ...]) -> dict[str, Any]:
    """Nulls, distinct values and, for numbers and times, min/max/mean/quantiles."""
    out: dict[str, Any] = {
        "dtype": partial.dtype,
        "count": partial.count,
        "nulls": partial.nulls,
        "null_share": partial.nulls / partial.count if partial.count else 0.0,
        "distinct": len(partial.values),
    }
    if partial.values.empty:
        return out
    index = partial.values.index
    if pd.api.types.is_float_dtype(index) or pd.api.types.is_integer_dtype(index):
        numbers = index.to_numpy(dtype="float64")
        counts = partial.values.to_numpy(dtype="int64")
        n = int(counts.sum())
        mean = float(np.dot(numbers, counts) / n)
        out.update(
            min=float(numbers[0]),
            max=float(numbers[-1]),
            mean=mean,
            std=float(np.sqrt(np.dot((numbers - mean) ** 2, counts) / n)),
            quantiles={str(q): exact_quantile(numbers, counts, q) for q in quantiles},
        )
    elif pd.api.types.is_datetime64_any_dtype(index):
        out.update(min=index[0].isoformat(), max=index[-1].isoformat())
    else:
        top = partial.values.sort_values(ascending=False, kind="stable")
        out["top"] = {str(k): int(v) for k, v in top.head(5).items()}
    return out


def profile_column(values: pd.Series, quantiles: tuple[float, ...]) -> dict[str, Any]:
    """The profile of one whole column (the same as merging the partials of its parts)."""
    return profile_partial(ColumnPartial.of(values), quantiles)


def merge_partials(parts: list[dict[str, ColumnPartial]], spec: TableSpec) -> dict[str, ColumnPartial]:
    """Every column's partials merged in partition order; a table with no partition profiles as empty floats."""
    merged: dict[str, ColumnPartial] = {}
    for column in spec.columns:
        columns = [p[column] for p in parts]
        merged[column] = ColumnPartial.merge_all(columns) if columns else ColumnPartial.of(pd.Series(dtype="float64"))
    return merged


def _examples(group: pd.DataFrame, n: int) -> str:
    return ", ".join(f"{r.source}:{r.row} = {r.value}" for r in group.head(n).itertuples(index=False))


def summary_markdown(
    counts: dict[str, dict[str, int]], bad: pd.DataFrame, quarantine_file: str | Path, examples: int = 5
) -> str:
    lines = [
        "# Validation summary",
        "",
        f"Rows that break the schema are kept in `{quarantine_file}` with file, row, column and rule.",
        "",
        *markdown_table(
            ["table", "partitions", "rows in", "passed", "quarantined"],
            [[t, c["partitions"], c["rows_in"], c["rows_passed"], c["rows_quarantined"]] for t, c in counts.items()],
            "->>>>",
        ),
    ]
    lines += ["", "## Rules broken", ""]
    if bad.empty:
        lines.append("None: every row passed.")
    else:
        rows = [
            [table, column, f"`{rule}`", len(group), _examples(group, examples)]
            for (table, column, rule), group in bad.groupby(["table", "column", "rule"], sort=True)
        ]
        lines += markdown_table(["table", "column", "rule", "rows", "example (file:row = value)"], rows, "--->-")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ entry point


@dataclass(frozen=True)
class PartResult:
    """What a partition's task sends back: counts, quarantine records and column partials, never the rows."""

    table: str
    source: str
    rows_in: int
    rows_passed: int
    quarantine: pd.DataFrame
    profile: dict[str, ColumnPartial]
    seconds: float


def _inputs(in_dir: Path, spec: TableSpec) -> list[tuple[str, str | None]]:
    """(path relative to the input folder, period) of each partition of a table, in month order."""
    if spec.partitioned:
        return [(f"{spec.name}/{p.name}", p.stem) for p in partition_files(in_dir / spec.name)]
    return [(f"{spec.name}.parquet", None)]


def rewrites_unchanged(data: bytes) -> bool:
    """Whether `write_parquet_atomic` would write these very bytes again for the frame they hold: a Parquet file
    that this pandas and this pyarrow wrote with the engine's compression, as `ingest` writes its partitions.
    Writing is deterministic and a frame read back from such a file is written as the same bytes
    (tests/unit/test_validate.py checks the round trip), so a partition whose every row passes can be copied
    instead of encoded again. A file from another version or writer is encoded again, as it always was."""
    try:
        meta = pq.read_metadata(io.BytesIO(data))
        pandas_meta = json.loads(meta.metadata.get(b"pandas", b"{}")) if meta.metadata else {}
    except (pyarrow.ArrowException, ValueError):
        return False
    creator = pandas_meta.get("creator", {})
    compressions = {
        meta.row_group(g).column(c).compression for g in range(meta.num_row_groups) for c in range(meta.num_columns)
    }
    return (
        meta.created_by == f"parquet-cpp-arrow version {pyarrow.__version__}"
        and pandas_meta.get("pandas_version") == pd.__version__
        and creator == {"library": "pyarrow", "version": pyarrow.__version__}
        and compressions <= {PARQUET_COMPRESSION.upper()}
    )


# How a column of each schema type arrives when `ingest` wrote it: its Arrow type, and the dtype pandas' metadata
# in the file restores (what `passes_schema` checks on the frame).
ARROW_TYPES = {
    "int": (pyarrow.int64(), "Int64"),
    "float": (pyarrow.float64(), "float64"),
    "str": (pyarrow.large_string(), "string"),
    "datetime": (pyarrow.timestamp("ns", tz="UTC"), "datetime64[ns]"),
}
# Partitions validated per batch: their profile partials (each column's distinct values and counts) are folded into
# one per table after each batch, so memory holds a batch of partials, not one per partition of the window.
PROFILE_BATCH = 24
EXACT_FLOAT_INT = 2**53  # integers whose doubles are all distinct (ColumnPartial counts int columns as doubles)
COUNT_RANGE = 1 << 20  # integers spanning at most this many values are counted with bincount, not hashed
KEY_BITMAP = 1 << 26  # keys of at most this many possible numbers are checked with a bitmap, not hashed


@dataclass(frozen=True)
class Counted:
    """A column's distinct present values (sorted), how often each occurs, and a number per row that is equal
    for equal values (missing ones included), below `size`."""

    distinct: pyarrow.Array
    counts: np.ndarray
    codes: np.ndarray
    size: int


def count_values(values: pyarrow.ChunkedArray) -> Counted:
    """Count a column's values: integers of a small range by their offset from the least (numpy's bincount),
    anything else by Arrow's hash (its dictionary encoding). Missing values, if any, get the last number."""
    array = values.combine_chunks()
    nulls = array.null_count
    if pyarrow.types.is_integer(array.type) and nulls < len(array):
        ints = np.asarray((pc.fill_null(array, 0) if nulls else array).to_numpy(zero_copy_only=False), dtype="int64")
        missing = array.is_null().to_numpy(zero_copy_only=False) if nulls else None
        present = ints if missing is None else ints[~missing]
        low, high = int(present.min()), int(present.max())
        if high - low < COUNT_RANGE:
            codes = ints - low
            if missing is not None:
                codes[missing] = high - low + 1
            every = np.bincount(codes, minlength=high - low + 1)[: high - low + 1]
            seen = np.flatnonzero(every)
            size = high - low + (2 if nulls else 1)
            return Counted(pyarrow.array(seen + low, type=array.type), every[seen], codes, size)
    encoded = pc.dictionary_encode(array)
    size = len(encoded.dictionary)
    indices = pc.fill_null(encoded.indices, size) if nulls else encoded.indices
    codes = np.asarray(indices.to_numpy(zero_copy_only=False), dtype="int64")
    counts = np.bincount(codes, minlength=size)[:size]
    order = pc.sort_indices(encoded.dictionary).to_numpy()
    return Counted(encoded.dictionary.take(order), counts[order], codes, size + (1 if nulls else 0))


def arrow_partial(counted: Counted, n: int, nulls: int, spec: ColumnSpec, name: str) -> ColumnPartial | None:
    """`ColumnPartial.of` of a column as pandas would read it, from its counted values, when the schema's rules
    can be judged on its distinct values and hold; None when one is broken or the column is one this does not
    judge (an `allowed` set on numbers, a range on text or times, a NaN, a zero of both signs)."""
    if not spec.nullable and nulls:
        return None
    distinct, counts = counted.distinct, np.asarray(counted.counts, dtype="int64")
    if spec.dtype in ("int", "float"):
        numbers = distinct.to_numpy(zero_copy_only=False)
        if spec.allowed is not None or (spec.dtype == "float" and np.isnan(numbers).any()):
            return None
        if spec.dtype == "int" and len(numbers) and np.abs(numbers).max() >= EXACT_FLOAT_INT:
            return None
        numbers = numbers.astype("float64")
        if (numbers == 0).sum() > 1:  # 0.0 and -0.0: pandas counts them as one value
            return None
        order = np.argsort(numbers, kind="stable")
        numbers, counts = numbers[order], counts[order]
        if spec.min is not None and not bool((numbers >= spec.min).all()):
            return None
        if spec.max is not None and not bool((numbers <= spec.max).all()):
            return None
        index = pd.Index(numbers, name=name)  # float64 already: no dtype to look up
    elif spec.min is not None or spec.max is not None:
        return None
    elif spec.dtype == "str":
        text = distinct.to_pylist()
        if spec.allowed is not None and not set(text) <= set(spec.allowed):
            return None
        index = pd.Index(text, dtype=DTYPES["str"], name=name)
    elif spec.allowed is None:
        index = pd.Index(distinct.to_pandas(), name=name)
    else:
        return None
    return ColumnPartial(str(DTYPES[spec.dtype]), n, nulls, pd.Series(counts, index=index, name="count"))


def arrow_check(
    table: pyarrow.Table, spec: TableSpec, source: str, period: str | None
) -> dict[str, ColumnPartial] | None:
    """For a partition `ingest` wrote in which `check_partition` would find nothing (every column of its schema
    type, no rule broken, no repeated key, every row in its month, no null spike): every column's partial, as
    `ColumnPartial.of` gives them for the frame. None otherwise, or when in doubt: the frame path then finds,
    quarantines and explains whatever there is, as it always did."""
    column_drift(table.column_names, spec, source, extra_columns="drop")
    meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
    if not table.num_rows or meta.get("index_columns") != [] or meta.get("column_indexes") != []:
        return None
    restores = {c.get("field_name"): (c.get("numpy_type"), c.get("metadata")) for c in meta.get("columns", [])}
    partials: dict[str, ColumnPartial] = {}
    counted: dict[str, Counted] = {}
    for name, column in spec.columns.items():
        arrow_type, numpy_type = ARROW_TYPES[column.dtype]
        timezone = {"timezone": "UTC"} if column.dtype == "datetime" else None
        values = table.column(name)
        if values.type != arrow_type or restores.get(name) != (numpy_type, timezone):
            return None
        if column.max_null_rate is not None and values.null_count >= column.max_null_rate * table.num_rows - 1:
            return None  # at or near the spike threshold: null_spikes decides, and explains
        counted[name] = count_values(values)
        partial = arrow_partial(counted[name], table.num_rows, values.null_count, column, name)
        if partial is None:
            return None
        partials[name] = partial
    if spec.partitioned and spec.period is not None and period is not None:
        year, month = partials[spec.period["year"]], partials[spec.period["month"]]
        for seen, expected in ((year, int(period[:4])), (month, int(period[5:]))):
            if seen.nulls or seen.values.index.tolist() != [float(expected)]:
                return None
    if spec.key and (
        any(spec.columns[k].dtype == "float" for k in spec.key) or repeats_key([counted[k] for k in spec.key])
    ):
        return None
    return partials


def repeats_key(columns: list[Counted]) -> bool:
    """Whether two rows share their values of the key's columns (a missing value equal to another, as
    `DataFrame.duplicated` counts them): each row's numbers combined into one integer, the distinct ones counted."""
    code = np.zeros(len(columns[0].codes), dtype="int64")
    size = 1
    for column in columns:
        if size >= (2**62) // column.size:
            code = np.unique(code, return_inverse=True)[1].astype("int64")  # renumber before the product overflows
            size = int(code.max(initial=0)) + 1
        code = code * column.size + column.codes
        size *= column.size
    if size <= KEY_BITMAP:  # a mark per possible number: cheaper than hashing the rows' numbers
        seen = np.zeros(size, dtype=bool)
        seen[code] = True
        return int(np.count_nonzero(seen)) != len(code)
    return len(pc.unique(pyarrow.array(code))) != len(code)


def validate_part(
    item: tuple[str, str, str | None], schema: Schema, limit: float, in_dir: str, out_dir: str
) -> PartResult:
    """The engine's task: check one partition (table, relative path, period), write the rows that pass into
    `out_dir` and return counts, quarantine records and the passed rows' column partials. A partition whose
    every row passes is copied when encoding it again would give the same bytes (`rewrites_unchanged`)."""
    table, relative, period = item
    spec = schema.tables[table]
    start = time.perf_counter()
    fs, path = fsspec.core.url_to_fs(f"{in_dir.rstrip('/')}/{relative}")
    with fs.open(path, "rb") as fh:
        data = fh.read()
    rewrites = rewrites_unchanged(data)
    if rewrites:
        parquet = pq.ParquetFile(pyarrow.BufferReader(data))
        column_drift(parquet.schema_arrow.names, spec, relative, extra_columns="drop")
        arrow = parquet.read(columns=list(spec.columns))  # the schema's columns only: the lineage is not checked
        checked = arrow_check(arrow, spec, relative, period)
        if checked is not None:
            write_bytes_atomic(data, f"{out_dir.rstrip('/')}/{relative}")
            n = arrow.num_rows
            return PartResult(table, relative, n, n, quarantine.empty(), checked, time.perf_counter() - start)
    frame = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    passed, bad = check_partition(frame, spec, relative, period)
    n_bad = len(frame) - len(passed)
    if frame.shape[0] and n_bad / len(frame) > limit:
        worst = bad.groupby(["column", "rule"]).size().sort_values(ascending=False)
        (column, rule), n = next(iter(worst.items()))
        first = bad[(bad["column"] == column) & (bad["rule"] == rule)].iloc[0]
        raise DataError(
            f"{first['source']}: {n_bad} of {len(frame)} rows ({n_bad / len(frame):.1%}) break the "
            f"schema, over validate.max_invalid_share={limit:.1%}. Most common: column {column!r} "
            f"rule {rule} ({n} rows), e.g. row {first['row']} value {first['value']!r}. "
            "Fix the extract, or raise the threshold if this is expected."
        )
    if n_bad == 0 and rewrites:
        write_bytes_atomic(data, f"{out_dir.rstrip('/')}/{relative}")
    else:
        write_parquet_atomic(passed, f"{out_dir.rstrip('/')}/{relative}")
    partials = {column: ColumnPartial.of(passed[column]) for column in spec.columns}
    return PartResult(table, relative, len(frame), len(passed), bad, partials, time.perf_counter() - start)


def main(args: argparse.Namespace, params: Params) -> dict[str, int]:
    return run(
        params.validate,
        params.compute,
        load_schema(args.schema),
        in_dir=args.input,
        out_dir=args.out,
        quarantine_file=args.quarantine,
        profile_file=args.profile,
        summary_file=args.summary,
    )


def run(
    validate: ValidateParams,
    compute: ComputeParams,
    schema: Schema,
    *,
    in_dir: str | Path,
    out_dir: str | Path,
    quarantine_file: str | Path,
    profile_file: str | Path,
    summary_file: str | Path,
) -> dict[str, int]:
    source_dir = Path(in_dir)
    items = [
        (name, relative, period)
        for name, spec in schema.tables.items()
        for relative, period in _inputs(source_dir, spec)
    ]
    counts: dict[str, dict[str, int]] = {
        name: {"partitions": 0, "rows_in": 0, "rows_passed": 0, "rows_quarantined": 0} for name in schema.tables
    }
    partials: dict[str, list[dict[str, ColumnPartial]]] = {name: [] for name in schema.tables}
    quarantined: list[pd.DataFrame] = []
    with atomic_dir(out_dir) as tmp:
        task = functools.partial(
            validate_part,
            schema=schema,
            limit=validate.max_invalid_share,
            in_dir=str(source_dir.resolve()),
            out_dir=str(tmp.resolve()),
        )
        for batch in map_batches(task, items, compute, name="validate", size=PROFILE_BATCH):
            for result in batch:
                totals = counts[result.table]
                n_bad = result.rows_in - result.rows_passed
                totals["partitions"] += 1
                totals["rows_in"] += result.rows_in
                totals["rows_passed"] += result.rows_passed
                totals["rows_quarantined"] += n_bad
                partials[result.table].append(result.profile)
                quarantined.append(result.quarantine)
                log.info(
                    "validate: %-24s %7d rows in, %7d passed, %4d quarantined (%.2fs)",
                    result.source,
                    result.rows_in,
                    result.rows_passed,
                    n_bad,
                    result.seconds,
                )
            # the batch's profiles folded into one per table (the merge is exact in any grouping, in order)
            for name, parts in partials.items():
                if len(parts) > 1:
                    partials[name] = [merge_partials(parts, schema.tables[name])]
        remove_partials(tmp)
        write_json(tmp / "counts.json", counts)
    quantiles = validate.profile_quantiles
    profile = {
        name: {column: profile_partial(p, quantiles) for column, p in merge_partials(partials[name], spec).items()}
        for name, spec in schema.tables.items()
    }
    bad_rows = quarantine.concat(quarantined)
    write_parquet(bad_rows, quarantine_file)
    write_json(profile_file, {"tables": profile, "counts": counts})
    write_text(summary_file, summary_markdown(counts, bad_rows, quarantine_file))
    for name, totals in counts.items():
        log.info("validate: %s total %s", name, totals)
    return total_rows(counts)
