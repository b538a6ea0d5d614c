"""Fixed-seed row samples of a partitioned split, read one partition at a time.

Memory holds the sample and one partition, never the whole split, so a sample costs the same at 30x the data
(issue 12, docs/scale.md). Two draws, each fixed by its seed:

- `generator_draw` (numpy's Generator) picks `train.max_rows`;
- `frame_sample_draw` is the draw `DataFrame.sample(n, random_state=seed)` makes over the whole split (the legacy
  RandomState), so reading by partition selects exactly the rows a sample of the concatenated split selected: the
  drift reference keeps its committed rows and bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from flightdelay.core.files import partition_files, read_parquet, read_split

# (rows in all, rows to draw, seed) -> the drawn positions, without replacement, in any order
Draw = Callable[[int, int, int], np.ndarray]


def generator_draw(total: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(total, size=n, replace=False)


def frame_sample_draw(total: int, n: int, seed: int) -> np.ndarray:
    """The positions `DataFrame.sample(n=n, random_state=seed)` takes from a frame of `total` rows."""
    return np.random.RandomState(seed).choice(total, size=n, replace=False)


def sample_positions(
    sizes: Sequence[int], n: int | None, seed: int, draw: Draw = generator_draw
) -> list[np.ndarray] | None:
    """Which rows of each partition (by position, ascending) a sample of `n` of all rows takes.
    None: every row (`n` unset, or at least the number of rows)."""
    total = sum(sizes)
    if n is None or total <= n:
        return None
    keep = np.sort(draw(total, n, seed))
    bounds = np.cumsum([0, *sizes])
    return [keep[(keep >= lo) & (keep < hi)] - lo for lo, hi in itertools.pairwise(bounds)]


def read_sample(
    directory: str | Path, n: int | None, seed: int, draw: Draw = generator_draw
) -> tuple[pd.DataFrame, int]:
    """The split's sampled rows in file order (every row when `n` is unset or covers them), and its row count."""
    files = partition_files(directory)
    sizes = [pq.ParquetFile(f).metadata.num_rows for f in files]
    positions = sample_positions(sizes, n, seed, draw)
    if positions is None:
        return read_split(directory), sum(sizes)
    parts = [read_parquet(f).iloc[rows] for f, rows in zip(files, positions, strict=True) if len(rows)]
    return pd.concat(parts, ignore_index=True), sum(sizes)
