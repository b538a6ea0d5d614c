"""A fresh clone running `dvc repro` reproduces the committed dvc.lock byte for byte, then has nothing to do."""

from __future__ import annotations

import json

import pytest

from tests.conftest import clone, dvc, run, stages_ran

pytestmark = pytest.mark.slow

ALL_STAGES = ["raw", "ingest", "validate", "features", "train", "predict", "evaluate"]


def test_fresh_clone_reproduces_committed_lock(tmp_path):
    repo = clone(tmp_path / "repo")
    first = dvc("repro", cwd=repo)
    # evaluate's outputs are git-tracked and already committed: when predict reproduces its committed
    # outputs exactly, DVC finds evaluate up to date and skips it. Force it to check its files too.
    assert stages_ran(first.stdout) in (ALL_STAGES, ALL_STAGES[:-1])
    assert stages_ran(dvc("repro", "--force", "--single-item", "evaluate", cwd=repo).stdout) == ["evaluate"]

    diff = run(["git", "diff", "--exit-code", "--stat"], cwd=repo, check=False)
    assert diff.returncode == 0, f"a fresh run changed committed files:\n{diff.stdout}"
    untracked = run(["git", "status", "--porcelain"], cwd=repo).stdout
    assert untracked == "", f"the run left files git does not ignore:\n{untracked}"

    again = dvc("repro", cwd=repo)
    assert stages_ran(again.stdout) == []
    status = dvc("status", "--json", cwd=repo)
    assert json.loads(status.stdout) == {}

    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert metrics["roc_auc"] > 0.69, "the default model lost its quality"
    assert metrics["roc_auc"] > metrics["baseline"]["roc_auc"]
