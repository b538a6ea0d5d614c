"""Batch scoring: `flightdelay score` scores raw monthly partitions with a verified package.

    python -m flightdelay score --package models/package/model-<hash> --window 2013-11..2013-12 \
        --raw data/raw/<data set> --out scores/
    python -m flightdelay score --stage prod --window 2014-01..2014-01 --raw DIR --out scores/

Each month of the window is read from `<raw>/<table>/` (the package's main table, dataset.table; a path or an
fsspec URL) through the ingest and validate stages' own checks (flightdelay.stages.ingest.ingest_chunk,
stages.validate.check_partition, with the params' thresholds): rows that break a rule are quarantined with their
reason, and a month with too many of them fails as the pipeline would. Rows the package's input schema refuses (a
category the model never saw) are quarantined too. The rest are scored by flightdelay.serving.predictor.Predictor
with the context its feature builder reads for that month (`month_context` of serving/features_<builder>.py: the
default data set's other tables, or the main table's earlier months), read through the same checks, so months the
model never saw score the same way as the test months.

Each month is one task on the engine of `compute` (flightdelay.core.engine): in this process one month after
another, or on a Dask cluster, where each worker verifies and loads the package itself and writes its months'
files; only counts and quarantine records come back. Either way the files are the same bytes.

Writes, atomically, `<out>/<YYYY-MM>.parquet` (each row's key columns, probability, label, context_fallback,
package_hash), `<out>/quarantine.parquet` (every refused row and why) and `<out>/summary.json` (rows in, scored,
quarantined and scored with the context fallback per month; the package's name and hash).
"""

from __future__ import annotations

import argparse
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from flightdelay.core.config import (
    ComputeParams,
    ConfigError,
    IngestParams,
    Params,
    Schema,
    TableSpec,
    ValidateParams,
    Window,
    load_params,
    load_schema,
)
from flightdelay.core.engine import engine, remove_partials, write_parquet_atomic
from flightdelay.core.errors import DataError, PipelineError
from flightdelay.core.files import atomic_dir, to_json, write_parquet_into
from flightdelay.core.layout import PARAMS_FILE
from flightdelay.data import quarantine
from flightdelay.release.package_format import PackageError
from flightdelay.release.record import CHANNELS, read_record, record_artifact, record_file
from flightdelay.serving.predictor import Predictor, input_problems, serving_builder
from flightdelay.stages.ingest import ingest_chunk, plan_files, read_part
from flightdelay.stages.validate import check_partition

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--package", help="a package directory, e.g. models/package/model-<hash>")
    which.add_argument("--stage", choices=CHANNELS, help="score with the package promoted to this release channel")
    parser.add_argument("--window", required=True, help="months to score, YYYY-MM..YYYY-MM (inclusive)")
    parser.add_argument("--raw", required=True, help="folder (or fsspec URL) with a folder of partitions per table")
    parser.add_argument("--out", required=True, type=Path, help="folder for <YYYY-MM>.parquet and summary.json")
    parser.add_argument("--params", default=PARAMS_FILE, help="params file: schema, ingest and validate checks")
    parser.add_argument("--repo", default=".", type=Path, help="repository root, for --stage (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")


# ------------------------------------------------------------------------------------------------ pure parts


def parse_window(text: str) -> Window:
    """'2013-11..2013-12' (or one month, '2014-01') as a Window; a clear error otherwise."""
    start, _, end = text.partition("..")
    try:
        return Window(start=start, end=end or start)
    except (ValueError, TypeError) as exc:
        first = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
        raise PipelineError(f"--window {text!r}: expected YYYY-MM..YYYY-MM with start <= end ({first})") from None


def package_in_channel(channel: str, repo: str | Path = ".") -> Path:
    """The package directory promoted to `channel` (registry/<channel>.json), which must be in the workspace."""
    promoted = read_record(record_file(channel, repo))
    if promoted is None:
        raise PipelineError(
            f"{record_file(channel, repo)}: no package is promoted to {channel}; promote one "
            f"(`python -m flightdelay promote {channel}`) or pass --package"
        )
    package = promoted.get("package") or {}
    path = Path(repo) / str(package.get("path", ""))
    if not package.get("name") or not path.is_dir():
        raise PipelineError(
            f"{channel} holds {package.get('name')} (version {promoted.get('version')}, commit "
            f"{str(promoted.get('commit'))[:12]}), which is not in this workspace at {path}; fetch it with "
            f"`dvc artifacts get . {record_artifact(record_file(channel, repo))} --stage {channel}` or pass --package"
        )
    return path


