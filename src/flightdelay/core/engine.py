"""Run a stage's per-partition work locally or on a Dask cluster, with the same results in the same order.

A stage plans its partitions (small descriptions: paths, periods) and hands a pure, top-level function of one
partition to `map_partitions`. The function reads its input and writes its output itself (through fsspec, so
a worker on another machine can reach S3 as well as a shared disk) and returns only something small: counts,
quarantine records, profile partials. `map_partitions` returns those in partition order whichever engine runs
them, so the stage assembles identical outputs.

`compute.engine: local` calls the function on each partition on this machine: `map_partitions` and `map_batches`
(ingest, validate) in `compute.local_workers` worker processes forked from this one (or threads, `compute.local_pool`),
an `engine` session's passes (features) one after another in this process.
`compute.engine: dask` submits one task per partition to the scheduler named by `compute.scheduler` or the
DASK_SCHEDULER_ADDRESS environment variable, or to a LocalCluster of `compute.workers` processes on 127.0.0.1
when neither is set.
Dask retries a task whose worker dies (`distributed.scheduler.allowed-failures`), which is safe because a
task's writes are atomic and it returns its result rather than appending anywhere. Dask is imported only here,
and only for the dask engine.
"""

from __future__ import annotations

import collections
import contextlib
import io
import itertools
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import fsspec
import pandas as pd

from flightdelay.core.config import ComputeParams
from flightdelay.core.errors import PipelineError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
# How long to wait for a named scheduler before failing: long enough for a busy one, short enough to fail fast.
CONNECT_TIMEOUT_S = 5
TEMP_SUFFIX = ".part.tmp"


def scheduler_address(compute: ComputeParams) -> str | None:
    """The scheduler to use: the param, else the environment variable, else None (start a LocalCluster)."""
    return compute.scheduler or os.environ.get(ADDRESS_ENV) or None


def map_partitions(
    fn: Callable[..., R],
    items: Sequence[T],
    compute: ComputeParams,
    *,
    name: str,
    shared: Mapping[str, Any] | None = None,
) -> list[R]:
    """`[fn(item, **shared) for item in items]`, run by the configured engine; results in the order of `items`.

    `fn` must be a module-level function (or a functools.partial of one) so that a worker process can import
    it; `name` labels the tasks on the cluster (the stage's name). `shared` holds larger read-only inputs every
    task needs (lookup tables): the dask engine sends them to each worker once, not with every task. The first
    failing item (in order) raises its own exception, as the local engine would.
    """
    if compute.engine == "local" or not items:
        return Engine(None, workers=compute.local_workers, pool=compute.local_pool).map(
            fn, items, name=name, shared=shared
        )
    with engine(compute) as session:
        return session.map(fn, items, name=name, shared=shared)


def map_batches(
    fn: Callable[..., R],
    items: Sequence[T],
    compute: ComputeParams,
    *,
    name: str,
    size: int,
    shared: Mapping[str, Any] | None = None,
) -> Iterator[list[R]]:
    """`map_partitions` `size` items at a time on one engine (one cluster for them all), yielding each batch's
    results in order: a caller that folds each batch into a running result holds a batch or two of results, not
    every item's. The first failing item (in order) raises its own exception, as with `map_partitions`. The local
    engine's workers go on with the next batch while the caller folds one."""
    if compute.engine == "local" or not items:
        yield from Engine(None, compute.local_workers, compute.local_pool).batches(
            fn, items, name=name, size=size, shared=shared
        )
        return
    with engine(compute) as session:
        yield from session.batches(fn, items, name=name, size=size, shared=shared)


