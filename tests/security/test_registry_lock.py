"""Concurrent promotions and rollbacks: one holds the registry lock, the other is refused and changes nothing.

Two real processes on a temporary repository: the first promotes and is held at its commit (after its tag)
until the test lets it go, and the second runs `python -m flightdelay promote` meanwhile. No sleeps decide the
outcome: the first process says it holds the lock by creating a file, and waits for a file the test creates.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flightdelay.release import registry
from flightdelay.release.registry import RegistryError
from tests.integration.test_registry import commit_model, git, prod_record
from tests.integration.test_registry import repo as repo  # the fixture: a temporary repository with an empty registry

HELD_AT_COMMIT = """
import sys, time
from pathlib import Path
from flightdelay.release import registry

repo, ready, go = (Path(a) for a in sys.argv[1:4])
commit = registry._write_and_commit

def held(*args, **kwargs):
    ready.touch()  # the lock is held and the tag made; the commit waits for the test
    while not go.exists():
        time.sleep(0.05)
    commit(*args, **kwargs)

registry._write_and_commit = held
registry.promote(repo, "prod")
"""

HOLD_LOCK = """
import sys, time
from pathlib import Path
from flightdelay.release import registry

repo, ready = Path(sys.argv[1]), Path(sys.argv[2])
with registry.registry_lock(repo):
    ready.touch()
    time.sleep(3600)
"""


def start(script: str, *args: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    """Until `path` exists; fails with the process's output if it ends first (a generous limit, not a timing test)."""
    deadline = time.monotonic() + 300
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the lock holder exited {proc.returncode} before holding the lock:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the lock holder never held the lock")
        time.sleep(0.05)


def state(repo: Path) -> tuple[list[str], str, str, str]:
    """Everything a registry change touches: tags, HEAD, the prod record and the working tree's status."""
    tags = sorted(git(repo, "tag", "--list").split())
    head = git(repo, "rev-parse", "HEAD").strip()
    return tags, head, (repo / "registry" / "prod.json").read_text(), git(repo, "status", "--porcelain")


@pytest.mark.slow  # two promotions in two processes
def test_a_second_promotion_at_the_same_time_is_refused_and_leaves_nothing(repo, tmp_path):
    name = commit_model(repo, seed=1)["name"]
    before = git(repo, "rev-parse", "HEAD").strip()
    ready, go = tmp_path / "ready", tmp_path / "go"
    first = start(HELD_AT_COMMIT, repo, ready, go)
    try:
        wait_for(ready, first)
        midway = state(repo)
        assert any(t.startswith("flight-delay#prod#") for t in midway[0])  # the first one is half-way: tagged

        second = subprocess.run(
            [sys.executable, "-m", "flightdelay", "promote", "prod", "--repo", str(repo)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert second.returncode == 1
        lock = registry.lock_path(repo)
        assert f"another promotion is running (lock {lock} held by pid {first.pid} since " in second.stderr
        assert "try again when it finishes" in second.stderr
        assert state(repo) == midway  # the loser made no tag, no commit and no change to the record
    finally:
        go.touch()
        out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out

    tags = git(repo, "tag", "--list").split()
    assert [t for t in tags if t.startswith("flight-delay#prod#")] == ["flight-delay#prod#1"]
    assert [t for t in tags if t.startswith("flight-delay@")] == ["flight-delay@v0.0.1"]
    assert git(repo, "rev-list", f"{before}..HEAD").split() == [git(repo, "rev-parse", "HEAD").strip()]
    assert git(repo, "status", "--porcelain") == ""
    assert prod_record(repo)["package"]["name"] == name


def test_the_lock_refuses_rollback_too_and_is_released_when_its_holder_is_killed(repo, tmp_path):
    commit_model(repo, seed=1)
    ready = tmp_path / "ready"
    holder = start(HOLD_LOCK, repo, ready)
    try:
        wait_for(ready, holder)
        before = state(repo)
        for operation in (registry.promote, registry.rollback):
            with pytest.raises(RegistryError, match=rf"^another promotion is running \(.* held by pid {holder.pid} "):
                operation(repo, "prod")
        assert state(repo) == before
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # no clean exit: the lock file stays, with the dead holder's pid
        holder.communicate(timeout=60)
    assert registry.lock_path(repo).exists()

    assert registry.promote(repo, "prod")["promoted"]["version"] == "v0.0.1"


def test_a_failed_commit_undoes_the_tags_and_the_record(repo, monkeypatch):
    commit_model(repo, seed=1)
    before = state(repo)
    git_ = registry._git

    def commit_fails(path: Path, *args: str) -> str:
        if args[0] == "commit":
            raise RegistryError("git commit failed: disk full")
        return git_(path, *args)

    monkeypatch.setattr(registry, "_git", commit_fails)
    with pytest.raises(RegistryError, match="disk full"):
        registry.promote(repo, "prod")
    assert state(repo) == before  # no registration or stage tag, the record as it was, nothing staged

    monkeypatch.setattr(registry, "_git", git_)
    assert registry.promote(repo, "prod")["promoted"]["tag"] == "flight-delay#prod#1"


def test_a_refused_promotion_leaves_the_index_as_it_was(repo):
    commit_model(repo, seed=1)
    record = repo / "registry" / "prod.json"
    record.write_text(record.read_text() + "\n")
    git(repo, "add", "--", "registry/prod.json")
    with pytest.raises(RegistryError, match="uncommitted changes"):
        registry.promote(repo, "prod")
    assert git(repo, "diff", "--cached", "--name-only").split() == ["registry/prod.json"]


def test_every_worktree_shares_one_lock(repo, tmp_path):
    other = tmp_path / "other"
    git(repo, "worktree", "add", "--quiet", "-b", "other", str(other))
    assert (
        registry.lock_path(other).resolve()
        == registry.lock_path(repo).resolve()
        == (repo / ".git" / registry.LOCK_FILE).resolve()
    )
