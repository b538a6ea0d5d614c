"""Fixed-seed samples of a partitioned split, read one partition at a time (core/sampling.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flightdelay.core.files import write_parquet
from flightdelay.core.sampling import frame_sample_draw, read_sample, sample_positions


def test_sample_positions_are_a_seeded_sample_spread_over_the_partitions():
    sizes = [5, 0, 7, 3]
    first = sample_positions(sizes, 6, seed=42)
    assert first is not None and len(first) == len(sizes)
    assert sum(len(p) for p in first) == 6
    assert all(list(p) == sorted(set(p)) and all(0 <= i < n for i in p) for p, n in zip(first, sizes, strict=True))
    again = sample_positions(sizes, 6, seed=42)
    assert again is not None and [list(p) for p in again] == [list(p) for p in first]
    other = sample_positions(sizes, 6, seed=7)
    assert other is not None and [list(p) for p in other] != [list(p) for p in first]


def test_no_sample_when_max_rows_is_unset_or_covers_every_row():
    assert sample_positions([5, 7], None, seed=42) is None
    assert sample_positions([5, 7], 12, seed=42) is None


def test_read_sample_keeps_the_sampled_rows_in_partition_order(tmp_path):
    frames = [pd.DataFrame({"id": range(start, start + n)}) for start, n in ((0, 4), (100, 6), (200, 5))]
    for month, frame in enumerate(frames, start=1):
        write_parquet(frame, tmp_path / f"2013-{month:02d}.parquet")
    every = read_sample(tmp_path, None, seed=42)[0]
    assert list(every["id"]) == [*range(4), *range(100, 106), *range(200, 205)]
    sample = read_sample(tmp_path, 7, seed=42)[0]
    positions = sample_positions([4, 6, 5], 7, seed=42)
    assert positions is not None
    expected = [int(f["id"].iloc[i]) for f, rows in zip(frames, positions, strict=True) for i in rows]
    assert list(sample["id"]) == expected and len(expected) == 7
    assert list(read_sample(tmp_path, 7, seed=42)[0]["id"]) == expected


def test_read_sample_reports_every_row_of_the_split(tmp_path):
    for month, n in enumerate((4, 6, 5), start=1):
        write_parquet(pd.DataFrame({"id": range(n)}), tmp_path / f"2013-{month:02d}.parquet")
    assert read_sample(tmp_path, 7, seed=1)[1] == 15
    assert read_sample(tmp_path, None, seed=1)[1] == 15


def test_the_frame_sample_draw_takes_the_rows_a_sample_of_the_whole_split_takes(tmp_path):
    """The drift reference is read by partition; it must be the very rows `DataFrame.sample` took from the
    concatenated split (the committed reference predictions depend on it)."""
    rng = np.random.default_rng(0)
    frames = [
        pd.DataFrame({"id": np.arange(n) + 1000 * k, "x": rng.normal(size=n)}) for k, n in enumerate((40, 0, 75, 33))
    ]
    for month, frame in enumerate(frames, start=1):
        write_parquet(frame, tmp_path / f"2013-{month:02d}.parquet")
    whole = pd.concat(frames, ignore_index=True)
    for seed in (3, 42):
        expected = whole.sample(n=50, random_state=seed).sort_index().reset_index(drop=True)
        got, total = read_sample(tmp_path, 50, seed, frame_sample_draw)
        pd.testing.assert_frame_equal(got, expected)
        assert total == len(whole)
    every, _ = read_sample(tmp_path, 1000, 3, frame_sample_draw)
    pd.testing.assert_frame_equal(every, whole)