def _ordered(
    fn: Callable[..., R],
    items: Sequence[T],
    shared: Mapping[str, Any],
    workers: int,
    pool: str,
    name: str,
    ahead: int | None = None,
) -> Iterator[R]:
    """`fn(item, **shared)` of each item, yielded in the order of `items`: one after another in this thread, or on
    `workers` worker processes (`pool: process`) or threads, with at most `ahead` items (at least `2 * workers`;
    None: all of them) submitted beyond the one yielded next, so the workers go on while the consumer works on a
    result, and finished results wait for a slow consumer in bounded numbers. The first failing item (in order)
    raises its own exception, as one after another would, and the items not started yet are dropped. The
    functions write their own outputs atomically and return only their results, as on a cluster, so running them
    at once writes the same bytes (what it buys: docs/benchmarks.md, "Two partitions at once")."""
    if workers < 2 or len(items) < 2:
        yield from (fn(item, **shared) for item in items)
        return
    executor, processes = _executor(min(workers, len(items)), pool, name)
    peaks: dict[int, float] = {}  # worker process -> its peak RSS, as its latest task reported it

    def submit(item: T) -> Future[tuple[R, int, float]]:
        return executor.submit(_measured, fn, item, shared)

    waiting = iter(items)
    with executor:
        first = len(items) if ahead is None else max(ahead, 2 * workers)
        started = collections.deque(submit(item) for item in itertools.islice(waiting, first))
        try:
            while started:
                try:
                    result, pid, peak = started.popleft().result()
                except BrokenProcessPool as exc:  # a worker killed (out of memory, a signal): no result to raise
                    raise PipelineError(
                        f"{name}: a worker process died before it returned ({exc}); if it ran out of memory, set "
                        "compute.local_workers lower (1: every partition in the stage's own process)"
                    ) from None
                peaks[pid] = max(peak, peaks.get(pid, 0.0))
                started.extend(submit(item) for item in itertools.islice(waiting, 1))
                yield result
        finally:  # a failure, or a consumer that stopped: what has not started yet never will
            for future in started:
                future.cancel()
    if processes:
        log.info(
            "compute: peak RSS MiB: this process %.0f, workers %s",
            peak_rss_mib(),
            " ".join(f"{peaks[pid]:.0f}" for pid in sorted(peaks)),
        )


def _measured(fn: Callable[..., R], item: T, shared: Mapping[str, Any]) -> tuple[R, int, float]:
    """A local task: its result, the process that ran it and that process's peak RSS so far."""
    return fn(item, **shared), os.getpid(), peak_rss_mib()


def _executor(workers: int, pool: str, name: str) -> tuple[Executor, bool]:
    """A pool of `workers` processes forked from this one (`pool: process`, where the platform forks safely:
    Linux), else of threads; and whether it is processes. A forked worker starts with this process's imports and
    parsed params, so it costs milliseconds, not the second a new interpreter takes to import pandas."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if pool == "process":
        if sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods():
            return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")), True
        log.info("compute: local_pool: process forks worker processes on Linux only; using threads here")
    return ThreadPoolExecutor(workers, thread_name_prefix=name), False


class Engine:
    """One engine for the several passes of a stage (`features` maps its months twice): with Dask, every pass
    runs on the same client, so a LocalCluster is started (and its workers import pandas) once per stage."""

    def __init__(self, client: Any | None, workers: int = 1, pool: str = "process") -> None:
        self.client = client
        # the local engine: items run at once, each in a worker process (or thread) of its own
        self.workers, self.pool = workers, pool

    def map(
        self,
        fn: Callable[..., R],
        items: Sequence[T],
        *,
        name: str,
        shared: Mapping[str, Any] | None = None,
    ) -> list[R]:
        """`map_partitions` on this engine."""
        shared = dict(shared or {})
        if self.client is None or not items:
            return list(_ordered(fn, items, shared, self.workers, self.pool, name))
        from distributed import wait

        client = self.client
        keys = [f"{name}-{i:06d}-{uuid.uuid4().hex[:8]}" for i in range(len(items))]
        scattered = {k: client.scatter([v], broadcast=True, hash=False)[0] for k, v in shared.items()}
        futures = client.map(fn, list(items), key=keys, pure=False, **scattered)
        wait(futures)
        try:
            results = [future.result() for future in futures]
        except BaseException:
            client.cancel(futures)
            raise
        workers = client.run(peak_rss_mib)
        log.info(
            "compute: peak RSS MiB: this process %.0f, workers %s",
            peak_rss_mib(),
            " ".join(f"{workers[w]:.0f}" for w in sorted(workers)),
        )
        return results

    def batches(
        self,
        fn: Callable[..., R],
        items: Sequence[T],
        *,
        name: str,
        size: int,
        shared: Mapping[str, Any] | None = None,
    ) -> Iterator[list[R]]:
        """`map_batches` on this engine: the results of `size` items at a time, in order; locally the next item
        starts only when the caller asks for it (or, with workers, a batch ahead)."""
        if self.client is None:
            results = _ordered(fn, items, dict(shared or {}), self.workers, self.pool, name, size)
            while batch := list(itertools.islice(results, size)):
                yield batch
            return
        for start in range(0, len(items), size):
            yield self.map(fn, items[start : start + size], name=name, shared=shared)


@contextlib.contextmanager
def engine(compute: ComputeParams) -> Iterator[Engine]:
    """The configured engine for one stage: the local loop, or a Dask client (on the named scheduler, or on a
    LocalCluster started here and stopped on exit)."""
    if compute.engine == "local":
        yield Engine(None)
        return
    with dask_client(compute) as client:
        yield Engine(client)


def peak_rss_mib() -> float:
    """The peak resident memory of the calling process so far, in MiB (Linux and macOS units differ)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@contextlib.contextmanager
