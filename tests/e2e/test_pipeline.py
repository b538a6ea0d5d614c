"""The real pipeline, run with `dvc` in a temporary clone on a short date window (Jan-Mar 2013).

Covers incremental reruns (which stages run after which change), experiments (`dvc exp run`, the queue,
`dvc exp show`), the regression task and row accounting.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_of, dvc, run, stages_ran

pytestmark = pytest.mark.slow

SHORT = {
    ("ingest", "window"): {"start": "2013-01", "end": "2013-03"},
    ("features", "split"): {
        "train": {"start": "2013-01", "end": "2013-02"},
        "test": {"start": "2013-03", "end": "2013-03"},
    },
    ("evaluate", "importance_sample"): 500,
    ("evaluate", "importance_repeats"): 1,
    # March against January-February: more weather and schedule features drift than in the default split
    # (9 of them, against 4 for Nov-Dec against Jan-Oct).
    ("gate", "max_drifted_features"): 12,
}
ALL_STAGES = [
    "raw",
    "ingest",
    "validate",
    "features",
    "train",
    "predict",
    "evaluate",
    "drift",
    "gate",
    "package",
    "report",
]
AFTER_TRAIN = ["train", "predict", "evaluate", "drift", "gate", "package", "report"]
# Stages with git-tracked (uncached) outputs: the run-cache cannot restore them, so they rerun (cheaply).
UNCACHED = {"evaluate", "drift", "gate", "package", "report"}


def set_params(repo: Path, changes: dict[tuple[str, ...], object]) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for keys, value in changes.items():
        node = params
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def repro(repo: Path) -> list[str]:
    return stages_ran(dvc("repro", cwd=repo).stdout)


@pytest.fixture(scope="module")
def repo(tmp_path_factory, short_run) -> Path:
    """A copy of the session's short-window run (tests/e2e/conftest.py): committed, run once, changed here."""
    return copy_of(short_run, tmp_path_factory.mktemp("short") / "repo")


def test_outputs_and_metrics(repo):
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert set(metrics) >= {"roc_auc", "pr_auc", "log_loss", "brier", "ece", "f1", "accuracy", "baseline"}
    assert 0.5 < metrics["roc_auc"] <= 1.0
    assert metrics["baseline"]["roc_auc"] == 0.5
    slices = json.loads((repo / "reports" / "slices.json").read_text())
    assert set(slices) == {"carrier", "origin", "month"}
    assert set(slices["origin"]) == {"EWR", "JFK", "LGA"}
    assert set(slices["month"]) == {"3"}
    for name in ("roc", "precision_recall", "calibration", "confusion", "importance"):
        assert json.loads((repo / "reports" / "plots" / f"{name}.json").read_text()), name
    assert (repo / "models" / "model.skops").stat().st_size > 0
    profile = json.loads((repo / "reports" / "data_profile.json").read_text())
    assert profile["tables"]["flights"]["arr_delay"]["nulls"] > 0
    assert "| flights |" in (repo / "reports" / "validation_summary.md").read_text()


def test_every_row_is_accounted_for(repo):
    rows = json.loads((repo / "reports" / "rows.json").read_text())
    assert rows["ingest"]["in"] == 27004 + 24951 + 28834  # flights in Jan, Feb, Mar 2013
    for stage in ("ingest", "validate"):
        assert rows[stage]["in"] == rows[stage]["passed"] + rows[stage]["quarantined"], stage
    assert rows["validate"]["in"] == rows["ingest"]["passed"]
    assert rows["features"]["in"] == rows["validate"]["passed"]
    features = rows["features"]
    assert features["in"] == features["no_arrival"] + features["unused_months"] + features["train"] + features["test"]
    assert features["no_arrival"] > 0


def test_nothing_changed_nothing_reruns(repo):
    assert repro(repo) == []


@pytest.fixture(scope="module")
def seed7(repo) -> list[str]:
    """`dvc exp run -n seed7 -S train.seed=7` in the workspace, once for the two tests below: the stages it ran.

    One train-to-report pass serves both (the experiment runs the same `dvc repro` a param edit would); the
    workspace is left holding the experiment's params and outputs.
    """
    return stages_ran(dvc("exp", "run", "-n", "seed7", "-S", "train.seed=7", cwd=repo).stdout)


def test_train_param_reruns_only_train_and_downstream(repo, seed7):
    try:
        assert seed7 == AFTER_TRAIN
        assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["seed"] == 7
    finally:
        run(["git", "checkout", "--", "params.yaml"], cwd=repo)
        # Back at the committed params, the run-cache restores train and predict: neither runs.
        assert stages_ran(dvc("repro", "predict", cwd=repo).stdout) == []
        # The stages after them have git-tracked outputs, which the run-cache does not hold (rerunning them would
        # only rewrite what git has): git (index included: DVC stages dvc.lock) and the DVC cache restore the
        # committed state.
        run(["git", "reset", "--quiet", "--hard"], cwd=repo)
        dvc("checkout", cwd=repo)
        assert json.loads(dvc("status", "--json", cwd=repo).stdout) == {}


