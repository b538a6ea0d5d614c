"""`benchmarks/serve.py --quick` on the short-window run's package: every figure is written and well formed, and the
service answered (no timing checks: timings go to reports/benchmarks/serve.json, not to asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, pipeline_env

pytestmark = pytest.mark.slow


def test_quick_serving_benchmark_writes_json_and_markdown(short_run: Path, tmp_path: Path):
    out = tmp_path / "bench"
    package = next((short_run / "models" / "package").glob("model-*"))
    data = short_run / "data"
    command = [sys.executable, "benchmarks/serve.py", "--quick", "--out", str(out), "--package", str(package),
               "--context", str(data / "validated"), "--raw", str(data / "raw" / "nycflights13"),
               "--month", "2013-03", "--params", str(short_run / "params.yaml")]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, env=pipeline_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "serve.json").read_text())
    assert result["meta"]["quick"] is True and result["meta"]["package"] == package.name
    assert result["meta"]["yardstick"]["python_ms"] > 0 and result["meta"]["yardstick"]["numpy_ms"] > 0
    floor = result["in_process"]
    for name in ("one_row_ms", "batch_ms", "one_row_ms_records", "batch_ms_records"):
        s = floor[name]
        assert 0 < s["min"] <= s["median"] <= s["max"] and len(s["runs"]) >= 2, name
        assert s["cpu_median"] > 0, name  # the process CPU of the calls, every thread
    assert floor["batch_ms"]["rows"] == floor["batch_ms_records"]["rows"] == 1000
    levels = result["service"]
    assert [level["concurrency"] for level in levels] == [1, 8, 32]
    for level in levels:
        assert level["requests"] > 0 and level["requests_per_s"] > 0, level
        assert level["p50_ms"] <= level["p99_ms"], level
    assert levels[0]["errors"] == 0, levels[0]  # one client at a time: every request answered 200
    table = (out / "serve.md").read_text()
    assert "Machine yardstick (benchmarks/machine.py" in table
    assert "| concurrency 32 |" in table
    assert "Predictor.predict_records (checked dicts: the service's path), 1,000 flights" in table
