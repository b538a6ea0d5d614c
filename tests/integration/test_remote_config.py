"""The committed DVC remote: an S3 default remote with bounded timeouts, no credentials, and not needed to work.

The remote itself is exercised against a real S3-protocol server in tests/e2e/test_remote.py (slow).
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, dvc, run, stages_ran

AWS_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens here once the socket is closed


def project_config() -> dict[str, str]:
    out = dvc("config", "--list", "--project", cwd=REPO).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_default_remote_is_s3_with_timeouts_and_no_credentials():
    config = project_config()
    assert config["core.remote"] == "storage"
    assert config["remote.storage.url"].startswith("s3://")
    assert int(config["remote.storage.connect_timeout"]) <= 10
    assert int(config["remote.storage.read_timeout"]) <= 60
    secrets = [key for key in config if any(word in key for word in ("key", "secret", "token", "credential"))]
    assert secrets == [], "credentials belong in the environment or .dvc/config.local, never in .dvc/config"
    assert "remote.storage.endpointurl" not in config, "the endpoint is set per clone (config.local or env)"


def test_local_config_with_credentials_is_git_ignored():
    assert "/config.local" in (REPO / ".dvc" / ".gitignore").read_text().split()


def offline_repo(tmp_path: Path) -> tuple[Path, dict[str, str | None]]:
    """A tiny DVC repo with the project's remote config, and an environment with no credentials and an endpoint
    where nothing listens: any attempt to reach the remote fails."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], cwd=repo)
    dvc("init", "-q", cwd=repo)
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")
    (repo / "params.yaml").write_text("n: 3\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n"
        "  count:\n"
        "    cmd: python -c \"import yaml; n = yaml.safe_load(open('params.yaml'))['n']; "
        "open('out.txt', 'w').write(str(list(range(n))))\"\n"
        "    params: [n]\n"
        "    outs: [out.txt]\n"
    )
    offline = {
        **dict.fromkeys(AWS_VARS),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    assert stages_ran(dvc("repro", cwd=repo, env=offline).stdout) == ["count"]
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "count"], cwd=repo)
    return repo, offline


@pytest.mark.slow  # runs dvc repro and dvc exp run
def test_repro_status_and_experiments_need_no_remote(tmp_path):
    """The everyday commands never contact the remote: with the project's default remote, no credentials and a
    dead endpoint they still work (any attempt would fail for want of credentials)."""
    start = time.monotonic()
    repo, offline = offline_repo(tmp_path)
    assert (repo / "out.txt").read_text() == "[0, 1, 2]"
    assert dvc("status", cwd=repo, env=offline).stdout.strip() == "Data and pipelines are up to date."
    dvc("exp", "run", "-n", "five", "-S", "n=5", cwd=repo, env=offline)
    assert (repo / "out.txt").read_text() == "[0, 1, 2, 3, 4]"
    assert "five" in dvc("exp", "show", "--no-pager", cwd=repo, env=offline).stdout
    assert time.monotonic() - start < 120

    # The remote is configured, so commands that need it say so instead of silently doing nothing.
    pushed = dvc("push", cwd=repo, env=offline, check=False, timeout=120)
    assert pushed.returncode != 0
    assert "credentials" in (pushed.stderr + pushed.stdout).lower()


@pytest.mark.slow
def test_queued_experiments_need_no_remote(tmp_path):
    """The queue (what the experiment-grid workflow uses) too: its workers run in temporary copies."""
    repo, offline = offline_repo(tmp_path)
    dvc("exp", "run", "--queue", "-n", "four", "-S", "n=4", cwd=repo, env=offline)
    dvc("queue", "start", cwd=repo, env=offline)
    try:
        deadline = time.monotonic() + 90
        while "Queued" in (status := dvc("queue", "status", cwd=repo, env=offline).stdout) or "Running" in status:
            assert time.monotonic() < deadline, status
            time.sleep(3)  # each `dvc queue status` is a DVC start-up (about a CPU second) taken from the worker
    finally:
        dvc("queue", "stop", cwd=repo, env=offline, check=False)
    assert "Success" in status, status
    assert "four" in dvc("exp", "show", "--no-pager", "--md", cwd=repo, env=offline).stdout


def test_docs_explain_the_remote():
    readme = (REPO / "docs" / "remote.md").read_text()
    for needed in ("dvc remote modify --local storage", "AWS_ENDPOINT_URL", "dvc push --run-cache"):
        assert needed in readme, needed


def test_workflow_secret_names_are_documented():
    readme = (REPO / "docs" / "ci.md").read_text()
    for name in ("DVC_AWS_ACCESS_KEY_ID", "DVC_AWS_SECRET_ACCESS_KEY", "DVC_REMOTE_URL", "DVC_S3_ENDPOINT"):
        assert name in readme, name
        assert name in Path(REPO / ".github" / "workflows" / "pipeline.yml").read_text()