def test_test_window_change_does_not_reingest(repo):
    set_params(
        repo,
        {
            ("features", "split"): {
                "train": {"start": "2013-01", "end": "2013-01"},
                "test": {"start": "2013-02", "end": "2013-03"},
            }
        },
    )
    try:
        # `features` and what it needs, not the stages after it: only whether ingest, validate and raw rerun is in
        # question (that a changed split reruns everything downstream is the train-param test's point).
        assert stages_ran(dvc("repro", "features", cwd=repo).stdout) == ["features"]
    finally:
        run(["git", "checkout", "--", "params.yaml"], cwd=repo)
        dvc("repro", cwd=repo)


def test_plots_render(repo):
    out = dvc("plots", "show", "--json", cwd=repo)
    shown = json.loads(out.stdout)
    assert not shown.get("errors"), shown["errors"]
    assert {"ROC", "Precision-recall", "Calibration", "Confusion matrix", "Feature importance"} <= set(shown["data"])
    assert shown["data"]["ROC"][0]["content"]["data"]["values"], "the ROC plot has no points"


def test_experiment_runs_and_shows_metrics(repo, seed7):
    table = json.loads(dvc("exp", "show", "--json", cwd=repo).stdout)
    found = [
        exp
        for commit in table
        for exp in (commit.get("experiments") or [])
        for rev in exp.get("revs", [])
        if rev.get("name") == "seed7"
    ]
    assert found, f"seed7 not listed by dvc exp show: {json.dumps(table)[:2000]}"
    data = found[0]["revs"][0]["data"]
    metrics = data["metrics"]["reports/metrics.json"]["data"]
    assert 0.5 < metrics["roc_auc"] <= 1.0
    assert data["params"]["params.yaml"]["data"]["train"]["seed"] == 7
    dvc("exp", "apply", "seed7", cwd=repo)  # the workspace now holds the experiment...
    run(["git", "checkout", "--", "."], cwd=repo)  # ...and back to the committed state
    dvc("checkout", cwd=repo)


def test_queued_experiments(repo):
    # Both stop after evaluate (the metrics are all the queue needs to show; a full experiment is the test above).
    dvc("exp", "run", "--queue", "-n", "logreg", "-S", "train.model=logistic_regression", "evaluate", cwd=repo)
    # The gate refuses a constant model (ROC AUC 0.5), so this experiment stops after evaluate (README, Experiments).
    dvc("exp", "run", "--queue", "-n", "const", "-S", "train.model=constant", "evaluate", cwd=repo)
    dvc("queue", "start", "--jobs", "1", cwd=repo)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = dvc("queue", "status", cwd=repo).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(10)  # each `dvc queue status` is a DVC start-up (about a CPU second) taken from the experiments
    else:
        pytest.fail(f"queued experiments did not finish:\n{status}")
    assert "Failed" not in status, status
    names = {
        rev.get("name"): rev["data"]["metrics"]["reports/metrics.json"]["data"]
        for commit in json.loads(dvc("exp", "show", "--json", cwd=repo).stdout)
        for exp in (commit.get("experiments") or [])
        for rev in exp.get("revs", [])
        if rev.get("data", {}).get("metrics")
    }
    assert {"logreg", "const"} <= set(names), status
    assert names["const"]["roc_auc"] == 0.5
    assert names["logreg"]["roc_auc"] > 0.55
    dvc("queue", "stop", cwd=repo, check=False)


def test_regression_task(repo):
    dvc("exp", "run", "-n", "regr", "-S", "train.task=regression", cwd=repo)
    try:
        metrics = json.loads((repo / "reports" / "metrics.json").read_text())
        assert set(metrics) >= {"mae", "rmse", "r2", "baseline"}
        assert metrics["mae"] < metrics["baseline"]["mae"]
        assert json.loads((repo / "reports" / "plots" / "residuals.json").read_text())
        assert json.loads((repo / "reports" / "plots" / "roc.json").read_text()) == []
        # the regression model passes its gate (the classification rules are skipped) and is packaged
        gate = json.loads((repo / "reports" / "gate.json").read_text())
        assert gate["decision"] == "pass"
        assert {"min_metrics.roc_auc", "max_metrics.ece"} <= set(gate["skipped"])
        assert json.loads((repo / "reports" / "package.json").read_text())["task"] == "regression"
        assert (repo / "reports" / "figures" / "residuals.png").exists()
        assert not (repo / "reports" / "figures" / "roc.png").exists()
    finally:
        run(["git", "checkout", "--", "."], cwd=repo)
        dvc("checkout", cwd=repo)
