"""Every module a stage runs is one of its deps in dvc.yaml, and no other package module is.

A stage's code is what `python -m flightdelay <stage>` imports: `__main__.py`, `cli.py` and what it imports at
the top, then the stage's own module (cli imports it by name, `cli.runner`) and everything that imports, at
module level or inside a function, within the `flightdelay` package. A module missing from the deps would let
a change to it rerun nothing, and let the run-cache restore outputs that other code made; a module listed but
not imported reruns the stage for nothing. Non-package deps (data, config/schema.yaml) are not checked here.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from flightdelay import cli
from tests import stage_cmd

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
PACKAGE = "flightdelay"
CMD = re.compile(rf"^python -m {PACKAGE} ([a-z-]+)(?: |$)")


def module_file(name: str, src: Path) -> Path | None:
    """The file of module `name` under `src`: a .py file or a package's __init__.py (None for neither)."""
    base = src.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(name: str, src: Path, package: str = PACKAGE) -> set[str]:
    """The package modules that module `name` imports anywhere in its file (top level or inside functions)."""
    path = module_file(name, src)
    assert path is not None, f"{name}: no such module under {src}"
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]  # the package relative imports start at
    return {
        target
        for target in import_targets(path.read_text(), str(path), here)
        if (target == package or target.startswith(f"{package}.")) and module_file(target, src)
    }


@functools.cache
def import_targets(text: str, filename: str, here: str) -> tuple[str, ...]:
    """Every module name a file's imports name, relative imports resolved from package `here`. Cached by the
    file's text: the stage tests walk the same modules many times (each parse is a few milliseconds)."""
    targets: list[str] = []
    for node in ast.walk(ast.parse(text, filename=filename)):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = here.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # `from pkg import x` imports pkg, and pkg.x too when x is a module
            targets += [module, *(f"{module}.{alias.name}" for alias in node.names)]
    return tuple(targets)


def closure(roots: set[str], src: Path, package: str = PACKAGE) -> set[Path]:
    """Files of `roots` and of every package module they import, directly or not, with their packages' __init__."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        parents = [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b first
        todo.extend(p for p in parents if module_file(p, src))
        todo.extend(imported_modules(name, src, package))
    return {module_file(name, src) for name in seen}  # type: ignore[misc]


def stage_code(command: str, src: Path = SRC) -> set[str]:
    """The package files `python -m flightdelay <command>` runs, as paths relative to the repository."""
    roots = {f"{PACKAGE}.__main__", cli.runner(command)}
    return {path.relative_to(src.parent).as_posix() for path in closure(roots, src)}


def dvc_stages() -> dict[str, dict]:
    return stage_cmd.dvc_stages(REPO / "dvc.yaml")


# A stage that records the code other stages ran: `package` writes the model's lineage (the dvc.lock hashes of
# every dep of train and of the stages before it, code included) into the manifest, so that code is part of its
# output and must be among its deps, or a change to it would leave a committed package no fresh run reproduces.
RECORDS_LINEAGE_OF = {"package": "train"}


def upstream_code(stage: str, stages: dict[str, dict]) -> set[str]:
    """The package files among the deps of `stage` and of every stage whose outputs it reads, as dvc.yaml says."""
    producers = {
        (out if isinstance(out, str) else next(iter(out))): name
        for name, spec in stages.items()
        for out in spec.get("outs", []) or []
    }
    seen: set[str] = set()
    todo = [stage]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [producers[d] for d in stages[name].get("deps", []) if isinstance(d, str) and d in producers]
    return {
        dep
        for name in seen
        for dep in stages[name].get("deps", [])
        if isinstance(dep, str) and dep.startswith(f"src/{PACKAGE}/")
    }


@pytest.mark.parametrize("stage", sorted(dvc_stages()))
def test_a_stage_lists_exactly_the_modules_it_runs(stage):
    spec = dvc_stages()[stage]
    match = CMD.match(spec["cmd"])
    assert match, f"dvc.yaml stage {stage}: cmd {spec['cmd']!r} is not `python -m {PACKAGE} <command>`"
    code = stage_code(match.group(1))
    if stage in RECORDS_LINEAGE_OF:
        code |= upstream_code(RECORDS_LINEAGE_OF[stage], dvc_stages())
    listed = {dep for dep in spec.get("deps", []) if isinstance(dep, str) and dep.startswith(f"src/{PACKAGE}/")}
    missing, extra = sorted(code - listed), sorted(listed - code)
    assert not missing, f"dvc.yaml stage {stage}: deps lack modules it imports: {missing}; add them to its deps"
    assert not extra, f"dvc.yaml stage {stage}: deps list modules it does not import: {extra}; remove them"


def test_the_package_stage_reruns_when_any_code_its_lineage_records_changes():
    """The manifest's lineage records the code of train and of every stage before it (stages/package.py
    `lineage`); each of those files is a dep of `package`, or `dvc repro` would keep a stale package."""
    stages = dvc_stages()
    recorded = upstream_code("train", stages)
    assert {"src/flightdelay/stages/ingest.py", "src/flightdelay/core/engine.py"} <= recorded
    assert recorded <= set(stages["package"]["deps"])


def test_the_entry_point_imports_no_stage_or_command_module():
    """cli.py imports a command's module only when it runs: otherwise every stage would run every module."""
    code = stage_code("raw")
    assert f"src/{PACKAGE}/cli.py" in code
    assert not [p for p in code if p.startswith((f"src/{PACKAGE}/prcomment/", f"src/{PACKAGE}/release/"))]
    assert [p for p in code if "/stages/" in p] == [f"src/{PACKAGE}/stages/raw.py"]


