"""`benchmarks/run.py --quick` in a scratch copy: every output is written and well formed (no timing checks)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from tests.conftest import REPO, pipeline_env
from tests.e2e.test_pipeline import ALL_STAGES

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STAGES_AFTER_RAW = ["ingest", "validate", "features", "train", "predict", "evaluate", "drift", "gate", "package"]


def summary_ok(s: dict) -> bool:
    return s["min"] <= s["median"] <= s["max"] and len(s["runs"]) == 1


def test_quick_benchmark_writes_json_markdown_and_png(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--out", str(out)],
        cwd=REPO,
        env=pipeline_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = {"overhead", "noop", "experiment", "stages", "ingest_throughput"}
    assert {p.stem for p in out.glob("*.json")} == names
    results = {name: json.loads((out / f"{name}.json").read_text()) for name in names}
    for name, payload in results.items():
        assert payload["meta"]["quick"] is True and payload["meta"]["repeats"] == 1, name
        yardstick = payload["meta"]["machine"]["yardstick"]
        assert yardstick["python_ms"] > 0 and yardstick["numpy_ms"] > 0, name

    overhead = results["overhead"]["overhead"]
    assert summary_ok(overhead["dvc_repro_forced"]) and summary_ok(overhead["in_process"])
    # quick: raw ran once for the source of the generated data; the forced run and the floor start after it
    assert overhead["stages"] == [stage for stage in ALL_STAGES if stage != "raw"]
    assert len(overhead["commands"]) == len(overhead["stages"])
    assert not [cmd for cmd in overhead["commands"] if cmd.startswith("python -m flightdelay raw ")]
    # each stage timed in its own process and inside the one process
    assert set(overhead["per_stage"]) == set(overhead["stages"]) and summary_ok(overhead["processes"])
    for parts in overhead["per_stage"].values():
        assert summary_ok(parts["processes"]) and summary_ok(parts["in_process"])
    assert overhead["in_process"]["median"] == pytest.approx(
        sum(parts["in_process"]["median"] for parts in overhead["per_stage"].values())
    )
    noop = results["noop"]["noop"]
    assert summary_ok(noop["dvc_repro_noop"]) and summary_ok(noop["dvc_status"])
    assert noop["stages_ran_in_noop"] == []
    runs = results["experiment"]["experiment"]["runs"]
    # the quick experiment runs to its metrics (evaluate) and stops there
    assert len(runs) == 1 and runs[0]["stages"][0] == "train" and runs[0]["stages"][-1] == "evaluate"

    sizes = results["stages"]["stages"]
    # the default axis: 1 and 2 years of monthly partitions (quick: 2.5% of each month's flights)
    assert [(s["scale"], s["grow"], s["months"]) for s in sizes] == [(1, "years", 12), (2, "years", 24)]
    assert sizes[1]["rows"]["flights"] == 2 * sizes[0]["rows"]["flights"] > 0
    for size in sizes:
        assert set(STAGES_AFTER_RAW) <= set(size["stages"])
        for stage in size["stages"].values():
            assert all(summary_ok(stage[key]) for key in ("seconds", "cpu_seconds", "peak_rss_mib"))
            assert stage["peak_rss_mib"]["median"] > 10  # an interpreter with pandas, not a unit mistake
    for row, months in zip(results["ingest_throughput"]["ingest_throughput"], (12, 24), strict=True):
        # each month's flights and weather, and the three reference tables
        assert (
            summary_ok(row["ingest_validate"]) and summary_ok(row["pyarrow_floor"]) and row["files"] == 2 * months + 3
        )

    summary = (out / "summary.md").read_text()
    assert "Where the difference goes (medians):" in summary
    # the per-stage table follows its header, in the run's order (the JSON's keys are sorted)
    table = summary.split("| stage | own process, s | in one process, s | difference |\n|---|---:|---:|---:|\n")[1]
    first_cells = [line.split(" | ")[0].removeprefix("| ") for line in table.split("\n\n")[0].splitlines()]
    assert first_cells == overhead["stages"]
    for heading in ("## Overhead", "## No-op run", "## Experiment turnaround", "## Per stage, by data size"):
        assert heading in summary
    assert "| 2x (24 months, " in summary and "The data grows by more years of monthly partitions" in summary
    assert "Quick smoke run" in summary
    assert "Machine yardstick (benchmarks/machine.py" in summary
    for name in ("stage_seconds.png", "stage_peak_rss.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (700, 450)
        assert b"Software" not in data  # fixed metadata: no matplotlib version in the file
