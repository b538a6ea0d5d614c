"""ingest, validate and features on a 2-worker Dask LocalCluster on 127.0.0.1 write the same bytes as the local engine:
every partition file, the quarantine records in the same order, counts, profile and summary; also when a worker
is killed mid-write, and a scheduler that cannot be reached stops the stage with one line naming it."""

from __future__ import annotations

import contextlib
import shutil
import socket
from pathlib import Path

import dask.config
import pandas as pd
import pytest
import yaml

from flightdelay.cli import main
from flightdelay.core.engine import Engine
from flightdelay.stages import features as features_stage
from tests.data.test_corpus import CORPUS, workspace
from tests.integration import dask_kill
from tests.stage_cmd import stage_argv

OUTPUTS = ["data/ingested", "data/validated", "data/quarantine", "data/processed", "reports"]
STAGES = ("ingest", "validate", "features")


def three_months(root: Path) -> Path:
    """The corpus workspace widened to three months: January with a value ingest refuses (wrong_type.csv),
    February with one validate refuses (out_of_range.csv), March the valid base rows."""
    flights = root / "raw" / "flights"
    for month, case in ((2, "out_of_range.csv"), (3, None)):
        frame = pd.read_csv(
            CORPUS / "cases" / case if case else CORPUS / "base" / "flights" / "2013-01.csv",
            dtype=str,
            keep_default_na=False,
        )
        frame["month"] = str(month)
        frame["time_hour"] = frame["time_hour"].str.replace("2013-01-", f"2013-{month:02d}-", regex=False)
        frame.to_csv(flights / f"2013-{month:02d}.csv", index=False)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ingest"]["window"] = {"start": "2013-01", "end": "2013-03"}
    params["features"]["split"] = {
        "train": {"start": "2013-01", "end": "2013-02"},
        "test": {"start": "2013-03", "end": "2013-03"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def set_compute(root: Path, **compute: object) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["compute"].update(compute)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_data_stages(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    for stage in STAGES:
        assert main(stage_argv(stage)) == 0, stage


def files(root: Path) -> dict[str, bytes]:
    found = {}
    for top in OUTPUTS:
        for path in sorted((root / top).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


@pytest.fixture
def twins(tmp_path: Path) -> tuple[Path, Path]:
    local = three_months(workspace(tmp_path / "local", "wrong_type.csv", {}))
    cluster = tmp_path / "dask"
    shutil.copytree(local, cluster)
    set_compute(cluster, engine="dask", workers=2, threads_per_worker=1)
    return local, cluster


def assert_same_outputs(local: Path, cluster: Path) -> None:
    expected, got = files(local), files(cluster)
    assert sorted(got) == sorted(expected)
    assert [name for name in expected if got[name] != expected[name]] == []
    quarantined = pd.read_parquet(local / "data/quarantine/ingest.parquet")
    assert len(quarantined) == 1  # the comparison covers real quarantine records, not only empty files
    assert len(pd.read_parquet(local / "data/quarantine/validate.parquet")) == 1
    assert {
        "data/ingested/flights/2013-03.parquet",
        "data/validated/flights/2013-03.parquet",
        "data/processed/train/2013-02.parquet",
        "data/processed/test/2013-03.parquet",
    } <= set(expected)


def test_features_maps_both_passes_through_one_engine(twins, monkeypatch):
    """Pass 1 (the history sums) and pass 2 (each month with history) are each one task per month on the
    stage's engine, entered once: no month is built in the stage process outside it."""
    local, _ = twins
    sessions: list[list[tuple[str, list[str]]]] = []
    real = features_stage.engine

    @contextlib.contextmanager
    def recording(compute):  # type: ignore[no-untyped-def]
        with real(compute) as session:
            calls: list[tuple[str, list[str]]] = []
            sessions.append(calls)
            yield Recording(session, calls)

    monkeypatch.setattr(features_stage, "engine", recording)
    run_data_stages(local, monkeypatch)
    assert sessions == [[("features-history", ["2013-01", "2013-02"]), ("features", ["2013-01", "2013-02", "2013-03"])]]


class Recording(Engine):
    def __init__(self, inner: Engine, calls: list[tuple[str, list[str]]]) -> None:
        super().__init__(inner.client)
        self.calls = calls

    def map(self, fn, items, *, name, shared=None):  # type: ignore[no-untyped-def]
        self.calls.append((name, [item[0] for item in items]))
        return super().map(fn, items, name=name, shared=shared)

    def batches(self, fn, items, *, name, size, shared=None):  # type: ignore[no-untyped-def]
        self.calls.append((name, [item[0] for item in items]))  # one call, however many batches it hands over
        yield from Engine(self.client, self.workers, self.pool).batches(fn, items, name=name, size=size, shared=shared)


@pytest.mark.slow
def test_a_local_cluster_writes_the_same_bytes_as_the_local_engine(twins, monkeypatch):
    local, cluster = twins
    run_data_stages(local, monkeypatch)
    run_data_stages(cluster, monkeypatch)
    assert_same_outputs(local, cluster)


@pytest.mark.slow
def test_a_worker_killed_mid_write_is_retried_and_the_outputs_are_the_same(twins, monkeypatch, tmp_path):
    local, cluster = twins
    run_data_stages(local, monkeypatch)
    marker = tmp_path / "killed"
    monkeypatch.setenv(dask_kill.MARKER_ENV, str(marker))
    with dask.config.set({"distributed.worker.preload": [dask_kill.__name__]}):
        run_data_stages(cluster, monkeypatch)
    assert marker.exists()  # a worker really died writing flights/2013-02.parquet
    assert_same_outputs(local, cluster)  # and its half-written file is not in the output


def test_an_unreachable_scheduler_stops_the_stage_with_one_line(twins, monkeypatch, capfd):
    _, cluster = twins
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    set_compute(cluster, scheduler=address)
    monkeypatch.setattr("flightdelay.core.engine.CONNECT_TIMEOUT_S", 1)
    monkeypatch.chdir(cluster)
    assert main(stage_argv("ingest")) == 1
    err = capfd.readouterr().err
    assert f"compute: no Dask scheduler answers at {address} (compute.scheduler)" in err
    assert not (cluster / "data" / "ingested").exists()
