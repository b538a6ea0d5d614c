"""dvc.yaml is the one place a stage's paths, params and description are written; the code agrees with it.

For every stage: its module's docstring says what dvc.yaml's `desc` says; the options on its `cmd` are exactly
the paths its module declares (inputs among the deps, outputs among the outs); `run()` takes those paths as
keyword-only arguments without defaults, and the params sections dvc.yaml declares as its other arguments.
The few paths the human commands assume (core/layout.py) are the ones dvc.yaml names.
"""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
from pathlib import Path

import pytest
import yaml

from flightdelay import cli
from flightdelay.core import layout

REPO = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = DVC["stages"]


def names(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def outs(stage: str) -> list[str]:
    return names(STAGES[stage].get("outs")) + names(STAGES[stage].get("metrics"))


def options(stage: str) -> dict[str, str]:
    """The `--option value` pairs of the stage's cmd, `${...}` left as written."""
    argv = shlex.split(STAGES[stage]["cmd"])[4:]
    assert len(argv) % 2 == 0 and all(a.startswith("--") for a in argv[::2]), f"{stage}: cmd is not --option PATH"
    return {flag[2:]: value for flag, value in zip(argv[::2], argv[1::2], strict=True)}


def module(stage: str):
    return importlib.import_module(cli.runner(stage))


@pytest.mark.parametrize("stage", list(STAGES))
def test_the_description_is_the_module_docstring(stage):
    first = (module(stage).__doc__ or "").splitlines()[0]
    assert first.rstrip(".") == STAGES[stage]["desc"] == cli.stage_description(stage)


@pytest.mark.parametrize("stage", list(STAGES))
def test_the_cmd_passes_exactly_the_paths_the_stage_declares(stage):
    m = module(stage)
    given = options(stage)
    assert set(given) == {*m.INPUTS, *m.OUTPUTS, *m.UNTRACKED}, f"{stage}: cmd options differ from the module's"
    deps, produced = set(names(STAGES[stage]["deps"])), set(outs(stage))
    for option in m.INPUTS:
        assert given[option] in deps, f"{stage}: --{option} {given[option]} is not one of its deps"
    for option in m.OUTPUTS:
        assert given[option] in produced, f"{stage}: --{option} {given[option]} is not one of its outs"
    assert set(outs(stage)) == {given[o] for o in m.OUTPUTS}, f"{stage}: an out is not passed on its cmd"
    for option in m.UNTRACKED:
        assert given[option] not in deps | produced, f"{stage}: --{option} is tracked by DVC; declare it as such"


@pytest.mark.parametrize("stage", list(STAGES))
def test_run_takes_the_declared_params_sections_and_paths_without_defaults(stage):
    cmd = STAGES[stage]["cmd"]
    declared = {key.split(".")[0] for key in STAGES[stage].get("params", []) if f"${{{key}}}" not in cmd}
    signature = inspect.signature(module(stage).run).parameters.values()
    positional = [p.name for p in signature if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    keyword = [p for p in signature if p.kind is inspect.Parameter.KEYWORD_ONLY]
    if positional[:1] == ["sections"]:  # package records every section it declares: it gets them by name
        assert set(module(stage).SECTIONS) == declared, f"{stage}: SECTIONS differ from dvc.yaml params"
        assert set(positional[1:]) <= {"schema"}, f"{stage}: run() takes only the sections and the schema"
    else:
        assert set(positional) - {"schema"} == declared, f"{stage}: run() params arguments differ from dvc.yaml params"
    assert ("schema" in positional) == ("schema" in module(stage).INPUTS)
    assert keyword, f"{stage}: run() takes its paths as keyword-only arguments"
    assert all(p.default is inspect.Parameter.empty for p in keyword), f"{stage}: a run() path has a default"


def test_the_stage_parser_requires_every_path(capsys):
    parser = cli.stage_parser("evaluate", module("evaluate"))
    with pytest.raises(SystemExit):
        parser.parse_args([])
    assert "the following arguments are required: --predictions" in capsys.readouterr().err
    args = parser.parse_args(shlex.split(STAGES["evaluate"]["cmd"])[4:])
    assert args.metrics == "reports/metrics.json" and args.params == layout.PARAMS_FILE


def test_the_repository_layout_is_the_one_dvc_yaml_names():
    assert layout.GATE_FILE in outs("gate")
    assert layout.SLICES_FILE in outs("evaluate")
    assert layout.PLOTS_DIR in outs("evaluate")
    assert {layout.PACKAGE_DIR, layout.PACKAGE_POINTER} <= set(outs("package"))
    assert DVC["artifacts"]["flight-delay"]["path"] == layout.PACKAGE_DIR
    assert f"{layout.RECORD_DIR}/prod.json" in names(STAGES["gate"]["deps"])
    assert options("package")["lock"] == layout.DVC_LOCK
    assert all(p.startswith(f"{layout.REPORTS_DIR}/") for p in (layout.GATE_FILE, layout.SLICES_FILE, layout.PLOTS_DIR))
    assert re.fullmatch(r"[a-z.]+", layout.PARAMS_FILE) and (REPO / layout.PARAMS_FILE).is_file()
