"""Rewrite the README's generated blocks: the stage graph (`dvc dag --md`) and the stage -> module -> outputs map.

Both come from dvc.yaml, so the README cannot drift from the pipeline. `make docs` runs this;
tests/meta/test_docs.py fails until it has been run after a change to dvc.yaml.

    python tools/readme_tables.py            rewrite the blocks in README.md
    python tools/readme_tables.py --check    exit 1, naming the stale blocks, when README.md is out of date
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
REGENERATE = "make docs"


def begin_marker(name: str) -> str:
    return f"<!-- BEGIN {name}: generated from dvc.yaml by `{REGENERATE}`, do not edit by hand -->"


def end_marker(name: str) -> str:
    return f"<!-- END {name} -->"


def dvc_executable() -> str:
    """The dvc beside this interpreter (the project's virtualenv), else whatever `dvc` is on PATH."""
    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.exists() else "dvc"


def dag_block(repo: Path) -> str:
    """The stage graph as `dvc dag --md` prints it: a mermaid flowchart in a fenced block."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(
        [dvc_executable(), "dag", "--md"], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"dvc dag --md failed in {repo}:\n{proc.stderr}")
    return proc.stdout.strip()


def _out_paths(stage: dict) -> list[str]:
    entries = [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]
    return [next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries]


def stage_module(name: str, stage: dict) -> str:
    """The module a stage runs: its dependency under src/ named after the stage (`src/.../<stage>.py`)."""
    modules = [dep for dep in stage.get("deps", []) if dep.startswith("src/") and Path(dep).name == f"{name}.py"]
    if len(modules) != 1:
        raise ValueError(
            f"dvc.yaml: stage {name!r} should list exactly one dependency src/.../{name}.py, the module its cmd "
            f"runs; found {modules or 'none'}"
        )
    return modules[0]


def stage_table(pipeline: dict) -> str:
    """A markdown table, one row per stage of dvc.yaml: name, module, outputs, desc."""
    rows = ["| stage | module | outputs | what it does |", "|---|---|---|---|"]
    for name, stage in pipeline["stages"].items():
        if not stage.get("desc"):
            raise ValueError(f"dvc.yaml: stage {name!r} has no desc; the README's stage map shows it")
        outs = ", ".join(f"`{path}`" for path in _out_paths(stage))
        rows.append(f"| `{name}` | `{stage_module(name, stage)}` | {outs} | {stage['desc']} |")
    return "\n".join(rows)


def blocks(repo: Path) -> dict[str, str]:
    """Every generated block's name and its current content."""
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    return {"stage-graph": dag_block(repo), "stage-map": stage_table(pipeline)}


def _find_block(text: str, name: str) -> re.Match[str]:
    match = re.search(re.escape(begin_marker(name)) + r"\n(.*?)" + re.escape(end_marker(name)), text, re.S)
    if match is None:
        raise ValueError(f"README.md has no {name} block: add the lines\n{begin_marker(name)}\n{end_marker(name)}")
    return match


def current_block(text: str, name: str) -> str:
    """The content between a block's markers in `text`."""
    return _find_block(text, name).group(1).rstrip("\n")


def replace_block(text: str, name: str, content: str) -> str:
    match = _find_block(text, name)
    return f"{text[: match.start()]}{begin_marker(name)}\n{content}\n{end_marker(name)}{text[match.end() :]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="only report stale blocks (exit 1), write nothing")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md", help="default: %(default)s")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    fresh = blocks(REPO)
    stale = [name for name, content in fresh.items() if current_block(text, name) != content]
    if args.check:
        if stale:
            sys.stderr.write(f"{args.readme}: stale generated block(s) {stale}; run `{REGENERATE}`\n")
            return 1
        return 0
    for name in stale:
        text = replace_block(text, name, fresh[name])
    if stale:
        args.readme.write_text(text)
    sys.stderr.write(f"{args.readme}: {'rewrote ' + ', '.join(stale) if stale else 'up to date'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
