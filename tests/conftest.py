"""Shared test helpers: running the real pipeline in a temporary clone of this repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its kind, the folder under tests/ it lives in (`pytest -m model`), and the tests of
    one data set with `dataset_specific`."""
    tests = Path(__file__).resolve().parent
    for item in items:
        parts = item.path.resolve().relative_to(tests).parts
        if len(parts) > 1 and parts[0] in KINDS:
            item.add_marker(getattr(pytest.mark, parts[0]))
        if "/".join(parts).startswith(DATASET_SPECIFIC):
            item.add_marker(pytest.mark.dataset_specific)


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
