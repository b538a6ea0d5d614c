"""The same data and model under another Python: a second supported interpreter, its own virtualenv made from
requirements.lock, runs the data stages and `train` of the session's short window (`short_run`,
tests/e2e/conftest.py) from an empty cache, and must write the dvc.lock hashes this interpreter wrote.

Across Python versions (3.11, 3.12 and 3.13, each installed from the same lock file) these are identical, byte
for byte: the data at every tier and the model file (what differs by design, the package's name, is in
test_reproducible.py's docstring). "The same bytes on every Python" is proven as well on three months as on twelve,
and costs a fifth of the time.

A module of its own (not in test_reproducible.py) so that pytest-xdist's `--dist loadfile` can run it beside the
full-window run on another worker: the two are the suite's longest tests (docs/testing.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, run, stages_ran

pytestmark = pytest.mark.slow

SUPPORTED = ("3.11", "3.12", "3.13")
# The stages whose outputs are the same bytes under every supported Python: the data stages and `train`.
SAME_ON_EVERY_PYTHON = ["raw", "ingest", "validate", "features", "train"]
# Interpreters for the cross-version test are given here, or found as python3.x on PATH or in pyenv.
SECOND_PYTHON_VARIABLE = "FLIGHTDELAY_SECOND_PYTHON"
# Virtualenvs made from requirements.lock for other interpreters, kept between runs (git-ignored).
VENV_CACHE = REPO / ".venvs"


def python_version(python: str | Path) -> str | None:
    """'3.12' for a working interpreter; None for a missing one or a shim that does not run (pyenv's do that)."""
    try:
        proc = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def second_python() -> tuple[Path, str] | None:
    """A supported interpreter of another minor version than the one running the tests."""
    this = f"{sys.version_info[0]}.{sys.version_info[1]}"
    given = os.environ.get(SECOND_PYTHON_VARIABLE)
    if given:
        version = python_version(given)
        if version not in SUPPORTED or version == this:
            pytest.fail(f"{SECOND_PYTHON_VARIABLE}={given} is Python {version}: give one of {SUPPORTED} but {this}")
        return Path(given), version
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for version in SUPPORTED:
        if version == this:
            continue
        found = [shutil.which(f"python{version}"), *sorted(pyenv.glob(f"{version}.*/bin/python{version}"))]
        for python in filter(None, found):
            if python_version(python) == version:
                return Path(python), version
    return None


def lock_venv(python: Path, version: str) -> Path:
    """A virtualenv for `python` with requirements.lock installed, made once per lock file and interpreter."""
    lock = REPO / "requirements.lock"
    digest = hashlib.sha256(lock.read_bytes() + str(python.resolve()).encode()).hexdigest()[:12]
    venv = VENV_CACHE / f"py{version}-{digest}"
    done = venv / ".installed-from-lock"
    if not done.exists():
        shutil.rmtree(venv, ignore_errors=True)  # an install that was cut off
        run([str(python), "-m", "venv", str(venv)], cwd=REPO)
        # uv, as `make venv` installs the locks (the project's .venv has it): hash-checked like pip, much faster.
        uv = Path(sys.executable).with_name("uv")
        install = (
            [str(uv), "pip", "install", "--quiet", "--system-certs", "--python", str(venv / "bin" / "python")]
            if uv.exists()
            else [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        )
        run([*install, "--require-hashes", "--no-deps", "-r", str(lock)], cwd=REPO, timeout=1200)
        done.write_text(f"{lock.name} on {python}\n")
    return venv


def out_hashes(lock_text: str, stages: list[str]) -> dict[str, str]:
    lock = yaml.safe_load(lock_text)
    return {out["path"]: out["md5"] for stage in stages for out in lock["stages"][stage]["outs"]}


@pytest.mark.timeout(3600)
def test_another_python_makes_the_same_data_and_model(tmp_path, request):
    """The data stages and `train` under a second interpreter give the dvc.lock hashes of this one (short window)."""
    found = second_python()
    if found is None:
        pytest.skip(
            f"no second Python ({', '.join(SUPPORTED)}, other than this one) "
            f"on PATH or in pyenv; set {SECOND_PYTHON_VARIABLE}=/path/to/python3.x to run this test"
        )
    python, version = found
    short_run: Path = request.getfixturevalue("short_run")  # after the skip: no short run for a skipped test
    venv = lock_venv(python, version)
    # A git clone of the short run: its params and the dvc.lock this interpreter wrote, and an empty DVC cache.
    repo = tmp_path / "repo"
    run(["git", "clone", "--quiet", "--no-hardlinks", str(short_run), str(repo)], cwd=tmp_path)
    assert not (repo / ".dvc" / "cache").exists()
    reference = out_hashes(run(["git", "show", "HEAD:dvc.lock"], cwd=repo).stdout, SAME_ON_EVERY_PYTHON)
    assert reference == out_hashes((short_run / "dvc.lock").read_text(), SAME_ON_EVERY_PYTHON)

    # The stages run the clone's code (PYTHONPATH) with the second interpreter and its own dvc.
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        "PYTHONPATH": str(repo / "src"),
    }
    probe = "import sys, flightdelay; print('%d.%d' % sys.version_info[:2], flightdelay.__file__)"
    assert run(["python", "-c", probe], cwd=repo, env=env).stdout.split() == [
        version,
        str(repo / "src" / "flightdelay" / "__init__.py"),
    ]
    dvc_repro = [str(venv / "bin" / "dvc"), "repro", "train"]
    ran = stages_ran(run(dvc_repro, cwd=repo, env=env, timeout=3000).stdout)
    assert ran == SAME_ON_EVERY_PYTHON, ran

    produced = out_hashes((repo / "dvc.lock").read_text(), SAME_ON_EVERY_PYTHON)
    differ = {path: (reference[path], md5) for path, md5 in produced.items() if reference.get(path) != md5}
    assert produced.keys() == reference.keys()
    assert not differ, f"Python {version} made other bytes than this Python's dvc.lock (reference, new): {differ}"