def scored_frame(rows: pd.DataFrame, predictions: pd.DataFrame, package_hash: str, keys: list[str]) -> pd.DataFrame:
    """The output rows of one month: each row's `keys` (its builder's key columns), the prediction and the
    package that made it."""
    out = rows[keys].reset_index(drop=True).copy()
    for column in ("probability", "label", "context_fallback"):
        out[column] = predictions[column].to_numpy()
    out["package_hash"] = package_hash
    return out


def refused_records(rows: pd.DataFrame, problems: pd.DataFrame, table: str) -> pd.DataFrame:
    """Quarantine records (flightdelay.data.quarantine) for the rows of `table` the package's input schema
    refuses."""
    bad = problems["field"].to_numpy() != ""
    held = []
    for (field, rule), group in problems[bad].groupby(["field", "rule"], sort=True):
        refused = rows.loc[group.index]
        held.append(quarantine.records(table, refused, str(field), f"input:{str(rule).split(':', 1)[0]}"))
    return quarantine.concat(held)


# ------------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Month:
    period: str
    rows_in: int
    valid: pd.DataFrame
    held: pd.DataFrame  # quarantine records


def read_month(raw: str, spec: TableSpec, period: str, ip: IngestParams, vp: ValidateParams) -> Month | None:
    """One month of a partitioned table through ingest's and validate's checks; None when there is no file."""
    root = f"{raw.rstrip('/')}/{spec.name}"
    parts = plan_files(root, spec, Window(start=period, end=period), ip.retry)
    if not parts:
        return None
    chunk = read_part(parts[0], ip.retry)
    typed, bad_types = ingest_chunk(chunk, spec, ip)
    valid, bad_rules = check_partition(typed, spec, chunk.source, period)
    n_in, n_bad = len(chunk.frame), len(typed) - len(valid)
    if typed.shape[0] and n_bad / len(typed) > vp.max_invalid_share:
        raise DataError(
            f"{chunk.source}: {n_bad} of {len(typed)} rows break the schema's rules, over "
            f"validate.max_invalid_share={vp.max_invalid_share:.1%}; see the quarantine records, fix the extract"
        )
    return Month(period, n_in, valid, quarantine.concat([bad_types, bad_rules]))


# ------------------------------------------------------------------------------------------------ scoring


# The package loaded in this process, by (path, hash): a run's months share one load (each Dask worker loads and
# verifies its own). An entry holds the bytes that hash was verified on, whatever the files on disk hold later.
_LOADED: dict[tuple[str, str], Predictor] = {}


def loaded_predictor(package: str, package_hash: str) -> Predictor:
    """The package whose hash the stage process verified, loaded (and verified again) once per process."""
    key = (package, package_hash)
    if key not in _LOADED:
        predictor = Predictor.load(package)
        if predictor.package_hash != package_hash:
            raise PackageError(
                f"{package}: its hash changed while scoring (now {predictor.package_hash[:12]}, "
                f"at the start {package_hash[:12]}); score again with a package that is not being replaced"
            )
        _LOADED.clear()
        _LOADED[key] = predictor
    return _LOADED[key]


@dataclass(frozen=True)
class ScoredMonth:
    """What a month's task sends back: counts and quarantine records, never the scores."""

    period: str
    counts: dict[str, int]
    held: pd.DataFrame  # quarantine records
    no_context: list[str]  # the context partitions ('table month') that were missing
    seconds: float


