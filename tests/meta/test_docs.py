"""The README, docs/, dvc.yaml, params.yaml, the Makefile and the CLI agree with each other."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dvc.cli.parser import get_main_parser

from flightdelay.cli import STAGES, build_parser, main
from tests.default_params import default_params
from tests.stage_cmd import stage_argv

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
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


def load_tool():
    spec = importlib.util.spec_from_file_location("readme_tables", REPO / "tools" / "readme_tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()


def code_in(text: str) -> list[str]:
    """The fenced blocks and inline code spans of a markdown text: where commands are written."""
    fenced = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return fenced + re.findall(r"`([^`\n]+)`", prose)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_every_make_target_in_the_docs_exists():
    targets = set(re.findall(r"^([a-z-]+):", MAKEFILE, re.M))
    for page in PAGES:
        used = {m for code in code_in(page.read_text()) for m in re.findall(r"(?<![\w/-])make ([a-z][a-z-]*)", code)}
        if page.name == "README.md":
            assert {"repro", "test", "docs"} <= used, "README should name make repro, make test and make docs"
        assert used <= targets, f"{page.name} names make targets the Makefile lacks: {sorted(used - targets)}"


def test_every_flightdelay_command_in_the_docs_exists():
    commands = set(subcommands(build_parser()))
    for page in PAGES:
        used = {
            m for code in code_in(page.read_text()) for m in re.findall(r"(?<![\w./-])flightdelay ([a-z][a-z-]*)", code)
        }
        if page.name == "README.md":
            assert "features" in used, "the README's example `python -m flightdelay features --help` is gone"
        assert used <= commands, f"{page.name} names flightdelay commands the CLI lacks: {sorted(used - commands)}"


def test_every_dvc_command_in_the_docs_exists():
    dvc_commands = subcommands(get_main_parser())
    for page in PAGES:
        for code in code_in(page.read_text()):
            for command, sub in re.findall(r"(?<![\w./$-])dvc ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", code):
                assert command in dvc_commands, f"{page.name}: `dvc {command}` is not a dvc command ({code!r})"
                group = subcommands(dvc_commands[command])
                if group and sub:
                    assert sub in group, f"{page.name}: `dvc {command} {sub}` is not a dvc command ({code!r})"


def test_the_command_checks_see_commands():
    # the three tests above would pass vacuously if code_in found nothing
    codes = code_in(README)
    assert "make repro\nmake test\n" in codes
    assert "dvc exp show --only-changed" in "\n".join(codes)


# Pages other branches add; linked from the README's index before they merge. Tolerated only while missing:
# once a page exists, test_pages_awaiting_merge_are_still_missing fails until it is removed from this set.
AWAITING_MERGE: set[str] = set()


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a markdown text (outside fenced blocks)."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    headings = re.findall(r"^#+ (.+)$", prose, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_in_the_docs_resolves():
    checked = 0
    for page in PAGES:
        prose = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
        for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            rel = dest.relative_to(REPO).as_posix() if dest.is_relative_to(REPO) else str(dest)
            if rel in AWAITING_MERGE and not dest.exists():
                continue
            assert dest.exists(), f"{page.relative_to(REPO)}: link to {target} points at nothing"
            if anchor and dest.suffix == ".md":
                anchors = heading_anchors(dest.read_text())
                assert anchor in anchors, f"{page.relative_to(REPO)}: {target}: no heading #{anchor} in {rel}"
            checked += 1
    assert checked >= 10, f"only {checked} links found: is the link pattern broken?"


def test_pages_awaiting_merge_are_still_missing():
    merged = sorted(p for p in AWAITING_MERGE if (REPO / p).exists())
    assert not merged, f"{merged} exist now: remove them from AWAITING_MERGE in tests/meta/test_docs.py"


def test_every_docs_page_is_in_the_readme_index():
    index = README.split("## Documentation", 1)[1]
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in index, f"docs/{page.name} is not linked from the README's Documentation index"


def test_readme_stage_graph_is_dvc_dag():
    assert TOOL.current_block(README, "stage-graph") == TOOL.dag_block(REPO), (
        "README's stage graph differs from `dvc dag --md`: run `make docs` and commit README.md"
    )


def test_readme_stage_map_matches_dvc_yaml():
    assert TOOL.current_block(README, "stage-map") == TOOL.stage_table(DVC), (
        "README's stage -> module -> outputs map differs from dvc.yaml: run `make docs` and commit README.md"
    )
    for name in DVC["stages"]:
        assert f"| `{name}` | `src/" in README, f"stage {name} is missing from the README's stage map"


def test_stage_map_names_a_stage_without_its_module():
    pipeline = {"stages": {"score": {"desc": "score", "cmd": "python -m flightdelay score", "deps": ["data/x"]}}}
    with pytest.raises(ValueError, match=r"stage 'score' should list exactly one dependency src/\.\.\./score\.py"):
        TOOL.stage_table(pipeline)


def test_readme_tool_finds_and_rewrites_a_stale_block(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(TOOL, "dag_block", lambda repo: TOOL.current_block(README, "stage-graph"))
    stale = tmp_path / "README.md"
    stale.write_text(README.replace(TOOL.current_block(README, "stage-map"), "| stage |\n|---|"))
    assert TOOL.main(["--check", "--readme", str(stale)]) == 1
    assert "stale generated block(s) ['stage-map']; run `make docs`" in capsys.readouterr().err
    assert TOOL.main(["--readme", str(stale)]) == 0
    assert stale.read_text() == TOOL.replace_block(README, "stage-map", TOOL.stage_table(DVC))
    assert TOOL.main(["--check", "--readme", str(stale)]) == 0


def test_ci_runs_make_test():
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_every_stage_command_is_a_cli_stage():
    assert list(DVC["stages"]) == list(STAGES)
    for name, stage in DVC["stages"].items():
        assert stage["cmd"].startswith(f"python -m flightdelay {name} --"), f"{name}: paths go on its cmd"


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
    assert main([*stage_argv("train", default_params()), "--params", "params.yaml"]) == 1
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
