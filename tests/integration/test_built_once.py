"""tests/conftest.py `built_once`: a session fixture's folder (`short_run`) is built once per test run, also when
pytest-xdist runs the tests in several worker processes (`make test`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, built_once

# A worker: built_once with the part of tmp_path_factory it uses, laid out as under xdist (<run root>/popen-<worker>).
WORKER = """
import sys, time
from pathlib import Path
from tests.conftest import built_once

class Factory:
    def __init__(self, base):
        self.base = base
    def getbasetemp(self):
        return self.base
    def mktemp(self, name):
        raise AssertionError("under xdist the folder is shared, not the worker's own")

def build(folder):
    with (folder.parent / "builds.txt").open("a") as log:
        log.write(sys.argv[2] + "\\n")
    time.sleep(2)  # the other worker asks meanwhile
    (folder / "repo").mkdir()
    return folder / "repo"

print(built_once(Factory(Path(sys.argv[1]) / f"popen-{sys.argv[2]}"), "short", build))
"""


class Factory:
    def __init__(self, base: Path) -> None:
        self.base = base

    def getbasetemp(self) -> Path:
        return self.base

    def mktemp(self, name: str) -> Path:
        folder = self.base / name
        folder.mkdir()
        return folder


def test_two_workers_build_once_and_share_the_folder(tmp_path):
    env = {"PYTHONPATH": str(REPO), "PYTEST_XDIST_WORKER_COUNT": "2"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), name],
            env={**env, "PYTEST_XDIST_WORKER": name},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("gw0", "gw1")
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {str(tmp_path / "short" / "repo")}
    assert len((tmp_path / "builds.txt").read_text().splitlines()) == 1


def test_a_failed_build_fails_the_other_workers_with_its_message(tmp_path, monkeypatch):
    def broken(folder: Path) -> Path:
        raise RuntimeError("dvc repro exited 1")

    def never(folder: Path) -> Path:
        raise AssertionError("built again after a failure")

    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    with pytest.raises(RuntimeError):
        built_once(Factory(tmp_path / "popen-gw0"), "short", broken)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    with pytest.raises(pytest.fail.Exception, match="short: building it failed in another worker:\nRuntimeError: dvc"):
        built_once(Factory(tmp_path / "popen-gw1"), "short", never)


def test_without_xdist_the_session_builds_in_a_folder_of_its_own(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    factory = Factory(tmp_path)
    assert built_once(factory, "short", lambda folder: folder) == tmp_path / "short"
    assert not (tmp_path / "short.built").exists()
