"""A fresh clone running `dvc repro` reproduces the committed dvc.lock byte for byte, then has nothing to do.

Across Python versions (3.11, 3.12 and 3.13, each installed from the same lock file) these are identical, byte
for byte: the data at every tier (raw, ingested, quarantined, validated, processed), the model file and its
training summary, the predictions, and so every metric, report and figure. What differs, by design: the package
manifest records the interpreter's version in its environment, and the package's name is a hash over its
manifest, so `models/package/model-<hash>/` and `reports/package.json` (and the report naming the package) differ
per Python version. The committed dvc.lock comes from the lock's reference interpreter, Python 3.11.

The full window is run once, by the interpreter running the tests, against the committed dvc.lock. The second
Python is test_reproducible_python.py: the session's short window from an empty cache (a module of its own, so
that pytest-xdist runs the two longest tests of the suite on two workers at once).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.contracts import TrainSummary
from flightdelay.core.files import partition_files, read_parquet
from flightdelay.modeling.model import load_model
from flightdelay.stages import features
from flightdelay.stages.predict import predictions
from tests.conftest import clone, dvc, run, stages_ran
from tests.e2e.test_pipeline import ALL_STAGES
from tests.model.test_behaviour import BUSIER, MURKIER, WETTER, added

pytestmark = pytest.mark.slow

# Stages whose outputs are all git-tracked: already in the clone, so DVC may find them up to date.
TRACKED_ONLY = ["evaluate", "drift", "gate", "report"]


def test_fresh_clone_reproduces_committed_lock(tmp_path):
    repo = clone(tmp_path / "repo")
    first = stages_ran(dvc("repro", cwd=repo).stdout)
    # Stages with DVC-cached outputs run (the clone has none); the stages whose outputs are git-tracked and
    # already committed are skipped when their inputs come out identical. Force those to rewrite their files.
    assert [s for s in ALL_STAGES if s not in TRACKED_ONLY] == [s for s in first if s not in TRACKED_ONLY]
    assert set(first) <= set(ALL_STAGES)
    forced = dvc("repro", "--force", "--single-item", *TRACKED_ONLY, cwd=repo).stdout
    assert sorted(stages_ran(forced)) == sorted(TRACKED_ONLY)

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
    # the package named in the committed pointer was rebuilt byte for byte (its name is its content hash)
    package = json.loads((repo / "reports" / "package.json").read_text())
    assert (repo / package["path"] / "manifest.json").is_file()
    assert_directions(repo)


def assert_directions(repo: Path) -> None:
    """The trained artifact, on the test months: more rain, lower visibility and more departures each raise the
    mean P(late) (tests/model/test_behaviour.py asserts the same of a quick model on two months)."""
    model = load_model(repo / "models" / "model.skops")
    summary = TrainSummary.load(repo / "models" / "train_summary.json")
    test = pd.concat([read_parquet(f) for f in partition_files(repo / "data" / "processed" / "test")])
    test = test.reset_index(drop=True)

    def p_late(frame: pd.DataFrame) -> np.ndarray:
        return predictions(model, frame, summary, features.ID_COLUMNS)["prediction"].to_numpy()

    own = p_late(test)
    for name, changed in (
        ("more precipitation", added(test, WETTER)),
        ("lower visibility", added(test, MURKIER, floor=0.0)),
        ("more congestion", added(test, BUSIER)),
    ):
        assert float((p_late(changed) - own).mean()) > 0, f"{name} lowered the default model's mean P(late)"
