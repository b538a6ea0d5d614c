"""A stage killed with SIGKILL part-way leaves nothing a later `dvc repro` accepts: the rerun gives the same
output hashes as a clean run, and no temporary files are left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.conftest import BIN, copy_of, dvc, pipeline_env, run

pytestmark = pytest.mark.slow

# stage -> a path that exists only while the stage is writing (or None: kill after a fixed delay)
HEAVY = {
    "ingest": "data/.ingested.*.tmp",
    "validate": "data/.validated.*.tmp",
    "features": "data/.processed.*.tmp",
    "train": None,
    "predict": None,
}


def lock_hashes(repo: Path) -> dict[str, list]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {name: [o["md5"] for o in stage.get("outs", [])] for name, stage in lock["stages"].items()}


def stage_process(dvc_pid: int, stage: str) -> psutil.Process | None:
    """The stage's process among those `dvc` started (not another run's on the same machine)."""
    try:
        children = psutil.Process(dvc_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for proc in children:
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if "-m" in cmd and cmd[cmd.index("-m") + 1 : cmd.index("-m") + 3] == ["flightdelay", stage]:
            return proc
    return None


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_part_way(repo: Path, stage: str, marker: str | None) -> str:
    """Start `dvc repro` of the stage alone and SIGKILL dvc and the stage part-way. Returns what was seen."""
    proc = subprocess.Popen(
        [str(BIN / "dvc"), "repro", "--force", "--single-item", stage],
        cwd=repo,
        env=pipeline_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    seen = ""
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            worker = stage_process(proc.pid, stage)
            if worker is not None:
                if marker is None:
                    time.sleep(1.0)
                    if alive(worker):  # else it had finished: killing it now would prove nothing
                        seen = "stage running for 1s"
                    break
                if list(repo.glob(marker)):
                    seen = f"{marker} being written"
                    break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return seen


@pytest.fixture(scope="module")
def clean(tmp_path_factory, short_run) -> tuple[Path, dict]:
    """A copy of the session's short-window run and the output hashes of that clean run (its dvc.lock).

    No retraining: a stage process lives for seconds after it starts (its imports alone take about one), so
    `train` and `predict` are still running when they are killed one second in, whatever the number of boosting
    rounds; `kill_part_way` checks that they were, and the test fails if a stage had already finished.
    """
    repo = copy_of(short_run, tmp_path_factory.mktemp("kill") / "repo")
    return repo, lock_hashes(repo)


@pytest.mark.parametrize("stage", sorted(HEAVY))
def test_killed_stage_reruns_to_the_clean_result(clean, stage):
    repo, hashes = clean
    seen = kill_part_way(repo, stage, HEAVY[stage])
    assert seen, f"{stage} finished before it could be killed; the test proved nothing"
    status = json.loads(dvc("status", "--json", cwd=repo).stdout)
    assert stage in status, f"after the kill DVC still accepts {stage}'s outputs: {status}"

    # The rerun either runs the stage again or, when DVC's cache already holds the clean outputs, restores
    # them; either way the workspace must end with exactly the clean run's outputs.
    dvc("repro", cwd=repo)
    assert lock_hashes(repo) == hashes
    assert json.loads(dvc("status", "--json", cwd=repo).stdout) == {}
    # A killed writer cannot clean up after itself; what it leaves is git-ignored, never a DVC output, and
    # removed the next time the stage runs.
    status_lines = run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo).stdout.splitlines()
    untracked = [line for line in status_lines if line.startswith("??")]
    assert untracked == [], untracked
    if HEAVY[stage]:
        dvc("repro", "--force", "--single-item", stage, cwd=repo)
        assert not list(repo.glob(HEAVY[stage])), "the rerun did not remove the killed run's temporary files"
        assert lock_hashes(repo) == hashes
