"""validate folds its profile partials after each batch of partitions (PROFILE_BATCH), so memory holds a batch of
them, not the window's: any batch size writes the same bytes, the quarantine records in the same order."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flightdelay.cli import main
from flightdelay.stages import validate as validate_stage
from tests.data.test_corpus import workspace
from tests.integration.test_dask_engine import files, three_months
from tests.stage_cmd import stage_argv


def test_every_batch_size_writes_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = three_months(workspace(tmp_path / "base", "wrong_type.csv", {}))
    monkeypatch.chdir(base)
    assert main(stage_argv("ingest")) == 0
    outputs = {}
    for size in (1, 2, 1000):  # one partition a batch; batches across tables; every partition in one batch
        root = tmp_path / f"batch-{size}"
        shutil.copytree(base, root)
        monkeypatch.chdir(root)
        monkeypatch.setattr(validate_stage, "PROFILE_BATCH", size)
        assert main(stage_argv("validate")) == 0
        outputs[size] = {k: v for k, v in files(root).items() if not k.startswith("data/ingested")}
    assert any("data_profile" in name for name in outputs[1])
    assert any(name.startswith("data/quarantine/validate") for name in outputs[1])  # February's refused value
    assert outputs[1] == outputs[1000] and outputs[2] == outputs[1000]
