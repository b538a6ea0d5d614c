"""Faults: transient source errors are retried (and only those), SQL sources, training that does not
converge, and the JSON-lines stage log."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import yaml
from fsspec.implementations.memory import MemoryFileSystem

from flightdelay.cli import main
from flightdelay.core.config import RetryParams
from flightdelay.core.errors import DataError
from flightdelay.core.files import write_parquet
from flightdelay.data.retry import is_transient, with_retry
from flightdelay.stages.features import feature_spec
from tests.data.test_corpus import CORPUS, workspace
from tests.stage_cmd import stage_argv


class FlakyFS(MemoryFileSystem):
    """An in-memory filesystem whose reads fail with ConnectionError the first `failures` times per file."""

    protocol = "flaky"
    store: dict = {}  # noqa: RUF012 - fsspec's MemoryFileSystem keeps its files in a class attribute
    pseudo_dirs = [""]  # noqa: RUF012
    failures = 0
    error: type[Exception] = ConnectionError
    calls: dict[str, int] = {}  # noqa: RUF012

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(path.removeprefix("flaky://"))

    def _open(self, path, mode="rb", **kwargs):
        if "r" in mode:
            count = self.calls[path] = self.calls.get(path, 0) + 1
            if count <= self.failures:
                raise self.error(f"connection reset reading {path}")
        return super()._open(path, mode, **kwargs)


@pytest.fixture
def flaky(tmp_path, monkeypatch):
    """A workspace whose raw data lives on flaky://raw."""
    fsspec.register_implementation("flaky", FlakyFS, clobber=True)
    FlakyFS.store.clear()
    FlakyFS.pseudo_dirs[:] = [""]
    FlakyFS.calls.clear()
    fs = FlakyFS()
    for file in (CORPUS / "base").rglob("*"):
        if file.is_file():
            fs.pipe(f"/raw/{file.relative_to(CORPUS / 'base').as_posix()}", file.read_bytes())
    root = workspace(tmp_path, "bom.csv", {"data.raw_dir": "flaky://raw"})
    fs.pipe("/raw/flights/2013-01.csv", (CORPUS / "base" / "flights" / "2013-01.csv").read_bytes())
    monkeypatch.chdir(root)
    return root


def set_retry(root: Path, attempts: int) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ingest"]["retry"] = {"attempts": attempts, "initial_wait": 0.01, "max_wait": 0.02}
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_transient_read_errors_are_retried_and_logged(flaky, capfd, monkeypatch):
    monkeypatch.setattr(FlakyFS, "failures", 2)
    set_retry(flaky, 3)
    assert main(stage_argv("ingest")) == 0
    err = capfd.readouterr().err
    assert "retry 1/2 of reading flights/2013-01.csv" in err
    assert "retry 2/2 of reading flights/2013-01.csv" in err
    assert "ConnectionError" in err
    assert len(pd.read_parquet(flaky / "data" / "ingested" / "flights" / "2013-01.parquet")) == 40
    retries = [json.loads(line) for line in (flaky / "logs" / "ingest.log").read_text().splitlines()]
    assert sum("retry" in r["message"] for r in retries) == 2 * 5  # two retries for each of the five tables


def test_retries_are_bounded(flaky, capfd, monkeypatch):
    monkeypatch.setattr(FlakyFS, "failures", 10)
    set_retry(flaky, 2)
    assert main(stage_argv("ingest")) == 1
    err = capfd.readouterr().err
    assert "still failing after 2 attempts" in err
    assert "ingest.retry.attempts" in err
    assert not (flaky / "data" / "ingested").exists()


def test_permanent_errors_are_not_retried(flaky, capfd, monkeypatch):
    monkeypatch.setattr(FlakyFS, "failures", 1)
    monkeypatch.setattr(FlakyFS, "error", PermissionError)
    set_retry(flaky, 5)
    assert main(stage_argv("ingest")) == 2  # not a data problem: reported as unexpected, traceback in the log only
    err = capfd.readouterr().err
    assert "retry" not in err
    assert "PermissionError" in err and "Traceback" not in err
    assert "Traceback" in (flaky / "logs" / "ingest.log").read_text()


