"""The README, dvc.yaml, params.yaml, the Makefile and the CLI agree with each other."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flightdelay.cli import STAGES, build_parser, main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
MAKEFILE = (REPO / "Makefile").read_text()


def lookup(tree: dict, dotted: str):
    node = tree
    for key in dotted.split("."):
        node = node[key]
    return node


def test_quick_start_is_exactly_make_repro_and_make_test():
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no shell block in the Quick start"
    assert block.group(1).split("\n")[:-1] == ["make repro", "make test"]


def test_every_make_target_in_readme_exists():
    targets = set(re.findall(r"^([a-z-]+):", MAKEFILE, re.M))
    used = set(re.findall(r"make ([a-z-]+)", README))
    assert used, "README names no make target"
    assert used <= targets, f"README names make targets the Makefile lacks: {used - targets}"


def test_ci_runs_make_test():
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_every_stage_command_is_a_cli_stage():
    for name, stage in DVC["stages"].items():
        assert stage["cmd"] == f"python -m flightdelay {name}"
        assert name in STAGES


def _outs(stage: dict) -> list[str]:
    entries = [*stage.get("outs", []), *stage.get("metrics", [])]
    return [next(iter(o)) if isinstance(o, dict) else o for o in entries]


def test_every_params_key_in_dvc_yaml_exists():
    produced = {out for stage in DVC["stages"].values() for out in _outs(stage)}
    for name, stage in DVC["stages"].items():
        for key in stage.get("params", []):
            lookup(PARAMS, key)  # KeyError names the missing key
        for dep in stage.get("deps", []):
            for ref in re.findall(r"\$\{([^}]+)\}", dep):
                assert isinstance(lookup(PARAMS, ref), str), (name, ref)
            if "${" not in dep:
                # a dep is a file in git or another stage's output (absent from a fresh clone until `dvc repro`)
                assert (REPO / dep).exists() or dep in produced, f"{name}: missing dep {dep}"


def test_every_params_section_is_documented():
    for section in PARAMS:
        assert f"| `{section}` |" in README, f"params section {section!r} is not in the README's params table"


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for stage in STAGES:
        assert stage in out


def test_bad_params_file_is_a_message_not_a_traceback(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("train: {task: classify}\n")
    assert main(["train", "--params", "params.yaml"]) == 1
    err = capfd.readouterr().err
    assert "train failed: params.yaml: data: missing (expected a mapping with keys raw_dir, schema)" in err
    assert "train failed: params.yaml: train.task: 'classify' is not one of 'classification' or 'regression'" in err
    assert "Traceback" not in err
    log_text = (tmp_path / "logs" / "train.log").read_text()
    assert log_text.count("train failed") == err.count("train failed")


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "flightdelay", "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert "ingest" in proc.stdout
