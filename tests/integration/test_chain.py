"""Every stage, in dvc.yaml's order, in this process, on a few days of real flights under a temporary folder.

The stage command lines come from dvc.yaml (tests/stage_cmd.py), so this is the pipeline `dvc repro` runs, minus
DVC's scheduling: it proves each stage's run() works on a folder other than the repository and that each stage
writes every output dvc.yaml declares for it. Before `package`, `dvc commit` records the stages the model came
from in dvc.lock, as `dvc repro` would have, since `package` reads the model's lineage from the lock. The `raw`
stage is replaced by writing the first days of two months the way it writes them; a few thousand rows keep the
whole chain to seconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo
from threadpoolctl import threadpool_limits

from flightdelay.cli import main
from flightdelay.core.config import load_schema
from flightdelay.stages.raw import split_by_month, to_csv_text
from tests.bundled import bundled
from tests.default_params import default_params, write_params
from tests.stage_cmd import REPO, dvc_stages, lookup, stage_argv

DAYS = 4  # the first days of each month kept
CHANGES = {
    "ingest.window": {"start": "2013-01", "end": "2013-02"},
    "features.split": {"train": {"start": "2013-01", "end": "2013-01"}, "test": {"start": "2013-02", "end": "2013-02"}},
    "train.hist_gradient_boosting.max_iter": 20,
    "evaluate.importance_sample": 300,
    "evaluate.importance_repeats": 1,
    "evaluate.min_slice_rows": 20,
    # A few days of January against a few of February: the gate's quality and drift rules would judge noise.
    "gate.min_metrics": {},
    "gate.max_metrics": {},
    "gate.max_drifted_features": 100,
    "gate.max_prediction_psi": 100.0,
}


def pipeline() -> dict:
    return dvc_stages(REPO / "dvc.yaml")


def write_raw(root: Path, params: dict) -> None:
    """The bundled tables as the raw stage writes them, partitioned tables cut to the first DAYS of each month."""
    schema = load_schema(REPO / params["data"]["schema"])
    for table in ("flights", "weather", "planes", "airports", "airlines"):
        spec = schema.table(table)
        frame = bundled(table, params["raw"]["dataset"])
        if "day" in frame.columns:
            frame = frame[frame["month"].isin(["1", "2"]) & (frame["day"].astype(int) <= DAYS)]
            for period, rows in split_by_month(frame, spec):
                path = root / table / f"{period}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(to_csv_text(rows))
        else:
            (root / f"{table}.csv").write_text(to_csv_text(frame))


def outputs(spec: dict, params: dict) -> list[str]:
    entries = [*spec.get("outs", []), *spec.get("metrics", []), *spec.get("plots", [])]
    names = [next(iter(e)) if isinstance(e, dict) else e for e in entries]
    return [n.replace("${data.raw_dir}", lookup(params, "data.raw_dir")) for n in names]


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> tuple[Path, dict]:
    params = default_params(CHANGES)
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / params["data"]["schema"], tmp_path / params["data"]["schema"])
    shutil.copytree(REPO / "registry", tmp_path / "registry")
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    write_params(tmp_path / "params.yaml", params)
    write_raw(tmp_path / params["data"]["raw_dir"], params)
    monkeypatch.chdir(tmp_path)
    return tmp_path, params


def test_every_stage_runs_in_process_and_writes_what_dvc_yaml_declares(workspace):
    root, params = workspace
    stages = pipeline()
    assert next(iter(stages)) == "raw"
    ran = []
    repo = Repo.init(root, no_scm=True)
    with threadpool_limits(limits=1), repo:
        for name, spec in list(stages.items())[1:]:
            missing = [d for d in spec.get("deps", []) if not d.startswith(("src/", "${")) and not (root / d).exists()]
            assert not missing, f"{name}: inputs {missing} were not written by an earlier stage"
            if name == "package":
                for upstream in ("ingest", "validate", "features", "train"):
                    repo.commit(upstream, force=True)
            assert main(stage_argv(name, params)) == 0, f"stage {name} failed"
            absent = [out for out in outputs(spec, params) if not (root / out).exists()]
            assert not absent, f"{name}: declared outputs {absent} were not written"
            ran.append(name)
    assert ran == list(stages)[1:]
    package = yaml.safe_load((root / "reports" / "package.json").read_text())
    assert (root / package["path"] / "manifest.json").is_file()
    assert "model-" in (root / "reports" / "report.md").read_text()
