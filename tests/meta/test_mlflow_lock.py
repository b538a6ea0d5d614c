"""The benchmark's MLflow environment (benchmarks/mlflow.in -> mlflow.lock, `make bench-serve-mlflow`) unpickles
nothing but must load the same fitted pipeline: its scikit-learn, numpy, pandas and scipy are the project's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = ("scikit-learn", "numpy", "pandas", "scipy")


def pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", path.read_text(), flags=re.MULTILINE))


@pytest.mark.parametrize("name", SHARED)
def test_the_mlflow_environment_has_the_projects_version_of(name):
    project = pins(REPO / "requirements.lock")[name]
    assert pins(REPO / "benchmarks" / "mlflow.in")[name] == project, "edit benchmarks/mlflow.in, then `make lock`"
    assert pins(REPO / "benchmarks" / "mlflow.lock")[name] == project, "run `make lock`"


def test_the_mlflow_lock_is_hash_pinned_and_holds_mlflow():
    text = (REPO / "benchmarks" / "mlflow.lock").read_text()
    assert pins(REPO / "benchmarks" / "mlflow.lock")["mlflow"] == pins(REPO / "benchmarks" / "mlflow.in")["mlflow"]
    assert text.count("--hash=sha256:") >= text.count("==")