def test_is_transient():
    import sqlalchemy.exc as sa_exc

    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
    assert not is_transient(FileNotFoundError())
    assert not is_transient(ValueError())
    assert is_transient(sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    assert not is_transient(sa_exc.ProgrammingError("SELEC 1", {}, Exception("syntax error")))


def test_with_retry_gives_up_with_a_clear_error():
    calls = []

    def always_down():
        calls.append(1)
        raise ConnectionRefusedError("refused")

    with pytest.raises(DataError, match="still failing after 3 attempts"):
        with_retry("reading x", always_down, RetryParams(attempts=3, initial_wait=0.001, max_wait=0.001))
    assert len(calls) == 3


def test_sql_source_through_sqlalchemy(tmp_path, monkeypatch):
    """flights and planes from SQLite, one query per month for the partitioned table."""
    root = workspace(tmp_path, "bom.csv", {})
    db = tmp_path / "source.db"
    with sqlite3.connect(db) as conn:
        for table in ("flights", "planes"):
            path = CORPUS / "base" / ("flights/2013-01.csv" if table == "flights" else "planes.csv")
            pd.read_csv(path).to_sql(table, conn, index=False)
    params = yaml.safe_load((root / "params.yaml").read_text())
    url = f"sqlite:///{db}"
    params["ingest"]["sources"]["flights"] = {
        "kind": "sql",
        "url": url,
        "query": "SELECT * FROM flights WHERE year = :year AND month = :month",
    }
    params["ingest"]["sources"]["planes"] = {"kind": "sql", "url": url, "query": "SELECT * FROM planes"}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(root)
    assert main(stage_argv("ingest")) == 0
    assert main(stage_argv("validate")) == 0
    flights = pd.read_parquet(root / "data" / "validated" / "flights" / "2013-01.parquet")
    assert len(flights) == 40
    assert set(flights["_source"]) == {"sql:flights/2013-01"}
    assert str(flights["distance"].dtype) == "float64"
    counts = json.loads((root / "data" / "ingested" / "counts.json").read_text())
    assert counts["planes"]["rows_in"] == len(pd.read_csv(CORPUS / "base" / "planes.csv"))


def processed(root: Path, rows: int = 200) -> None:
    """A tiny feature table in data/processed, as the features stage writes it."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "dep_hour": rng.integers(5, 23, rows).astype("int16"),
            "distance": rng.uniform(100, 2500, rows),
            "carrier": pd.array(rng.choice(["AA", "UA", "DL"], rows), dtype="string"),
            "late": rng.integers(0, 2, rows).astype("int8"),
            "arr_delay": rng.normal(5, 30, rows),
        }
    )
    spec = feature_spec({"schedule": ["dep_hour"], "route": ["carrier", "distance"]}, {"classification": "late"})
    spec.save(root / "data" / "processed" / "feature_spec.json")
    write_parquet(frame, root / "data" / "processed" / "train" / "2013-01.parquet")


def train_params(root: Path, model: str, extra: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update(model=model, feature_groups=["schedule", "route"], **extra)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_training_that_never_converges_stops_with_diagnostics(tmp_path, monkeypatch, capfd):
    root = workspace(tmp_path, "bom.csv", {})
    processed(root)
    train_params(root, "logistic_regression", {"logistic_regression": {"max_iter": 1}})
    monkeypatch.chdir(root)
    assert main(stage_argv("train")) == 1
    err = capfd.readouterr().err
    assert "did not converge with seed 42 nor fallback seed 20130101" in err
    diagnostics = json.loads((root / "logs" / "train_diagnostics.json").read_text())
    assert diagnostics["rows"] == 200 and diagnostics["features"] == 3
    assert sum(diagnostics["target_balance"].values()) == 200
    assert [a["seed"] for a in diagnostics["attempts"]] == [42, 20130101]
    assert all(a["problems"] and np.isfinite(a["last_loss"]) for a in diagnostics["attempts"])
    assert not (root / "models" / "model.skops").exists()


@pytest.mark.slow  # fits two boosting models
def test_training_retries_once_with_the_fallback_seed(tmp_path, monkeypatch):
    from flightdelay.stages import train

    real = train.fit_once
    seeds = []

    def first_fails(X, y, tp, numeric, categorical, seed):
        seeds.append(seed)
        pipeline, problems, loss = real(X, y, tp, numeric, categorical, seed)
        return pipeline, (["ConvergenceWarning: simulated"] if len(seeds) == 1 else problems), loss

    monkeypatch.setattr(train, "fit_once", first_fails)
    root = workspace(tmp_path, "bom.csv", {})
    processed(root)
    train_params(root, "hist_gradient_boosting", {"hist_gradient_boosting": {"max_iter": 5}})
    monkeypatch.chdir(root)
    assert main(stage_argv("train")) == 0
    assert seeds == [42, 20130101]
    summary = json.loads((root / "models" / "train_summary.json").read_text())
    assert summary["fallback_used"] is True and summary["seed"] == 20130101


def test_stage_log_is_json_lines_with_times_rows_and_sizes(tmp_path, monkeypatch):
    root = workspace(tmp_path, "wrong_type.csv", {})
    monkeypatch.chdir(root)
    assert main(stage_argv("ingest")) == 0
    lines = [json.loads(line) for line in (root / "logs" / "ingest.log").read_text().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    end = lines[-1]
    assert end["event"] == "stage_end"
    assert end["started"] <= end["ended"]
    assert end["rows_quarantined"] == 1
    assert end["rows_in"] == end["rows_out"] + end["rows_quarantined"]
    assert set(end["inputs"]) == {"raw", "config/schema.yaml"}
    raw_files = [p for p in (root / "raw").rglob("*") if p.is_file()]
    assert end["inputs"]["raw"] == {"files": len(raw_files), "bytes": sum(p.stat().st_size for p in raw_files)}
    written = [p for p in (root / "data" / "ingested").rglob("*") if p.is_file()]
    assert end["outputs"]["data/ingested"] == {"files": len(written), "bytes": sum(p.stat().st_size for p in written)}
    quarantined = root / "data" / "quarantine" / "ingest.parquet"
    assert end["outputs"]["data/quarantine/ingest.parquet"] == {"files": 1, "bytes": quarantined.stat().st_size}
