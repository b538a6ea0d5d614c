"""Dask worker preload for the killed-worker test (tests/integration/test_dask_engine.py).

Imported by each worker process of the test's LocalCluster (`distributed.worker.preload`): the first time any
worker writes flights/2013-02.parquet it leaves a half-written temporary file and kills its own process, once
(the marker file named by FLIGHTDELAY_KILL_MARKER records that it did). Dask must retry the task elsewhere.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd

from flightdelay.core.engine import TEMP_SUFFIX
from flightdelay.stages import ingest

MARKER_ENV = "FLIGHTDELAY_KILL_MARKER"
TARGET = "flights/2013-02.parquet"
_write = ingest.write_parquet_atomic


def write_or_die(frame: pd.DataFrame, url: str) -> None:
    marker = Path(os.environ[MARKER_ENV])
    if url.endswith(TARGET) and not marker.exists():
        marker.write_text(str(os.getpid()))
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        Path(f"{url}.killed{TEMP_SUFFIX}").write_bytes(b"half a file")
        os.kill(os.getpid(), signal.SIGKILL)
    _write(frame, url)


def dask_setup(worker: object) -> None:
    """Called by each worker as it starts (a Dask preload hook); importing this module changes nothing."""
    ingest.write_parquet_atomic = write_or_die  # type: ignore[assignment]
