"""The Makefile: which Python creates .venv, and what `make repro` and `make test` install.

Each test runs make on a copy of the Makefile in a temporary folder, with stand-in interpreters first on PATH
(scripts that print a version, or fail like a pyenv shim of a version that is not active).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUPPORTED = ("3.11", "3.12", "3.13")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def stand_in(folder: Path, name: str, version: str | None) -> Path:
    """An interpreter that reports `version`, or (None) one that fails as a pyenv shim does."""
    path = folder / name
    body = f"echo {version}" if version else f"echo 'pyenv: {name}: command not found' >&2; exit 127"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def project(tmp_path) -> Path:
    """A folder with the Makefile and (empty) lock files, and a bin/ for the stand-ins."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    for name in ("requirements-uv.lock", "requirements.lock", "requirements-dev.lock", "pyproject.toml"):
        (tmp_path / name).write_text("")
    (tmp_path / "bin").mkdir()
    return tmp_path


def make(project: Path, *args: str, python: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHON", "MAKEFLAGS", "MAKELEVEL")}
    env["PATH"] = f"{project / 'bin'}{os.pathsep}{env['PATH']}"
    if python is not None:
        env["PYTHON"] = python
    return subprocess.run(["make", *args], cwd=project, env=env, capture_output=True, text=True, check=False)


def chosen(project: Path, **kwargs) -> str:
    """The interpreter `make venv` would create .venv with (`make -n` prints the commands without running them)."""
    proc = make(project, "-n", "venv", **kwargs)
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if line.endswith(" -m venv .venv")]
    return line.removesuffix(" -m venv .venv")


def test_the_first_supported_candidate_is_chosen(project):
    stand_in(project / "bin", "python3.11", None)  # a pyenv shim of an inactive version: present, does not run
    stand_in(project / "bin", "python3.12", "3.12")
    stand_in(project / "bin", "python3.13", "3.13")
    stand_in(project / "bin", "python3", "3.13")
    assert chosen(project) == "python3.12"


def test_the_version_is_checked_not_the_name(project):
    stand_in(project / "bin", "python3.11", "3.10")  # misnamed
    stand_in(project / "bin", "python3.12", None)
    stand_in(project / "bin", "python3.13", "3.14")
    stand_in(project / "bin", "python3", "3.11")
    assert chosen(project) == "python3"


def test_python_given_wins(project):
    stand_in(project / "bin", "python3.11", "3.11")
    mine = stand_in(project, "mypython", "3.13")
    assert chosen(project, python=str(mine)) == str(mine)


def test_no_supported_python_is_one_clear_line(project):
    stand_in(project / "bin", "python3.11", None)
    stand_in(project / "bin", "python3.12", "3.10")
    stand_in(project / "bin", "python3.13", None)
    stand_in(project / "bin", "python3", "3.9")
    proc = make(project, "venv")
    assert proc.returncode != 0
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    for name in ("python3.11", "python3.12", "python3.13", "python3", *SUPPORTED):
        assert name in line
    assert not (project / ".venv").exists()


def test_an_unsupported_python_given_is_refused(project):
    old = stand_in(project, "oldpython", "3.10")
    proc = make(project, "venv", python=str(old))
    assert proc.returncode != 0
    assert f"error: PYTHON={old} is Python '3.10', not one of 3.11 3.12 3.13;" in proc.stderr
    assert not (project / ".venv").exists()


