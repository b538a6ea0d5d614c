"""Shared test helpers: running the real pipeline in a temporary clone of this repository."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KINDS = ("unit", "data", "model", "integration", "security", "meta", "e2e")
# Test modules (or folders) that check one data set's own columns and numbers: the default flights data set's
# feature builder, bundled tables and trained model, and the Seattle weather worked example. A fork of the
# pipeline for another data set adapts these (`pytest -m dataset_specific` lists them); the rest pass on any.
DATASET_SPECIFIC = (
    "unit/test_features.py",
    "data/test_bundled.py",
    "model/",
    "e2e/test_new_dataset.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, one OpenMP thread per core and worker (unless OMP_NUM_THREADS is set already).

    Each worker runs stages (scikit-learn's OpenMP) beside the others: with every process using every core, the
    threads' spin-waits can make a fit many times slower (docs/benchmarks.md). Model files do not record the thread
    count (modeling/model.py `without_thread_counts`), so the outputs are the same bytes either way.
    """
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(workers)))


def release_log_handlers() -> None:
    """Remove and close the root logger's handlers that `flightdelay.core.logs.configure` made.

    `configure` (run by every CLI entry point a test calls in process) binds a console handler to the `sys.stderr`
    of that moment, in a test often pytest's captured stream, which pytest closes when the test ends. A record
    logged later through that handler (a service's canary thread finishing between two tests) fails to write
    and prints "--- Logging error ---". Its handlers are plain `StreamHandler` and `FileHandler`; pytest's own
    are subclasses of them and stay.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) in (logging.StreamHandler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()


@pytest.fixture(autouse=True)
def _log_handlers_end_with_their_test() -> Iterator[None]:
    yield
    release_log_handlers()


# The longest test modules, longest first: run before all others, so that under `make test` (pytest-xdist,
# `--dist loadfile`, modules handed out in this order) each starts on a worker of its own early and the many short
# tests fill in at the end (docs/testing.md, "How `make test` runs in parallel"). The first does not need the
# session's `short_run`; the second builds it on the other worker meanwhile. Order only: every test still runs.
RUN_FIRST = (
    "e2e/test_reproducible.py",
    "e2e/test_reproducible_python.py",
    "e2e/test_pipeline.py",
    "e2e/test_bench.py",
    "e2e/test_remote.py",
    "e2e/test_new_dataset.py",
    "e2e/test_release.py",
    "e2e/test_kill.py",
    "e2e/test_monitoring.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its kind, the folder under tests/ it lives in (`pytest -m model`), and the tests of
    one data set with `dataset_specific`; move the modules in RUN_FIRST to the front, in that order (a stable sort:
    the order of the tests inside a module, and of all other modules, stays as collected)."""
    tests = Path(__file__).resolve().parent
    rank: dict[str, int] = {}
    for item in items:
        parts = item.path.resolve().relative_to(tests).parts
        if len(parts) > 1 and parts[0] in KINDS:
            item.add_marker(getattr(pytest.mark, parts[0]))
        name = "/".join(parts)
        if name.startswith(DATASET_SPECIFIC):
            item.add_marker(pytest.mark.dataset_specific)
        rank[item.nodeid] = RUN_FIRST.index(name) if name in RUN_FIRST else len(RUN_FIRST)
    items.sort(key=lambda item: rank[item.nodeid])


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]) -> Path:
    """What `build(folder)` returns, built once per test run even when pytest-xdist runs the tests in several processes.

    For a session fixture that several modules read (`short_run`). Without xdist a session fixture is already made
    once: `build` gets a new temporary folder. Under xdist each worker has a session of its own, so the folder is in
    the run's shared temporary root: the first worker to ask builds it under a file lock while the others wait, then
    they reuse it. A failed build is recorded, and the other workers fail at once with its message.
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent  # the run's root, shared by its workers (pytest-N/)
    done, failed = root / f"{name}.built", root / f"{name}.failed"
    with FileLock(root / f"{name}.lock"):
        if failed.exists():
            pytest.fail(f"{name}: building it failed in another worker:\n{failed.read_text()}")
        if not done.exists():
            folder = root / name
            folder.mkdir()
            try:
                result = build(folder)
            except BaseException as exc:  # pytest.fail's exception included
                failed.write_text(f"{type(exc).__name__}: {exc}")
                raise
            done.write_text(str(result))
    return Path(done.read_text())


def pipeline_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment stage commands run in: this interpreter first on PATH, a git identity, no analytics.

    `extra` sets variables on top (a None value removes one).
    """
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("GIT_AUTHOR_NAME", "flightdelay tests")
    env.setdefault("GIT_AUTHOR_EMAIL", "tests@flightdelay.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "flightdelay tests")
    env.setdefault("GIT_COMMITTER_EMAIL", "tests@flightdelay.invalid")
    env["DVC_NO_ANALYTICS"] = "1"
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(
    cmd: list[str],
    cwd: Path,
    check: bool = True,
    timeout: float = 900,
    env: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the test with its output when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=pipeline_env(env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def dvc(
    *args: str, cwd: Path, check: bool = True, timeout: float = 900, env: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "dvc"), *args], cwd=cwd, check=check, timeout=timeout, env=env)


def stages_ran(output: str) -> list[str]:
    """Stage names from `dvc repro` / `dvc exp run` output lines like "Running stage 'train':"."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def clone(dest: Path) -> Path:
    """A fresh clone of the committed repository (what CI and a new user get), with an empty DVC cache."""
    run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)], cwd=dest.parent)
    return dest


def copy_of(source: Path, dest: Path) -> Path:
    """A clone of `source` at its HEAD with its DVC cache hard-linked in (`cp -al`), outputs checked out.

    Nothing is recomputed: `dvc checkout` fills data/ and models/ from the cache, and a later `dvc repro` of
    anything `source` already ran is restored from the run-cache. DVC never writes into a cached object (they are
    read-only, named by their hash), so the hard links leave `source` as it was.
    """
    run(["git", "clone", "--quiet", "--no-hardlinks", str(source), str(dest)], cwd=dest.parent)
    subprocess.run(["cp", "-al", str(source / ".dvc" / "cache"), str(dest / ".dvc" / "cache")], check=True)
    dvc("checkout", cwd=dest)
    assert json.loads(dvc("status", "--json", cwd=dest).stdout) == {}
    return dest
