"""Fixtures shared by the end-to-end tests that use a DVC remote (test_remote.py, test_act.py).

Session-scoped: the S3 server and the clone that ran the short pipeline and pushed it are made once.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import clone, dvc, run, stages_ran
from tests.e2e.s3 import BUCKET, URL, VARIANT, aws_env, free_port, s3_call, stop, wait_for_port
from tests.e2e.test_pipeline import SHORT, set_params


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
def origin(tmp_path_factory, s3) -> Path:
    """A clone that ran the short pipeline (and one variant, for the run-cache), committed it and pushed it.

    Its endpoint is in .dvc/config.local (`dvc remote modify --local`); the fresh clones in test_remote.py
    take it from the AWS_ENDPOINT_URL variable instead, so both documented ways are exercised.
    """
    tmp = tmp_path_factory.mktemp("origin")
    repo = clone(tmp / "repo")
    env = aws_env(tmp)
    dvc("remote", "modify", "--local", "storage", "url", URL, cwd=repo)
    dvc("remote", "modify", "--local", "storage", "endpointurl", s3, cwd=repo)
    # The variant first, pushed like CI pushes every run it makes: `dvc push --run-cache` uploads the workspace's
    # outputs and the run records, not the outputs of earlier runs, so each run pushes its own outputs.
    set_params(repo, {**SHORT, ("train", "hist_gradient_boosting", "max_iter"): 60, VARIANT: 2})
    dvc("repro", cwd=repo, env=env)
    dvc("push", "--run-cache", cwd=repo, env=env)
    set_params(repo, {VARIANT: 1})
    ran = stages_ran(dvc("repro", cwd=repo, env=env).stdout)
    assert ran[:2] == ["predict", "evaluate"] and "train" not in ran, ran
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-qm", "short window"], cwd=repo)

    pushed = dvc("push", "--run-cache", cwd=repo, env=env)
    assert "pushed" in pushed.stdout
    return repo