def installs(project: Path, target: str) -> list[str]:
    """The lock files `make -n target` would install, in order, for a .venv that has nothing installed yet."""
    (project / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    (project / ".venv" / "bin" / "python").touch()
    proc = make(project, "-n", target)
    assert proc.returncode == 0, proc.stderr
    return re.findall(r"--require-hashes --no-deps -r (\S+)", proc.stdout)


def test_repro_installs_uv_then_the_runtime_lock_only(project):
    assert installs(project, "repro") == ["requirements-uv.lock", "requirements.lock"]


def test_pip_installs_uv_and_uv_installs_the_locks(project):
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").touch()
    lines = [line for line in make(project, "-n", "test").stdout.splitlines() if "--require-hashes" in line]
    by_lock = {line.rsplit(" -r ", 1)[1]: line for line in lines}
    assert by_lock["requirements-uv.lock"].startswith(".venv/bin/python -m pip install ")
    uv = ".venv/bin/uv pip install --quiet --system-certs --python .venv/bin/python "
    for lock in ("requirements.lock", "requirements-dev.lock"):
        assert by_lock[lock].startswith(uv), by_lock[lock]


def test_serve_installs_the_runtime_lock_and_serves_prod_or_the_package_given(project):
    assert installs(project, "serve") == ["requirements-uv.lock", "requirements.lock"]
    commands = {
        args: [line for line in make(project, "-n", "serve", *args).stdout.splitlines() if " serve" in line][-1]
        for args in ((), ("PACKAGE=models/package/model-x", "PORT=8123"), ("STAGE=staging",))
    }
    assert commands[()].endswith("-m flightdelay serve --stage prod")
    assert commands[("PACKAGE=models/package/model-x", "PORT=8123")].endswith(
        "-m flightdelay serve --package models/package/model-x --port 8123"
    )
    assert commands[("STAGE=staging",)].endswith("-m flightdelay serve --stage staging")


@pytest.mark.parametrize("target", ["test", "test-fast", "lint"])
def test_test_targets_add_the_dev_lock(project, target):
    assert installs(project, target) == ["requirements-uv.lock", "requirements.lock", "requirements-dev.lock"]


def test_the_dev_set_installs_once(project):
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").touch()
    for installed in ("bin/uv", ".installed-runtime", ".installed-dev"):
        (project / ".venv" / installed).touch()  # newer than the lock files
    assert installs(project, "test") == []


# --- the lock files --------------------------------------------------------------------------------------------


def pins(name: str) -> dict[str, tuple[str, list[str]]]:
    """Package -> (the pin line, its hashes) of a lock file written by `uv pip compile --generate-hashes`."""
    entries: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", (REPO / name).read_text()):
        line = block.split(" \\\n", 1)[0]
        package = re.split(r"[=; ]", line, maxsplit=1)[0].lower()
        entries[package] = (line, re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


def extra_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=~! ;]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_the_locks_are_hash_pinned():
    for name in ("requirements-uv.lock", "requirements.lock", "requirements-dev.lock"):
        entries = pins(name)
        assert len(entries) > (0 if name == "requirements-uv.lock" else 50), name
        for package, (line, hashes) in entries.items():
            assert "==" in line and hashes, f"{name}: {package} is not pinned with hashes"


def test_the_dev_lock_has_the_runtime_versions_and_the_runtime_lock_no_dev_tools():
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    for package, (line, hashes) in runtime.items():
        assert package in dev, f"{package} is in requirements.lock but not in requirements-dev.lock"
        assert dev[package] == (line, hashes), f"{package}: {line} vs {dev[package][0]}"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dev_tools = extra_names(project["optional-dependencies"]["dev"]) - extra_names(project["dependencies"])
    assert dev_tools <= dev.keys()
    assert not dev_tools & runtime.keys(), f"dev tools in the runtime lock: {dev_tools & runtime.keys()}"


def test_uv_has_one_pin_the_bootstrap_lock():
    bootstrap = pins("requirements-uv.lock")
    assert list(bootstrap) == ["uv"], "requirements-uv.lock holds uv alone (it has no dependencies)"
    wanted = [line for line in (REPO / "requirements-uv.in").read_text().splitlines() if not line.startswith("#")]
    assert wanted == [bootstrap["uv"][0]], "edit requirements-uv.in, then `make lock`"
    for name in ("requirements.lock", "requirements-dev.lock"):
        assert "uv" not in pins(name), f"{name} pins uv too: requirements-uv.lock is its one pin"
