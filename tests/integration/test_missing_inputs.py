"""A stage whose inputs are not there (not built yet, or a wrong path) fails with one line that names the missing
path and how to build it: exit 1, not the "this is a bug" exit 2, and nothing written but its log."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightdelay.cli import STAGES, main
from tests.default_params import default_params, write_params
from tests.stage_cmd import stage_argv
from tests.workspace import lay_out, written


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """dvc.yaml, the schema and the test params: every stage's inputs are missing."""
    lay_out(tmp_path)
    write_params(tmp_path / "params.yaml", default_params())
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("stage", [stage for stage in STAGES if stage != "raw"])
def test_a_stage_without_its_inputs_names_what_is_missing_and_writes_nothing(stage, workspace, capfd):
    code = main(stage_argv(stage, default_params()))
    err = capfd.readouterr().err
    assert code == 1, err
    assert "unexpectedly" not in err and "Traceback" not in err
    failed = [line for line in err.splitlines() if f"{stage} failed: " in line]
    assert failed, err
    # what to do: build the inputs (`dvc repro`, "run the ... stage first") or fix the path or params
    assert any(hint in line for line in failed for hint in ("dvc repro", "run the", "data.raw_dir")), err
    assert written(workspace) == []
