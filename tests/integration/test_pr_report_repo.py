"""`flightdelay pr-report` then `flightdelay pr-comment` on a tiny DVC repository with two commits whose params,
metrics, slices and curves differ.

No pipeline run: the repository holds only what the report reads (params.yaml, a metrics file, slices and plot
files), committed twice. The collector runs the real `git` and `dvc` commands and renders real PNGs; the comment
is then rendered from its data, as the trusted job does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flightdelay.cli import main
from flightdelay.prcomment.render import MARKER
from tests.conftest import dvc, run

# `dvc plots diff` and git on a real repository, several seconds a test.
pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

DVC_YAML = {
    "metrics": ["reports/metrics.json"],
    "plots": [
        {"ROC": {"template": "simple", "x": "fpr", "y": {"reports/plots/roc.json": "tpr"}}},
        {"Residuals": {"template": "scatter", "x": "predicted", "y": {"reports/plots/residuals.json": "residual"}}},
    ],
}


def write_state(repo: Path, seed: int, lr: float, roc_auc: float, log_loss: float, aa: float, ua: float) -> None:
    params = {"train": {"seed": seed, "model": "hist_gradient_boosting", "lr": lr}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    metrics = {"roc_auc": roc_auc, "log_loss": log_loss, "brier": 0.1672, "baseline": {"roc_auc": 0.5}}
    (repo / "reports" / "metrics.json").write_text(json.dumps(metrics))
    slices = {
        "carrier": {
            "AA": {"rows": 5147, "roc_auc": aa},
            "B6": {"rows": 8929, "roc_auc": 0.717},
            "UA": {"rows": 9646, "roc_auc": ua},
        },
        "origin": {"EWR": {"rows": 18000, "roc_auc": 0.70}},
    }
    (repo / "reports" / "slices.json").write_text(json.dumps(slices))
    bend = 0.5 + (roc_auc - 0.5) * 1.5
    roc = [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 0.3, "tpr": bend}, {"fpr": 1.0, "tpr": 1.0}]
    (repo / "reports" / "plots" / "roc.json").write_text(json.dumps(roc))
    pr_curve = [{"recall": 0.0, "precision": 1.0}, {"recall": 1.0, "precision": roc_auc - 0.4}]
    (repo / "reports" / "plots" / "precision_recall.json").write_text(json.dumps(pr_curve))
    (repo / "reports" / "plots" / "residuals.json").write_text("[]")


def commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", message], cwd=repo)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prreport") / "repo"
    (path / "reports" / "plots").mkdir(parents=True)
    run(["git", "init", "-q", "-b", "main"], cwd=path)
    dvc("init", "-q", cwd=path)
    (path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (path / ".gitignore").write_text("/logs/\n/out*/\n")
    write_state(path, seed=42, lr=0.1, roc_auc=0.7, log_loss=0.52, aa=0.686, ua=0.700)
    commit(path, "base")
    # The change: a new seed and learning rate; roc_auc up, log_loss moved below the shown precision.
    write_state(path, seed=7, lr=0.05, roc_auc=0.71234, log_loss=0.5200001, aa=0.736, ua=0.690)
    commit(path, "head")
    return path


def build(repo: Path, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.chdir(repo)
    code = main(["pr-report", *args])
    return code, capsys.readouterr().out


def trusted_comment(repo: Path, out: str, capsys, number: int = 12) -> str:
    """What the trusted job does with the artifact: pr.json beside the data, then `flightdelay pr-comment`."""
    head = "c0ffee" * 6 + "abcd"
    (repo / out / "pr.json").write_text(json.dumps({"number": number, "head_sha": head}))
    args = ["pr-comment", "--report", out, "--out", f"{out}-comment", "--head-sha", head]
    assert main([*args, "--run-url", "https://ci/run/9"]) == 0
    assert capsys.readouterr().out.strip() == f"{out}-comment/comment.md"
    assert (repo / f"{out}-comment" / "pr-number").read_text() == f"{number}\n"
    return (repo / f"{out}-comment" / "comment.md").read_text()


def test_comment_holds_the_changed_rows_and_the_plots(repo, monkeypatch, capsys):
    code, out = build(repo, monkeypatch, capsys, "--base", "HEAD~1", "--out", "out", "--run-url", "https://ci/run/9")
    assert code == 0
    assert out.strip() == "out/comment-data.json"
    assert sorted(p.name for p in (repo / "out").iterdir()) == [
        "comment-data.json",
        "comment-preview.md",
        "plots",
        "report.md",
    ]
    comment = trusted_comment(repo, "out", capsys)
    report = (repo / "out" / "report.md").read_text()
    assert comment.startswith(MARKER + "\n")
    assert comment.splitlines()[1].startswith("## flightdelay: `#12 @ c0ffeec0` against `HEAD~1 @ ")

    assert "**Gate:** no gate" in comment
    assert "| `train.lr` | 0.1 | 0.05 |" in comment
    assert "| `train.seed` | 42 | 7 |" in comment
    assert "train.model" not in comment  # unchanged params are not rows

    assert "| `roc_auc` | 0.7000 | 0.7123 | +0.0123 |" in comment
    assert "log_loss" not in comment  # moved by 1e-7: no visible change
    assert "brier" not in comment and "baseline" not in comment

    slices = comment.split("### Slices that moved most (`roc_auc`)", 1)[1].split("###", 1)[0]
    rows = [line for line in slices.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `carrier` = `AA` | 5,147 | 0.6860 | 0.7360 | +0.0500 |",
        "| `carrier` = `UA` | 9,646 | 0.7000 | 0.6900 | -0.0100 |",
    ]
    assert "No change." not in comment

    # Plots: rendered to PNG next to the markdown; the empty residual plot is left out.
    pngs = sorted(p.name for p in (repo / "out" / "plots").iterdir())
    assert pngs == ["roc.png"]
    assert (repo / "out" / "plots" / "roc.png").read_bytes().startswith(PNG_MAGIC)
    assert "![ROC](plots/roc.png)" in report
    assert "![" not in comment  # the default comment sends no image anywhere: it points to the artifact
    assert "[this workflow run](https://ci/run/9)" in comment
    assert "⚠️" not in comment  # the committed results are the workspace's

    # Curves drawn in the comment itself: ROC and precision-recall have data at both revisions, calibration none.
    assert comment.count("```mermaid") == 2
    assert 'title "ROC"' in comment and 'title "Precision-recall"' in comment and "Calibration" not in comment
    roc = comment.split('title "ROC"', 1)[1].split("```", 1)[0]
    # base tpr at fpr 0.3 is 0.8 (0.5 + 0.2 * 1.5), this PR's 0.8185; the grid has 25 points from 0 to 1.
    assert 'x-axis "false positive rate" [0.00, 0.04,' in roc
    base_line = next(line for line in roc.splitlines() if line.strip().startswith('line "base"'))
    pr_line = next(line for line in roc.splitlines() if line.strip().startswith('line "this PR"'))
    assert base_line.count(",") == pr_line.count(",") == 24
    assert base_line.strip().endswith("1.0000]") and pr_line.strip().endswith("1.0000]")


def test_no_change_is_said_explicitly_and_the_gate_is_shown(repo, monkeypatch, capsys):
    rule = {"rule": "min_metrics.roc_auc", "value": 0.71234, "comparison": ">=", "threshold": 0.65, "outcome": "pass"}
    gate = {"decision": "pass", "override": None, "rules": [{**rule, "note": ""}]}
    (repo / "reports" / "gate.json").write_text(json.dumps(gate))
    commit(repo, "gate")
    try:
        code, _ = build(repo, monkeypatch, capsys, "--base", "HEAD", "--out", "out-same")
        assert code == 0
        comment = trusted_comment(repo, "out-same", capsys)
        for section in ("Params", "Metrics", "Slices that moved most (`roc_auc`)"):
            body = comment.split(f"### {section}\n", 1)[1].split("###", 1)[0]
            assert body.strip() == "No change.", section
        assert "**Gate:** ✅ **pass**" in comment
        assert "| `min_metrics.roc_auc` | ✅ pass | 0.7123 >= 0.6500 |" in comment
    finally:
        run(["git", "reset", "-q", "--hard", "HEAD~1"], cwd=repo)


def test_results_the_pr_did_not_commit_are_flagged(repo, monkeypatch, capsys):
    metrics = repo / "reports" / "metrics.json"
    committed = metrics.read_text()
    metrics.write_text(committed.replace("0.71234", "0.75"))
    try:
        code, _ = build(repo, monkeypatch, capsys, "--base", "HEAD", "--out", "out-dirty", "--plot", "ROC")
        assert code == 0
        comment = trusted_comment(repo, "out-dirty", capsys)
        assert "⚠️ `dvc repro` changed committed results (`reports/metrics.json`)" in comment
        assert "| `roc_auc` | 0.7123 | 0.7500 | +0.0377 |" in comment
    finally:
        metrics.write_text(committed)


def test_unknown_base_is_a_message_not_a_traceback(repo, monkeypatch, capfd):
    monkeypatch.chdir(repo)
    assert main(["pr-report", "--base", "no-such-branch", "--out", "out-x"]) == 1
    err = capfd.readouterr().err
    assert "base revision 'no-such-branch' not found" in err
    assert "fetch-depth: 0" in err
    assert "Traceback" not in err
    assert not (repo / "out-x" / "comment-data.json").exists()
