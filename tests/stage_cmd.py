"""The command line dvc.yaml gives a stage, for tests that run a stage in-process with `cli.main`.

Stage paths are written only in dvc.yaml (passed on the stage's `cmd`); tests take them from there rather than
writing them a second time.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.default_params import load_yaml

REPO = Path(__file__).resolve().parents[1]
PREFIX = ["python", "-m", "flightdelay"]


def lookup(params: Mapping[str, Any], dotted: str) -> Any:
    node: Any = params
    for key in dotted.split("."):
        node = node[key]
    return node


def stage_argv(stage: str, params: Mapping[str, Any] | None = None, dvc_file: Path = REPO / "dvc.yaml") -> list[str]:
    """`[stage, --option, path, ...]` from the stage's cmd, `${...}` resolved from `params` (default: the
    params.yaml in the current directory, which a test writes into its workspace)."""
    if params is None:
        params = load_yaml(Path("params.yaml").read_text())
    cmd = dvc_stages(dvc_file)[stage]["cmd"]
    resolved = re.sub(r"\$\{([^}]+)\}", lambda m: str(lookup(params, m.group(1))), cmd)
    argv = shlex.split(resolved)
    assert argv[: len(PREFIX)] == PREFIX, f"dvc.yaml stage {stage}: cmd does not start with {' '.join(PREFIX)}"
    return argv[len(PREFIX) :]


def dvc_stages(dvc_file: Path = REPO / "dvc.yaml") -> dict[str, Any]:
    """The `stages` of a dvc.yaml, parsed once per process and file version (a test that edits its own copy gets
    the edit). Do not change what it returns: the next caller gets the same objects."""
    stat = dvc_file.stat()
    return _parsed(dvc_file.resolve(), stat.st_mtime_ns, stat.st_size)["stages"]


@functools.cache
def _parsed(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    return load_yaml(path.read_text())
