"""benchmarks/run.py's split of the forced run's seconds (DVC's bookkeeping, the processes' start-up, the stages'
work) and the ingest throughput once start-up is paid."""

from __future__ import annotations

import math

import pytest
from benchmarks.run import marginal_ratio, overhead_lines, overhead_parts


def test_the_forced_run_splits_into_work_start_up_and_dvc():
    forced = [40.0, 38.0, 39.0]
    processes = {"ingest": [10.0, 9.0, 11.0], "train": [20.0, 21.0, 22.0]}  # totals 30, 30, 33: median 30
    in_process = {"ingest": [5.0, 5.0, 6.0], "train": [19.0, 20.0, 19.0]}  # totals 24, 25, 25: median 25
    parts = overhead_parts(forced, processes, in_process)
    assert parts["dvc_repro_forced"]["median"] == 39.0
    assert parts["processes"]["median"] == 30.0 and parts["in_process"]["median"] == 25.0
    assert parts["dvc_seconds"] == pytest.approx(9.0)
    assert parts["start_up_seconds"] == pytest.approx(5.0)
    assert parts["ratio"] == pytest.approx(39 / 25)
    assert parts["ratio_without_start_up"] == pytest.approx((25 + 9) / 25)
    assert parts["per_stage"]["ingest"]["processes"]["median"] == 10.0
    assert parts["per_stage"]["train"]["in_process"]["runs"] == [19.0, 20.0, 19.0]


def test_totals_pair_a_repeats_stages_not_each_stages_median():
    # each repeat's total is its stages' sum; the medians of the stages would give 2 + 2 = 4, not 3
    processes = {"a": [1.0, 2.0, 3.0], "b": [2.0, 1.0, 3.0]}
    parts = overhead_parts([5.0, 5.0, 5.0], processes, {"a": [1.0] * 3, "b": [1.0] * 3})
    assert parts["processes"]["runs"] == [3.0, 3.0, 6.0] and parts["processes"]["median"] == 3.0


def test_no_work_in_process_gives_nan_ratios_not_a_crash():
    parts = overhead_parts([1.0], {"a": [0.5]}, {"a": [0.0]})
    assert math.isnan(parts["ratio"]) and math.isnan(parts["ratio_without_start_up"])


def test_the_summary_lists_every_stage_with_its_difference():
    parts = overhead_parts([40.0], {"ingest": [10.0], "train": [21.0]}, {"ingest": [5.0], "train": [20.0]})
    text = "\n".join(overhead_lines(parts))
    assert "| ingest | 10.00 (10.00-10.00) | 5.00 (5.00-5.00) | 5.00 |" in text
    assert "| train | 21.00 (21.00-21.00) | 20.00 (20.00-20.00) | 1.00 |" in text
    assert "| DVC's bookkeeping: the forced run less the separate processes | 9.0 |" in text
    assert "(one process + DVC's bookkeeping) | 1.36 |" in text


def row(mib: float, ours: float, floor: float) -> dict:
    return {"csv_mib": mib, "ingest_validate": {"median": ours}, "pyarrow_floor": {"median": floor}}


def test_the_marginal_ratio_leaves_out_the_fixed_start_up():
    # 2 s of start-up against pyarrow's 0.2 s, then 2 s per 100 MiB against 1 s
    rows = [row(100, 4.0, 1.2), row(1000, 22.0, 10.2), row(400, 10.0, 4.2)]
    m = marginal_ratio(rows)
    assert m == {"mib": 900, "seconds": 18.0, "floor_seconds": 9.0, "ratio": 2.0}


@pytest.mark.parametrize("rows", [[], [row(100, 4.0, 1.0)], [row(100, 4.0, 1.0), row(100, 5.0, 1.0)]])
def test_no_marginal_ratio_without_two_sizes(rows):
    assert marginal_ratio(rows) is None


def test_no_marginal_ratio_when_the_floor_did_not_grow():
    assert marginal_ratio([row(100, 4.0, 1.0), row(200, 6.0, 1.0)]) is None
