"""A workspace laid out like the repository (dvc.yaml and the schema file) for tests that run a stage through the
real CLI entry point, and what the stage left in it."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INPUTS = frozenset({"dvc.yaml", "params.yaml", "config/schema.yaml"})


def lay_out(root: Path) -> Path:
    """Copy dvc.yaml and config/schema.yaml of the repository into `root`; params.yaml is the test's to write."""
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    (root / "config").mkdir(exist_ok=True)
    shutil.copy(REPO / "config" / "schema.yaml", root / "config" / "schema.yaml")
    return root


def written(root: Path) -> list[str]:
    """Files a stage left behind, apart from its inputs and its own log."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() not in INPUTS and p.parts[len(root.parts)] != "logs"
    )
