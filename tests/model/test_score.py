"""Batch scoring (`flightdelay score`, flightdelay.serving.score) of raw monthly extracts with a package built from
the conftest's trained model: bad rows are quarantined with their reason and counted, the rest scored exactly as
the predictor scores them, a month the model never saw included."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.cli import main
from flightdelay.core.config import ComputeParams, load_schema, parse_params
from flightdelay.core.errors import PipelineError
from flightdelay.release.package_format import PackageError
from flightdelay.release.record import make_record
from flightdelay.serving.features_flights import ContextSource
from flightdelay.serving.predictor import Predictor
from flightdelay.serving.score import package_in_channel, parse_window, score, score_month
from flightdelay.stages.raw import split_by_month, to_csv_text
from tests.bundled import bundled
from tests.default_params import default_params
from tests.model.conftest import REPO

SCHEMA = load_schema(REPO / "config" / "schema.yaml")
PARAMS = parse_params(default_params())
DAYS = 5  # the first days of March: enough rows, and quick


def write_raw(root: Path, year: str = "2013", flight_months: tuple[str, ...] = ("2013-03",)) -> Path:
    """Raw extracts as the raw stage writes them: the first days of flights of `flight_months` (March), the
    weather of February and March (the year changed to `year`: a month the model never saw)."""
    for table, months in (("flights", tuple(flight_months)), ("weather", ("2013-02", "2013-03"))):
        (root / table).mkdir(parents=True, exist_ok=True)
        for period, text in raw_texts(table, months, year):
            (root / table / f"{period}.csv").write_text(text, encoding="utf-8")
    return root


@functools.cache
def raw_texts(table: str, months: tuple[str, ...], year: str) -> tuple[tuple[str, str], ...]:
    """(period, CSV text) of each month's extract, made once per process for each (table, months, year): reading
    the bundled flights table is most of a test here, and the texts are the same every time."""
    raw = bundled(table)
    raw = raw[(raw["year"] + "-" + raw["month"].str.zfill(2)).isin(months)]
    if table == "flights":
        raw = raw[raw["day"].astype(int) <= DAYS]
    raw = raw.assign(year=year, time_hour=raw["time_hour"].str.replace("2013-", f"{year}-", n=1, regex=False))
    return tuple((period, to_csv_text(rows)) for period, rows in split_by_month(raw, SCHEMA.table(table)))


def run_score(package: Path, raw: Path, out: Path, window: str, compute: ComputeParams | None = None) -> dict:
    return score(
        package,
        raw=str(raw),
        window=parse_window(window),
        out_dir=out,
        schema=SCHEMA,
        ingest=PARAMS.ingest,
        validate=PARAMS.validate,
        compute=compute,
    )


def test_bad_rows_are_quarantined_with_their_reason_and_the_others_scored(package, tmp_path):
    raw = write_raw(tmp_path / "raw")
    path = raw / "flights" / "2013-03.csv"
    lines = path.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    broken = {3: ("distance", "far"), 5: ("month", "4"), 8: ("dest", "XXX")}  # line number -> (column, value)
    for number, (column, value) in broken.items():
        fields = lines[number].rstrip("\n").split(",")
        fields[header.index(column)] = value
        lines[number] = ",".join(fields) + "\n"
    path.write_text("".join(lines))
    rows_in = len(lines) - 1

    summary = run_score(package, raw, tmp_path / "scores", "2013-03..2013-03")

    month = summary["months"]["2013-03"]
    held = pd.read_parquet(tmp_path / "scores" / "quarantine.parquet")
    reasons = {(int(r), c, rule) for r, c, rule in zip(held["row"], held["column"], held["rule"], strict=True)}
    assert {(3, "distance", "dtype:float"), (5, "month", "period:2013-03"), (8, "dest", "input:allowed")} <= reasons
    # besides the broken rows, only flights to destinations first served in March (never seen in training)
    assert {(c, rule) for _, c, rule in reasons - {(3, "distance", "dtype:float"), (5, "month", "period:2013-03")}} == {
        ("dest", "input:allowed")
    }
    assert month["rows_in"] == rows_in
    assert month["quarantined"] == len(held) < 20
    assert month["scored"] == rows_in - len(held)
    assert month["context_fallback"] == 0
    scores = pd.read_parquet(tmp_path / "scores" / "2013-03.parquet")
    assert len(scores) == month["scored"]
    assert set(scores.columns) >= {"year", "month", "day", "carrier", "flight", "origin", "probability", "label"}
    assert (scores["package_hash"] == summary["package"]["hash"]).all()
    assert summary["package"]["name"] == package.name
    assert json.loads((tmp_path / "scores" / "summary.json").read_text())["total"]["scored"] == month["scored"]


def test_batch_scores_equal_the_predictor_on_the_same_flights(package, trained, tmp_path):
    raw = write_raw(tmp_path / "raw")
    run_score(package, raw, tmp_path / "scores", "2013-03")
    scores = pd.read_parquet(tmp_path / "scores" / "2013-03.parquet")
    flights = pd.read_parquet(trained.validated / "flights" / "2013-03.parquet")
    flights = flights[flights["day"] <= DAYS].reset_index(drop=True)
    predictor = Predictor.load(package, ContextSource.from_validated(trained.validated, ["2013-03"]))
    mine = predictor.predict(flights, validate=False)
    keys = ["year", "month", "day", "carrier", "flight", "origin"]
    both = scores.merge(flights[keys].assign(expected=mine["probability"].to_numpy()), on=keys, validate="1:1")
    assert len(both) == len(scores) > 0.99 * len(flights)
    np.testing.assert_allclose(both["probability"], both["expected"], rtol=0, atol=1e-9)


def test_a_month_the_model_never_saw_is_scored(package, tmp_path):
    raw = write_raw(tmp_path / "raw", year="2014")
    summary = run_score(package, raw, tmp_path / "scores", "2014-03..2014-03")
    month = summary["months"]["2014-03"]
    assert month["scored"] > 0.99 * month["rows_in"]
    assert month["context_fallback"] < 0.01 * month["scored"]  # its own schedule and weather are the context
    scores = pd.read_parquet(tmp_path / "scores" / "2014-03.parquet")
    assert (scores["year"] == 2014).all()
    assert scores["probability"].between(0, 1).all()


@pytest.mark.slow
def test_a_dask_cluster_scores_the_months_into_the_same_bytes(package, tmp_path):
    """Each month is a task on a 2-worker LocalCluster, each worker verifying and loading the package itself:
    the same files as the local engine (each month's own schedule and weather are its context either way)."""
    raw = write_raw(tmp_path / "raw", flight_months=("2013-02", "2013-03"))
    local = run_score(package, raw, tmp_path / "local", "2013-02..2013-03")
    cluster = run_score(package, raw, tmp_path / "dask", "2013-02..2013-03", ComputeParams(engine="dask", workers=2))
    assert cluster == local
    assert local["months"]["2013-02"]["scored"] > 0
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == ["2013-02.parquet", "2013-03.parquet", "quarantine.parquet", "summary.json"]
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == names
    for name in names:
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_a_month_scored_with_another_package_hash_than_the_run_checked_is_refused(package, tmp_path):
    raw = write_raw(tmp_path / "raw")
    with pytest.raises(PackageError, match="its hash changed while scoring"):
        score_month(
            "2013-03",
            package=str(package),
            package_hash="0" * 64,
            raw=str(raw),
            schema=SCHEMA,
            ingest=PARAMS.ingest,
            validate=PARAMS.validate,
            out_dir=str(tmp_path / "out"),
        )
    assert not (tmp_path / "out").exists()


def test_a_month_without_a_partition_is_a_clear_error(package, tmp_path):
    raw = write_raw(tmp_path / "raw")
    with pytest.raises(PipelineError, match=r"flights: no partition for 2013-04"):
        run_score(package, raw, tmp_path / "scores", "2013-03..2013-04")
    assert not (tmp_path / "scores").exists()


@pytest.mark.parametrize("window", ["2013-13..2013-14", "2013-05..2013-03", "march"])
def test_a_bad_window_is_a_clear_error(window):
    with pytest.raises(PipelineError, match="--window"):
        parse_window(window)


def test_the_channel_must_hold_a_package_in_the_workspace(tmp_path):
    (tmp_path / "registry").mkdir()
    record = tmp_path / "registry" / "prod.json"
    record.write_text(json.dumps({"artifact": "flight-delay", "stage": "prod", "promoted": None}))
    with pytest.raises(PipelineError, match="no package is promoted to prod"):
        package_in_channel("prod", tmp_path)
    package = {"name": "model-0123456789abcdef", "path": "models/package/model-0123456789abcdef"}
    record.write_text(json.dumps(make_record("rain-tomorrow", "prod", "v0.0.1", "c" * 40, "t", package)))
    with pytest.raises(PipelineError, match=r"model-0123456789abcdef .* not in this workspace") as refused:
        package_in_channel("prod", tmp_path)
    assert "`dvc artifacts get . rain-tomorrow --stage prod`" in str(refused.value)  # the record's own name
    (tmp_path / package["path"]).mkdir(parents=True)
    assert package_in_channel("prod", tmp_path) == tmp_path / package["path"]


def test_the_command_has_help_and_refuses_without_a_package(capsys):
    with pytest.raises(SystemExit) as done:
        main(["score", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--package" in out and "--stage" in out and "--window" in out and "--raw" in out
    with pytest.raises(SystemExit) as refused:
        main(["score", "--window", "2013-03", "--raw", "x", "--out", "y"])
    assert refused.value.code == 2
    assert "one of the arguments --package --stage is required" in capsys.readouterr().err
