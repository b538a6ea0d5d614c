"""The compute engine: the same results, in the same order, locally and on a 2-worker Dask LocalCluster;
a scheduler that cannot be reached fails fast, naming the address; a worker killed mid-task is retried."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.core import engine
from flightdelay.core.config import ComputeParams
from flightdelay.core.engine import map_batches, map_partitions, remove_partials, write_parquet_atomic
from flightdelay.core.errors import DataError, PipelineError
from flightdelay.core.files import write_parquet

LOCAL = ComputeParams(engine="local", local_workers=1)  # one after another, in this process
CLUSTER = ComputeParams(engine="dask", workers=2, threads_per_worker=1)


def summarise(item: tuple[int, int]) -> dict[str, object]:
    """A pure per-partition function: a small result from a seeded partition."""
    seed, rows = item
    values = np.random.default_rng(seed).normal(size=rows)
    return {"seed": seed, "rows": rows, "sum": float(values.sum()), "pid": os.getpid()}


def die_once(item: tuple[str, int]) -> int:
    """Kill the worker process running it the first time (a marker file records that it did)."""
    marker, value = item
    if value == 2 and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return value * 10


def refuse_negative(value: int) -> int:
    if value < 0:
        raise ValueError(f"item {value} is negative")
    return value


def add_offset(value: int, *, offset: int, table: pd.DataFrame) -> int:
    return value + offset + len(table)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_local_engine_maps_in_order_in_this_process():
    items = [(seed, 10 + seed) for seed in range(5)]
    results = map_partitions(summarise, items, LOCAL, name="t")
    assert [r["seed"] for r in results] == [0, 1, 2, 3, 4]
    assert {r["pid"] for r in results} == {os.getpid()}


def slow_then_fast(item: tuple[int, float]) -> tuple[int, str]:
    """Sleeps, so that with threads a later item finishes before an earlier one; reports its thread."""
    value, seconds = item
    time.sleep(seconds)
    return value, threading.current_thread().name


def test_local_threads_run_items_at_once_and_keep_their_order():
    threaded = ComputeParams(engine="local", local_workers=2, local_pool="thread")
    items = [(0, 0.3), (1, 0.0), (2, 0.0), (3, 0.0)]
    results = map_partitions(slow_then_fast, items, threaded, name="t")
    assert [value for value, _ in results] == [0, 1, 2, 3]
    threads = {thread for _, thread in results}
    assert len(threads) == 2 and all(t.startswith("t_") for t in threads)  # item 0 held one thread meanwhile
    one = map_partitions(slow_then_fast, items, ComputeParams(engine="local", local_workers=1), name="t")
    assert {thread for _, thread in one} == {threading.current_thread().name}


def test_local_threads_raise_the_first_failing_item_in_order():
    threaded = ComputeParams(engine="local", local_workers=2, local_pool="thread")
    with pytest.raises(ValueError, match="item -1 is negative"):
        map_partitions(refuse_negative, [3, -1, -2], threaded, name="t")
    assert map_partitions(refuse_negative, [3, 1, 2], threaded, name="t") == [3, 1, 2]


PROCESSES = ComputeParams(engine="local", local_workers=2, local_pool="process")


def test_local_processes_run_items_in_forked_workers_and_keep_their_order(caplog):
    items = [(seed, 10 + seed) for seed in range(6)]
    with caplog.at_level(logging.INFO, logger="flightdelay.core.engine"):
        results = map_partitions(summarise, items, PROCESSES, name="t")
    assert results == [{**summarise(item), "pid": r["pid"]} for item, r in zip(items, results, strict=True)]
    pids = {r["pid"] for r in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    logged = [r.message for r in caplog.records if r.message.startswith("compute: peak RSS MiB: this process")]
    assert len(logged) == 1 and len(logged[0].split("workers ")[1].split()) == len(pids)


def test_local_processes_raise_the_first_failing_item_in_order_with_its_own_type():
    with pytest.raises(ValueError, match="item -1 is negative"):
        map_partitions(refuse_negative, [3, -1, -2], PROCESSES, name="t")
    with pytest.raises(DataError, match=r"row 7 of flights/2013-01\.csv"):
        map_partitions(refuse_row, [1, 7, 9], PROCESSES, name="t")
    assert map_partitions(refuse_negative, [3, 1, 2], PROCESSES, name="t") == [3, 1, 2]


def die(value: int) -> int:
    if value == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def test_a_local_worker_killed_mid_task_fails_the_stage_with_what_to_do():
    with pytest.raises(PipelineError, match=r"a worker process died before it returned.*compute\.local_workers lower"):
        map_partitions(die, [1, 2, 3], PROCESSES, name="ingest")


def refuse_row(value: int) -> int:
    if value == 7:
        raise DataError(f"row {value} of flights/2013-01.csv: not a number")
    return value


def test_local_processes_fall_back_to_threads_where_fork_is_not_safe(monkeypatch, caplog):
    monkeypatch.setattr(engine.sys, "platform", "darwin")
    with caplog.at_level(logging.INFO, logger="flightdelay.core.engine"):
        results = map_partitions(summarise, [(1, 5), (2, 5), (3, 5)], PROCESSES, name="t")
    assert {r["pid"] for r in results} == {os.getpid()}
    assert any("on Linux only; using threads here" in r.message for r in caplog.records)


def note_start_file(item: tuple[str, int, float]) -> int:
    folder, value, seconds = item
    Path(folder, f"{value:03d}").touch()
    time.sleep(seconds)
    return value


def test_local_processes_keep_few_items_started_ahead(tmp_path):
    items = [(str(tmp_path), 0, 0.5), *((str(tmp_path), i, 0.0) for i in range(1, 20))]
    batches = map_batches(note_start_file, items, PROCESSES, name="t", size=1)
    assert next(batches) == [0]
    assert 4 <= len(list(tmp_path.iterdir())) <= 5
    assert [value for batch in batches for value in batch] == list(range(1, 20))


STARTED: list[int] = []


def note_start(item: tuple[int, float]) -> int:
    value, seconds = item
    STARTED.append(value)
    time.sleep(seconds)
    return value


def test_local_batches_keep_few_items_started_ahead_and_go_on_while_the_caller_folds():
    """With 2 threads at most 4 items are started ahead of the result handed over next (one more is submitted as
    it is handed over), and the threads go on with the next items while the caller holds a batch."""
    STARTED.clear()
    items = [(0, 0.3), *((i, 0.0) for i in range(1, 20))]
    batches = map_batches(
        note_start, items, ComputeParams(engine="local", local_workers=2, local_pool="thread"), name="t", size=1
    )
    assert next(batches) == [0]
    assert sorted(STARTED) == list(range(len(STARTED))) and 4 <= len(STARTED) <= 5
    time.sleep(0.2)  # the caller folding its batch: the next items run meanwhile
    assert len(STARTED) == 5
    assert [value for batch in batches for value in batch] == list(range(1, 20))


def test_local_batches_keep_a_batch_submitted_ahead_while_the_caller_folds_one():
    STARTED.clear()
    items = [(0, 0.3), *((i, 0.0) for i in range(1, 40))]
    batches = map_batches(note_start, items, ComputeParams(engine="local", local_pool="thread"), name="t", size=10)
    assert next(batches) == list(range(10))
    time.sleep(0.2)  # the caller folds the first batch: the second runs meanwhile, and nothing beyond it
    assert sorted(STARTED) == list(range(20))
    assert [value for batch in batches for value in batch] == list(range(10, 40))


def test_local_batches_raise_the_first_failing_item_and_start_no_more():
    STARTED.clear()
    items = [(0, 0.0), (-1, 0.0), *((i, 0.05) for i in range(1, 30))]

    def failing(item: tuple[int, float]) -> int:
        return refuse_negative(note_start(item))

    threaded = ComputeParams(engine="local", local_workers=2, local_pool="thread")
    with pytest.raises(ValueError, match="item -1 is negative"):
        list(map_batches(failing, items, threaded, name="t", size=3))
    assert len(STARTED) <= 6  # the items started before the failure was handed over, none after


def test_shared_inputs_reach_every_task():
    shared = {"offset": 10, "table": pd.DataFrame({"a": range(5)})}
    assert map_partitions(add_offset, [1, 2, 3], LOCAL, name="t", shared=shared) == [16, 17, 18]


def test_the_local_engine_does_not_import_dask():
    import subprocess
    import sys

    code = (
        "import sys; from flightdelay.core.engine import map_partitions; "
        "from flightdelay.core.config import ComputeParams; "
        "map_partitions(abs, [-1], ComputeParams(), name='t'); "
        "print('distributed' in sys.modules, 'dask' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_an_atomic_task_write_is_the_same_bytes_as_the_stage_write(tmp_path):
    frame = pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64"), "b": ["x", "y", None]})
    write_parquet(frame, tmp_path / "stage.parquet")
    write_parquet_atomic(frame, str(tmp_path / "out" / "task.parquet"))
    assert (tmp_path / "out" / "task.parquet").read_bytes() == (tmp_path / "stage.parquet").read_bytes()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["task.parquet"]


def test_partial_writes_left_by_killed_tasks_are_removed(tmp_path):
    (tmp_path / "t").mkdir()
    kept = tmp_path / "t" / "2013-01.parquet"
    kept.write_bytes(b"done")
    stale = tmp_path / "t" / f"2013-02.parquet.abc{engine.TEMP_SUFFIX}"
    stale.write_bytes(b"half")
    assert remove_partials(tmp_path) == [stale]
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["2013-01.parquet"]


def test_an_unreachable_scheduler_fails_fast_naming_the_address(monkeypatch):
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 1)
    address = f"tcp://127.0.0.1:{closed_port()}"
    with pytest.raises(PipelineError) as err:
        map_partitions(summarise, [(1, 2)], ComputeParams(engine="dask", scheduler=address), name="t")
    message = str(err.value)
    assert address in message and "compute.scheduler" in message
    assert "dask scheduler" in message and "compute.engine: local" in message


def test_the_scheduler_address_can_come_from_the_environment(monkeypatch):
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 1)
    address = f"tcp://127.0.0.1:{closed_port()}"
    monkeypatch.setenv(engine.ADDRESS_ENV, address)
    assert engine.scheduler_address(ComputeParams(engine="dask")) == address
    assert engine.scheduler_address(ComputeParams(engine="dask", scheduler="tcp://other:1")) == "tcp://other:1"
    with pytest.raises(PipelineError, match=f"{address} \\(DASK_SCHEDULER_ADDRESS\\)"):
        map_partitions(summarise, [(1, 2)], ComputeParams(engine="dask"), name="t")


@pytest.mark.slow
def test_a_local_cluster_gives_the_local_results_in_order(caplog):
    items = [(seed, 1000 + seed) for seed in range(8)]
    local = map_partitions(summarise, items, LOCAL, name="t")
    caplog.set_level(logging.INFO)
    cluster = map_partitions(summarise, items, CLUSTER, name="t")
    # the stage log says where the work ran, and none of Dask's own INFO lines (workers starting, state...)
    assert any(r.getMessage().startswith("compute: LocalCluster of 2") for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("distributed") and r.levelno < 30] == []
    assert [{k: v for k, v in r.items() if k != "pid"} for r in cluster] == [
        {k: v for k, v in r.items() if k != "pid"} for r in local
    ]
    assert os.getpid() not in {r["pid"] for r in cluster}  # the work ran in the worker processes
    shared = {"offset": 10, "table": pd.DataFrame({"a": range(5)})}
    assert map_partitions(add_offset, [1, 2, 3], CLUSTER, name="t", shared=shared) == [16, 17, 18]


@pytest.mark.slow
def test_passes_of_one_stage_share_one_cluster():
    items = [(seed, 1000 + seed) for seed in range(8)]
    with engine.engine(CLUSTER) as session:
        first = session.map(summarise, items, name="pass1")
        second = session.map(add_offset, [1, 2], name="pass2", shared={"offset": 1, "table": pd.DataFrame()})
        third = session.map(summarise, items, name="pass3")
    assert second == [2, 3]
    assert [r["sum"] for r in third] == [r["sum"] for r in first]
    # two worker processes served every pass: a cluster per pass would have started new ones
    assert len({r["pid"] for r in first + third}) <= CLUSTER.workers


@pytest.mark.slow
def test_a_task_whose_worker_is_killed_is_retried(tmp_path):
    marker = str(tmp_path / "killed")
    items = [(marker, value) for value in range(4)]
    assert map_partitions(die_once, items, CLUSTER, name="t") == [0, 10, 20, 30]
    assert Path(marker).exists()  # the worker really was killed once


@pytest.mark.slow
def test_a_failing_task_raises_its_own_error_first_in_order():
    with pytest.raises(ValueError, match="item -1 is negative"):
        map_partitions(refuse_negative, [3, -1, -2], CLUSTER, name="t")
