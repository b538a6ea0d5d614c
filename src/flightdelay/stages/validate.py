"""Check ingested data against the schema, quarantine bad rows, profile columns.

Stage `validate`: check ingested data against the schema (pandera), quarantine rows that break it, profile.

Row-level failures (out of range, not in the allowed set, null where not allowed, duplicate key, a row in
the wrong month's file) send the row to data/quarantine/validate.parquet; the rest go to data/validated/.
Column-level failures (wrong type, missing column) and partitions with too many bad rows stop the stage
with a message naming the file, column and rule.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from flightdelay.core.config import ColumnSpec, Params, Schema, TableSpec, ValidateParams, load_schema
from flightdelay.core.errors import DataError
from flightdelay.core.files import (
    atomic_dir,
    partition_files,
    read_parquet,
    write_json,
    write_parquet,
    write_parquet_into,
    write_text,
)
from flightdelay.core.tables import markdown_table
from flightdelay.data import quarantine
from flightdelay.data.counts import total_rows
from flightdelay.data.schema_checks import column_drift, null_spikes

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


# ------------------------------------------------------------------------------------------------ pure logic


def column_schema(spec: ColumnSpec) -> pa.Column:
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
    return pa.DataFrameSchema(
        {name: column_schema(col) for name, col in spec.columns.items()},
        unique=list(spec.key) or None,
        report_duplicates="exclude_first",
        strict=False,
        name=spec.name,
    )


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
        table_schema(spec).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
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


def profile_column(values: pd.Series, quantiles: tuple[float, ...]) -> dict[str, Any]:
    """Nulls, distinct values and, for numbers and times, min/max/mean/quantiles."""
    out: dict[str, Any] = {
        "dtype": str(values.dtype),
        "count": int(values.size),
        "nulls": int(values.isna().sum()),
        "null_share": float(values.isna().mean()) if values.size else 0.0,
        "distinct": int(values.nunique(dropna=True)),
    }
    present = values.dropna()
    if present.empty:
        return out
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = present.astype("float64")
        out.update(
            min=float(numbers.min()),
            max=float(numbers.max()),
            mean=float(numbers.mean()),
            std=float(numbers.std(ddof=0)),
            quantiles={str(q): float(np.quantile(numbers, q)) for q in quantiles},
        )
    elif pd.api.types.is_datetime64_any_dtype(values):
        out.update(min=present.min().isoformat(), max=present.max().isoformat())
    else:
        top = present.value_counts().sort_index(kind="stable").sort_values(ascending=False, kind="stable")
        out["top"] = {str(k): int(v) for k, v in top.head(5).items()}
    return out


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


def _inputs(in_dir: Path, spec: TableSpec) -> list[tuple[Path, str | None]]:
    if spec.partitioned:
        return [(p, p.stem) for p in partition_files(in_dir / spec.name)]
    return [(in_dir / f"{spec.name}.parquet", None)]


def main(args: argparse.Namespace, params: Params) -> dict[str, int]:
    return run(
        params.validate,
        load_schema(args.schema),
        in_dir=args.input,
        out_dir=args.out,
        quarantine_file=args.quarantine,
        profile_file=args.profile,
        summary_file=args.summary,
    )


def run(
    validate: ValidateParams,
    schema: Schema,
    *,
    in_dir: str | Path,
    out_dir: str | Path,
    quarantine_file: str | Path,
    profile_file: str | Path,
    summary_file: str | Path,
) -> dict[str, int]:
    source_dir = Path(in_dir)
    limit = validate.max_invalid_share
    counts: dict[str, dict[str, int]] = {}
    held: list[pd.DataFrame] = []
    profile: dict[str, Any] = {}
    with atomic_dir(out_dir) as tmp:
        for name, spec in schema.tables.items():
            totals = {"partitions": 0, "rows_in": 0, "rows_passed": 0, "rows_quarantined": 0}
            written: list[Path] = []
            for path, period in _inputs(source_dir, spec):
                start = time.perf_counter()
                frame = read_parquet(path)
                source = f"{path.relative_to(source_dir)}"
                passed, bad = check_partition(frame, spec, source, period)
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
                target = tmp / path.relative_to(source_dir)
                write_parquet_into(passed, target)
                written.append(target)
                held.append(bad)
                totals["partitions"] += 1
                totals["rows_in"] += len(frame)
                totals["rows_passed"] += len(passed)
                totals["rows_quarantined"] += n_bad
                log.info(
                    "validate: %-24s %7d rows in, %7d passed, %4d quarantined (%.2fs)",
                    source,
                    len(frame),
                    len(passed),
                    n_bad,
                    time.perf_counter() - start,
                )
            counts[name] = totals
            profile[name] = profile_table(written, spec, validate.profile_quantiles)
        write_json(tmp / "counts.json", counts)
    bad_rows = quarantine.concat(held)
    write_parquet(bad_rows, quarantine_file)
    write_json(profile_file, {"tables": profile, "counts": counts})
    write_text(summary_file, summary_markdown(counts, bad_rows, quarantine_file))
    for name, totals in counts.items():
        log.info("validate: %s total %s", name, totals)
    return total_rows(counts)


def profile_table(files: list[Path], spec: TableSpec, quantiles: tuple[float, ...]) -> dict[str, Any]:
    """Profile a table one column at a time, so memory holds one column of the whole table, not the table."""
    return {
        column: profile_column(
            pd.concat([read_parquet(f, columns=[column])[column] for f in files], ignore_index=True)
            if files
            else pd.Series(dtype="float64"),
            quantiles,
        )
        for column in spec.columns
    }
