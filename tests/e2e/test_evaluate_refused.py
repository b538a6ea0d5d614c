"""`evaluate` refused on one of its inputs (here the ingest counts) writes none of its outputs: it reads and
computes everything before its first write, so a failure never leaves some outputs new and others missing."""

from __future__ import annotations

import shutil

import pytest

from flightdelay.cli import main

pytestmark = pytest.mark.slow

OUTPUTS = {
    "--metrics": "out/metrics.json",
    "--evaluation": "out/evaluation.json",
    "--slices": "out/slices.json",
    "--rows": "out/rows.json",
    "--plots": "out/plots",
}


def test_evaluate_without_the_ingest_counts_writes_none_of_its_outputs(short_run, tmp_path, monkeypatch, capfd):
    shutil.copy(short_run / "params.yaml", tmp_path / "params.yaml")
    ingested = tmp_path / "ingested"  # the ingest stage's folder with its counts.json gone
    shutil.copytree(short_run / "data" / "ingested", ingested)
    (ingested / "counts.json").unlink()
    monkeypatch.chdir(tmp_path)
    inputs = {
        "--predictions": str(short_run / "data" / "predictions"),
        "--summary": str(short_run / "models" / "train_summary.json"),
        "--ingested": str(ingested),
        "--validated": str(short_run / "data" / "validated"),
        "--processed": str(short_run / "data" / "processed"),
    }
    argv = ["evaluate", *(item for pair in {**inputs, **OUTPUTS}.items() for item in pair)]
    code = main(argv)
    err = capfd.readouterr().err
    assert code == 1, err
    assert f"evaluate failed: {ingested / 'counts.json'}: no such file or directory" in err
    assert not (tmp_path / "out").exists()
