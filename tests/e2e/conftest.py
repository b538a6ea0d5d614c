"""Fixtures shared by the end-to-end tests.

Session-scoped: the clone that ran the short pipeline (`short_run`), the S3 server and the clone that pushed to it
are made once. `short_run` is the only short-window `dvc repro` from scratch in the run, also under pytest-xdist
(`built_once`, tests/conftest.py); a module that changes its repository works on `copy_of(short_run, ...)`
(tests/conftest.py), served by the copied cache and run-cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import built_once, clone, copy_of, dvc, run, stages_ran
from tests.e2e.s3 import BUCKET, URL, VARIANT, aws_env, free_port, s3_call, stop, wait_for_port
from tests.e2e.test_pipeline import ALL_STAGES, SHORT, set_params

# The short window with fewer boosting rounds: the model still beats the gate (ROC AUC > 0.65) on March.
SHORT_RUN = {**SHORT, ("train", "hist_gradient_boosting", "max_iter"): 60}


@pytest.fixture(scope="session")
def short_run(tmp_path_factory) -> Path:
    """A clone with SHORT_RUN's params committed and the pipeline run once. Shared: read it, never change it."""
    return built_once(tmp_path_factory, "short", run_short_window)


def run_short_window(folder: Path) -> Path:
    path = clone(folder / "repo")
    set_params(path, SHORT_RUN)
    assert stages_ran(dvc("repro", cwd=path).stdout) == ALL_STAGES
    run(["git", "add", "-A"], cwd=path)
    run(["git", "commit", "-qm", "short window"], cwd=path)
    return path


@pytest.fixture(scope="session")
def s3(tmp_path_factory) -> Iterator[str]:
    """moto's S3 server on a free local port, with an empty bucket. Yields the endpoint URL."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc, "moto.server")
        endpoint = f"http://127.0.0.1:{port}"
        s3_call(endpoint, "create_bucket", Bucket=BUCKET)
        yield endpoint
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="session")
def origin(tmp_path_factory, s3, short_run) -> Path:
    """A copy of the short run that ran one variant too (for the run-cache) and pushed both runs.

    Its endpoint is in .dvc/config.local (`dvc remote modify --local`); the fresh clones in test_remote.py
    take it from the AWS_ENDPOINT_URL variable instead, so both documented ways are exercised.
    """
    tmp = tmp_path_factory.mktemp("origin")
    repo = copy_of(short_run, tmp / "repo")
    env = aws_env(tmp)
    dvc("remote", "modify", "--local", "storage", "url", URL, cwd=repo)
    dvc("remote", "modify", "--local", "storage", "endpointurl", s3, cwd=repo)
    # The variant, pushed like CI pushes every run it makes: `dvc push --run-cache` uploads the workspace's
    # outputs and the run records, not the outputs of earlier runs, so each run pushes its own outputs.
    assert SHORT_RUN[VARIANT] == 1  # the committed run's value
    set_params(repo, {VARIANT: 2})
    ran = stages_ran(dvc("repro", cwd=repo, env=env).stdout)
    assert ran[:2] == ["predict", "evaluate"] and "train" not in ran, ran
    dvc("push", "--run-cache", cwd=repo, env=env)
    # Back to the committed run, and push its outputs too. git restores params.yaml, dvc.lock and the git-tracked
    # reports, `dvc checkout` the cached outputs from the local cache (no stage reruns: rerunning evaluate to report,
    # which the run-cache cannot restore, would only rewrite what git holds; test_reproducible.py checks that a
    # rerun gives the committed bytes).
    run(["git", "reset", "--quiet", "--hard"], cwd=repo)
    dvc("checkout", cwd=repo, env=env)
    assert json.loads(dvc("status", "--json", cwd=repo, env=env).stdout) == {}
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""

    pushed = dvc("push", "--run-cache", cwd=repo, env=env)
    assert "pushed" in pushed.stdout
    return repo