def score_month(
    period: str,
    *,
    package: str,
    package_hash: str,
    raw: str,
    schema: Schema,
    ingest: IngestParams,
    validate: ValidateParams,
    out_dir: str,
) -> ScoredMonth:
    """The engine's task: read one month of the package's main table and its context (the builder's
    month_context) through ingest's and validate's checks, score it with the package whose hash the stage process
    checked, write `<out_dir>/<period>.parquet`."""
    start = time.perf_counter()
    loaded = loaded_predictor(package, package_hash)
    table = loaded.table
    month = read_month(raw, schema.table(table), period, ingest, validate)
    if month is None:
        raise DataError(f"{raw}/{table}: no partition for {period}; nothing to score for that month")

    def read(name: str, when: str) -> pd.DataFrame | None:
        found = read_month(raw, schema.table(name), when, ingest, validate)
        return None if found is None else found.valid

    builder = serving_builder(loaded.builder)
    context, no_context = builder.month_context(read, period, month.valid, table)
    predictor = loaded.with_context(context)
    rows = month.valid
    problems = input_problems(rows, predictor.input_schema)
    ok = problems["field"].to_numpy() == ""
    refused = refused_records(rows, problems, table)
    predictions = predictor.predict(rows[ok], validate=False)
    scored = scored_frame(rows[ok], predictions, predictor.package_hash, builder.key_columns(predictor.manifest))
    write_parquet_atomic(scored, f"{out_dir}/{period}.parquet")
    counts = {
        "rows_in": month.rows_in,
        "scored": len(scored),
        "quarantined": month.rows_in - len(rows) + int((~ok).sum()),
        "context_fallback": int(scored["context_fallback"].sum()),
    }
    held = quarantine.concat([month.held, refused])
    return ScoredMonth(period, counts, held, no_context, time.perf_counter() - start)


def score(
    package: str | Path,
    *,
    raw: str,
    window: Window,
    out_dir: str | Path,
    schema: Schema,
    ingest: IngestParams,
    validate: ValidateParams,
    compute: ComputeParams | None = None,
) -> dict[str, Any]:
    """Score every month of `window`; returns the summary (also written to <out>/summary.json)."""
    start = time.perf_counter()
    predictor = Predictor.load(package)  # verified at every run, whatever an earlier run loaded
    predictor.canary()
    _LOADED.clear()
    _LOADED[(str(package), predictor.package_hash)] = predictor
    log.info("score: %s loaded and its canary passed (%.1fs)", predictor.name, time.perf_counter() - start)
    summary: dict[str, Any] = {
        "package": {"name": predictor.name, "hash": predictor.package_hash, "path": str(package)},
        "window": {"start": window.start, "end": window.end},
        "months": {},
    }
    with atomic_dir(out_dir) as tmp, engine(compute or ComputeParams()) as session:
        task = functools.partial(
            score_month,
            package=str(package),
            package_hash=predictor.package_hash,
            raw=raw,
            out_dir=str(tmp.resolve()),
        )
        shared = {"schema": schema, "ingest": ingest, "validate": validate}
        done = session.map(task, window.months(), name="score", shared=shared)
        for missing in sorted({p for d in done for p in d.no_context}):
            log.warning("score: no %s partition: rows whose context it holds get the context fallback", missing)
        for month in done:
            summary["months"][month.period] = month.counts
            log.info(
                "score: %s: %d rows in, %d scored, %d quarantined, %d with the context fallback (%.2fs)",
                month.period,
                month.counts["rows_in"],
                month.counts["scored"],
                month.counts["quarantined"],
                month.counts["context_fallback"],
                month.seconds,
            )
        totals = {k: sum(m[k] for m in summary["months"].values()) for k in ("rows_in", "scored", "quarantined")}
        totals["context_fallback"] = sum(m["context_fallback"] for m in summary["months"].values())
        summary["total"] = totals
        remove_partials(tmp)
        write_parquet_into(quarantine.concat([month.held for month in done]), tmp / "quarantine.parquet")
        (tmp / "summary.json").write_text(to_json(summary), encoding="utf-8")
    log.info("score: %s", totals)
    return summary


def run(args: argparse.Namespace) -> Path:
    try:
        params: Params = load_params(args.params)
        schema = load_schema(params.data.schema)
    except ConfigError as exc:
        raise PipelineError(str(exc).splitlines()[0]) from None
    package = Path(args.package) if args.package else package_in_channel(args.stage, args.repo)
    score(
        package,
        raw=str(args.raw),
        window=parse_window(args.window),
        out_dir=args.out,
        schema=schema,
        ingest=params.ingest,
        validate=params.validate,
        compute=params.compute,
    )
    return Path(args.out)