def dask_client(compute: ComputeParams) -> Iterator[Any]:
    """A distributed Client on the named scheduler, or on a LocalCluster started (and stopped) here."""
    # Dask's own INFO lines (workers starting, keys released) are noise in a stage log; warnings still show.
    # distributed sets levels on its modules' loggers when imported, so each of them is quietened, not only the
    # package's logger.
    import distributed  # noqa: F401  (creates the loggers)

    names = ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(max(levels[name], logging.WARNING))
    try:
        with _connect(compute) as client:
            yield client
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _connect(compute: ComputeParams) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    address = scheduler_address(compute)
    if address is None:
        with (
            LocalCluster(
                n_workers=compute.workers,
                threads_per_worker=compute.threads_per_worker,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # the scheduler's HTTP server (health, metrics) on a free port, not 8787: stages on one machine
                # (or a dashboard someone runs) must not collide
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.WARNING,
            ) as cluster,
            Client(cluster) as client,
        ):
            log.info("compute: LocalCluster of %d worker process(es) at %s", compute.workers, cluster.scheduler_address)
            yield client
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        source = "compute.scheduler" if compute.scheduler else ADDRESS_ENV
        raise PipelineError(
            f"compute: no Dask scheduler answers at {address} ({source}) within {CONNECT_TIMEOUT_S} s ({exc}); "
            f"start one there (`dask scheduler`), fix {source}, unset it to start a LocalCluster, "
            "or set compute.engine: local"
        ) from None
    with client:
        log.info("compute: Dask scheduler at %s, %d worker(s)", address, len(client.scheduler_info()["workers"]))
        yield client


# ------------------------------------------------------------------------------------------------ task I/O


PARQUET_COMPRESSION = "zstd"  # how write_parquet_atomic encodes every partition


def write_atomic(url: str, write: Callable[[Any], None]) -> None:
    """Call `write` on a binary file at a temporary name beside `url` (a path or fsspec URL inside a stage's atomic
    output directory), then rename it into place: a task killed mid-write leaves only a temporary file, which
    `remove_partials` deletes before the directory is swapped in."""
    fs, path = fsspec.core.url_to_fs(url)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
    try:
        with fs.open(tmp, "wb") as fh:
            write(fh)
        fs.mv(tmp, path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def write_parquet_atomic(frame: pd.DataFrame, url: str) -> None:
    """Write `frame` to `url` as Parquet, atomically (`write_atomic`). Identical frames give identical bytes.
    Encoded in memory and written in one call, as `write_table_atomic` explains."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow", compression=PARQUET_COMPRESSION)
    write_bytes_atomic(buffer.getbuffer(), url)


def write_table_atomic(table: pa.Table, url: str) -> None:
    """Write an Arrow table to `url` as Parquet, atomically, as `write_parquet_atomic` writes the frame pyarrow
    converts to `table` (pandas passes the compression, and nothing else, to `pyarrow.parquet.write_table`).
    The file is encoded in memory and written in one call: the encoder's many small writes to a Python file
    object each take the GIL, which a partition on another thread is waiting for."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
    write_bytes_atomic(sink.getvalue(), url)


def write_bytes_atomic(data: bytes | memoryview | pa.Buffer, url: str) -> None:
    """Write `data` (bytes, or a buffer of them) to `url` atomically (`write_atomic`): a file copied as it is."""
    write_atomic(url, lambda fh: fh.write(data))


def read_parquet_url(url: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file from a path or fsspec URL."""
    fs, path = fsspec.core.url_to_fs(url)
    with fs.open(path, "rb") as fh:
        return pd.read_parquet(fh, columns=columns, engine="pyarrow")


def remove_partials(directory: str | Path) -> list[Path]:
    """Delete the temporary files that killed tasks left in a local output directory; returns what it removed."""
    removed = sorted(Path(directory).rglob(f"*{TEMP_SUFFIX}"))
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return removed
