"""Backfill over more than twelve months: ingest, validate and features on a two-year window, in-process.

Fast: `features` alone on the same month of two years (2013-05 and 2014-05), both kept and both used. Slow
(marked): the whole two-year window from raw CSV through ingest, validate and features.

The second year is generated from the first (benchmarks/generate.py `years=2`: 2013's rows with the year changed
and seeded noise on delays and weather). Every row of both years is accounted for, 2013-05 and 2014-05 are two
partitions that both reach the split, and widening the window from one year to two leaves every 2013 partition
of data/ingested and data/validated byte for byte as it was (docs/pipeline.md, "Widening the window").
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest
from benchmarks.generate import generate

from flightdelay.cli import main
from flightdelay.core.config import load_schema, parse_params
from flightdelay.core.errors import DataError
from flightdelay.core.files import partition_files, read_json, read_parquet, write_parquet
from flightdelay.stages import features
from flightdelay.stages.evaluate import row_counts
from flightdelay.stages.ingest import coerce_frame, with_lineage
from flightdelay.stages.raw import split_by_month, to_csv_text
from tests.bundled import bundled
from tests.default_params import default_params, write_params
from tests.stage_cmd import stage_argv

REPO = Path(__file__).resolve().parents[2]
DAYS = ["15"]  # one day of each month of 2013 keeps the run small; every month is there


def two_mays(root: Path) -> Path:
    """A validated folder with 2013-05 (one day of the bundled flights and weather) and the same rows as 2014-05."""
    schema = load_schema(REPO / "config" / "schema.yaml")
    for table in ("flights", "weather"):
        spec = schema.table(table)
        raw = bundled(table)
        may = pd.read_csv(io.StringIO(to_csv_text(raw[(raw["month"] == "5") & (raw["day"] == "15")])), dtype=str)
        for year in ("2013", "2014"):
            rows = may.assign(year=year, time_hour=year + may["time_hour"].str[4:])
            period = f"{year}-05"
            typed, _ = coerce_frame(with_lineage(rows, period), spec, period)
            write_parquet(typed, root / table / f"{period}.parquet")
    planes = pd.read_csv(io.StringIO(to_csv_text(bundled("planes"))), dtype=str)
    typed, _ = coerce_frame(with_lineage(planes, "planes"), schema.table("planes"), "planes")
    write_parquet(typed, root / "planes.parquet")
    return root


def test_the_same_month_of_two_years_is_two_partitions_in_features(tmp_path):
    validated = two_mays(tmp_path / "validated")
    split = {"train": {"start": "2013-05", "end": "2013-05"}, "test": {"start": "2014-05", "end": "2014-05"}}
    params = parse_params(default_params({"features.split": split}))
    out = tmp_path / "processed"
    features.run(params.features, params.train, params.dataset, params.compute, in_dir=validated, out_dir=out)
    train = read_parquet(out / "train" / "2013-05.parquet", columns=["year", "month"])
    test = read_parquet(out / "test" / "2014-05.parquet", columns=["year", "month"])
    assert set(train["year"]) == {2013}
    assert set(test["year"]) == {2014}
    counts = read_json(out / "counts.json")
    rows_in = sum(len(read_parquet(validated / "flights" / f"{y}-05.parquet")) for y in (2013, 2014))
    assert counts["rows_in"] == rows_in
    assert counts["rows_unused_months"] == 0
    assert counts["train"] == len(train)
    assert counts["test"] == len(test)
    assert counts["train"] + counts["test"] + counts["rows_dropped_no_arrival"] == rows_in


@pytest.fixture(scope="module")
def raw_two_years(tmp_path_factory) -> Path:
    """A raw folder as the raw stage writes it, with 2013 (one day a month) and a generated 2014."""
    tmp = tmp_path_factory.mktemp("raw")
    schema = load_schema(REPO / "config" / "schema.yaml")
    one_year = tmp / "2013"
    for name, spec in schema.tables.items():
        frame = bundled(name)
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


@pytest.mark.slow  # ingest and validate of 24 months, twice: about 20-30 s on two cores
def test_generated_raw_has_both_years(raw_two_years):
    names = sorted(f.stem for f in (raw_two_years / "flights").glob("*.csv"))
    assert len(names) == 24
    assert names[0] == "2013-01"
    assert names[-1] == "2014-12"


@pytest.mark.slow  # ingest and validate of 24 months, twice: about 20-30 s on two cores
def test_every_row_of_both_years_is_accounted_for(runs, raw_two_years):
    root = runs["two"]
    data = root / "data"
    rows = row_counts(
        read_json(data / "ingested" / "counts.json"),
        read_json(data / "validated" / "counts.json"),
        read_json(data / "processed" / "counts.json"),
        "flights",
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


@pytest.mark.slow  # ingest and validate of 24 months, twice: about 20-30 s on two cores
def test_the_same_month_of_two_years_are_two_partitions_both_used(runs):
    train = runs["two"] / "data" / "processed" / "train"
    may_2013 = read_parquet(train / "2013-05.parquet", columns=["year", "month", "late"])
    may_2014 = read_parquet(train / "2014-05.parquet", columns=["year", "month", "late"])
    assert len(may_2013) > 0
    assert len(may_2014) > 0
    assert set(may_2013["year"]) == {2013}
    assert set(may_2014["year"]) == {2014}
    assert set(may_2013["month"]) == set(may_2014["month"]) == {5}


@pytest.mark.slow  # ingest and validate of 24 months, twice: about 20-30 s on two cores
def test_widening_the_window_keeps_the_bytes_of_every_2013_partition(runs):
    for folder in ("ingested", "validated"):
        for table in ("flights", "weather"):
            one = digests(runs["one"] / "data" / folder / table)
            two = digests(runs["two"] / "data" / folder / table)
            assert len(one) == 12, (folder, table)
            assert {k: v for k, v in two.items() if k.startswith("2013-")} == one, (folder, table)
            assert sum(k.startswith("2014-") for k in two) == 12, (folder, table)


@pytest.mark.slow  # ingest and validate of 24 months, twice: about 20-30 s on two cores
def test_rolling_split_across_the_year_boundary(runs, tmp_path):
    params = parse_params(
        default_params(
            {"features.split": {"train": {"rolling_months": 3}, "test": {"start": "2014-01", "end": "2014-01"}}}
        )
    )
    out = tmp_path / "processed"
    features.run(
        params.features,
        params.train,
        params.dataset,
        params.compute,
        in_dir=runs["two"] / "data" / "validated",
        out_dir=out,
    )
    assert [p.stem for p in partition_files(out / "train")] == ["2013-10", "2013-11", "2013-12"]
    assert [p.stem for p in partition_files(out / "test")] == ["2014-01"]
    counts = read_json(out / "counts.json")
    validated = read_json(runs["two"] / "data" / "validated" / "counts.json")["flights"]["rows_passed"]
    assert counts["rows_in"] == validated
    assert (
        counts["train"] + counts["test"] + counts["rows_unused_months"] + counts["rows_dropped_no_arrival"] == validated
    )


@pytest.mark.slow  # ingest and validate of 24 months, twice: about 20-30 s on two cores
def test_split_months_outside_the_partitions_are_an_error_naming_them(runs, tmp_path):
    params = parse_params(
        default_params(
            {"features.split": {"train": {"rolling_months": 3}, "test": {"start": "2013-02", "end": "2013-02"}}}
        )
    )
    validated = runs["two"] / "data" / "validated"
    with pytest.raises(DataError) as err:
        features.run(
            params.features,
            params.train,
            params.dataset,
            params.compute,
            in_dir=validated,
            out_dir=tmp_path / "processed",
        )
    assert str(err.value) == (
        f"features: months 2012-11, 2012-12 of features.split are not in {validated / 'flights'} "
        "(it has 24 months, 2013-01 to 2014-12): ingest.window leaves them out, or the raw data has no file for "
        "them (ingest logs each month of the window without one); add the files, widen ingest.window or change "
        "features.split, then `dvc repro`"
    )
    assert not (tmp_path / "processed").exists()