def write(src: Path, name: str, text: str) -> None:
    path = src / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_import_graph_follows_every_import_form(tmp_path):
    src = tmp_path / "src"
    write(src, "pkg/__init__.py", "")
    write(src, "pkg/__main__.py", "from pkg.cli import main\n")
    write(src, "pkg/cli.py", "import json\nfrom pkg import logs\n")
    write(src, "pkg/logs.py", "")
    write(src, "pkg/stages/__init__.py", "")
    write(src, "pkg/stages/one.py", "from ..io import read\nfrom . import two\n\ndef run():\n    import pkg.late\n")
    write(src, "pkg/stages/two.py", "from pkg.errors import Error as E\n")
    write(src, "pkg/io.py", "def read():\n    from .errors import Error\n")
    write(src, "pkg/errors.py", "class Error(Exception): ...\n")
    write(src, "pkg/late.py", "")
    write(src, "pkg/unused.py", "from pkg import late\n")

    files = {p.relative_to(src).as_posix() for p in closure({"pkg.__main__", "pkg.stages.one"}, src, "pkg")}
    assert files == {
        "pkg/__init__.py",
        "pkg/__main__.py",
        "pkg/cli.py",
        "pkg/logs.py",
        "pkg/stages/__init__.py",
        "pkg/stages/one.py",
        "pkg/stages/two.py",
        "pkg/io.py",
        "pkg/errors.py",
        "pkg/late.py",
    }


# What each layer may import (its own layer included): lower layers never import higher ones.
LAYERS = {
    "core": {"core"},
    "data": {"core", "data"},
    "modeling": {"core", "modeling"},
    "release": {"core", "modeling", "release"},
    "stages": {"core", "data", "modeling", "release"},
    "prcomment": {"core", "prcomment"},
    # the predictor, batch scoring and the service: packages put to work, above the pipeline's stages
    "serving": {"core", "data", "modeling", "release", "stages", "serving"},
    # the monitor reads the service's request log and the package's reference through the predictor
    "monitoring": {"core", "release", "serving", "monitoring"},
}


def test_layers_import_only_layers_below_them_and_no_stage_imports_another():
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if len(parts) < 3:  # __init__, __main__, cli: the entry point
            continue
        layer = parts[1]
        name = ".".join(parts)
        for imported in imported_modules(name, SRC) - {PACKAGE}:  # the package itself: __version__
            target = imported.split(".")[1]
            assert not (layer == target == "stages"), f"{name} imports {imported}: move what they share down a layer"
            assert target in LAYERS[layer], f"{name} imports {imported}: layer {layer} may import only {LAYERS[layer]}"
