"""The command line dvc.yaml gives a stage, for tests that run a stage in-process with `cli.main`.

Stage paths are written only in dvc.yaml (passed on the stage's `cmd`); tests take them from there rather than
writing them a second time.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

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
        params = yaml.safe_load(Path("params.yaml").read_text())
    cmd = yaml.safe_load(dvc_file.read_text())["stages"][stage]["cmd"]
    resolved = re.sub(r"\$\{([^}]+)\}", lambda m: str(lookup(params, m.group(1))), cmd)
    argv = shlex.split(resolved)
    assert argv[: len(PREFIX)] == PREFIX, f"dvc.yaml stage {stage}: cmd does not start with {' '.join(PREFIX)}"
    return argv[len(PREFIX) :]
