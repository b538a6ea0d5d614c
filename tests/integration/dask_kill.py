"""Dask worker preload for the killed-worker test (tests/integration/test_dask_engine.py).

Imported by each worker process of the test's LocalCluster (`distributed.worker.preload`): the first time any
worker writes flights/2013-02.parquet (from a frame, or from an Arrow table: ingest's path for a plain file) it
leaves a half-written temporary file and kills its own process, once (the marker file named by
FLIGHTDELAY_KILL_MARKER records that it did). Dask must retry the task elsewhere.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flightdelay.core.engine import TEMP_SUFFIX
from flightdelay.stages import ingest

MARKER_ENV = "FLIGHTDELAY_KILL_MARKER"
TARGET = "flights/2013-02.parquet"


def or_die(write: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    """`write`, except that the first write of TARGET leaves half a file and kills the process."""

    def write_or_die(data: Any, url: str) -> None:
        marker = Path(os.environ[MARKER_ENV])
        if url.endswith(TARGET) and not marker.exists():
            marker.write_text(str(os.getpid()))
            Path(url).parent.mkdir(parents=True, exist_ok=True)
            Path(f"{url}.killed{TEMP_SUFFIX}").write_bytes(b"half a file")
            os.kill(os.getpid(), signal.SIGKILL)
        write(data, url)

    return write_or_die


def dask_setup(worker: object) -> None:
    """Called by each worker as it starts (a Dask preload hook); importing this module changes nothing."""
    ingest.write_parquet_atomic = or_die(ingest.write_parquet_atomic)  # type: ignore[assignment]
    ingest.write_table_atomic = or_die(ingest.write_table_atomic)  # type: ignore[assignment]
