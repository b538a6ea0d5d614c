"""The corpus of broken inputs (tests/data/corpus/) through the real `ingest` and `validate` entry points.

Every case either accounts for every row (passed + quarantined, with file, row, column and rule) or stops at
the first stage that cannot go on, with a message naming the file and the problem, no traceback, and no
output left half-written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flightdelay.cli import main
from tests.default_params import default_params, write_params
from tests.stage_cmd import stage_argv

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text())


def target_name(file: str) -> str:
    for ext in (".csv.gz", ".parquet", ".csv"):
        if file.endswith(ext):
            return f"2013-01{ext}"
    raise AssertionError(file)


def workspace(tmp: Path, file: str, overrides: dict[str, object]) -> Path:
    """A folder laid out like the repository: params.yaml (the test defaults, not the working file), the schema
    file, raw data with the case in it."""
    shutil.copytree(CORPUS / "base", tmp / "raw")
    (tmp / "raw" / "flights" / "2013-01.csv").unlink()
    shutil.copy(CORPUS / "cases" / file, tmp / "raw" / "flights" / target_name(file))
    (tmp / "config").mkdir()
    shutil.copy(REPO / "config" / "schema.yaml", tmp / "config" / "schema.yaml")
    params = default_params(
        {
            "data.raw_dir": "raw",
            "ingest.window": {"start": "2013-01", "end": "2013-01"},
            "ingest.max_invalid_share": 0.25,
            "ingest.retry": {"attempts": 1, "initial_wait": 0.01, "max_wait": 0.01},
            "validate.max_invalid_share": 0.25,
            **overrides,
        }
    )
    write_params(tmp / "params.yaml", params)
    return tmp


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_case(name, tmp_path, monkeypatch, capfd):
    case = CASES[name]
    root = workspace(tmp_path, case.get("file", name), case.get("params", {}))
    monkeypatch.chdir(root)

    codes = {}
    for stage in ("ingest", "validate"):
        codes[stage] = main(stage_argv(stage))
        if codes[stage] != 0:
            break
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert leftovers(root) == []

    if "fails" in case:
        stage = case["fails"]
        assert codes.get(stage) == 1, f"{stage} should fail; exit codes {codes}\n{err}"
        message = next(line for line in err.splitlines() if f"{stage} failed:" in line)
        for text in case["error"]:
            assert text in message, f"{text!r} not in {message!r}"
        out = {"ingest": "data/ingested", "validate": "data/validated"}[stage]
        assert not (root / out).exists(), f"the failed {stage} left {out} behind"
        return

    assert codes == {"ingest": 0, "validate": 0}, err
    if "warning" in case:
        assert case["warning"] in err
    quarantined = []
    for stage in ("ingest", "validate"):
        records = pd.read_parquet(root / "data" / "quarantine" / f"{stage}.parquet")
        assert set(records["source"]) <= {"flights/2013-01.csv", "flights/2013-01.csv.gz", "weather/2013-01.csv"}
        quarantined += [[stage, int(r.row), r.column, r.rule] for r in records.itertuples()]
        for record in records.itertuples():
            assert record.record.startswith("{"), "the original values are kept"
    assert quarantined == case.get("quarantined", [])
    passed = len(pd.read_parquet(root / "data" / "validated" / "flights" / "2013-01.parquet"))
    assert passed == case["passed"]
    counts = yaml.safe_load((root / "data" / "ingested" / "counts.json").read_text())["flights"]
    assert counts["rows_in"] == counts["rows_passed"] + counts["rows_quarantined"]
    vcounts = yaml.safe_load((root / "data" / "validated" / "counts.json").read_text())["flights"]
    assert vcounts["rows_in"] == counts["rows_passed"]
    assert vcounts["rows_in"] == vcounts["rows_passed"] + vcounts["rows_quarantined"]
    assert vcounts["rows_passed"] == case["passed"]
    assert counts["rows_quarantined"] + vcounts["rows_quarantined"] == len(case.get("quarantined", []))
