"""Command line: `flightdelay <stage>` (or `python -m flightdelay <stage>`) runs one pipeline stage.

dvc.yaml calls these; people normally run `dvc repro`, which calls only the stages that are out of date.
A few commands are human steps outside the pipeline: `verify` checks a model package, `promote`, `rollback`
and `history` manage which package version is in `staging` and `prod` (git tags, see flightdelay.release.registry).
`flightdelay pr-report --base REV` and `flightdelay pr-comment` are tools, not stages: the first writes the
pull-request comment's data in the PR's job (prcomment.pr_report), the second renders the comment from it in the
trusted job (prcomment.pr_comment).

A stage takes every path it reads or writes as a required option: dvc.yaml's `cmd` passes them, so dvc.yaml is
the only place a path is written (`flightdelay <stage> --help` lists them). Its module declares them (INPUTS,
OUTPUTS, UNTRACKED) and its `main(args, params)` hands `run()` only the params sections dvc.yaml declares.

This file imports only what every command needs. The module that runs a command (`runner`) is imported when that
command runs, so a stage runs this file, `__main__.py` and its own module's imports, nothing else: the code deps
dvc.yaml lists for it (tests/security/test_stage_deps.py derives them from the imports and compares).
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import importlib
import inspect
import logging
import sys
import time
import tokenize
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from flightdelay.core import logs
from flightdelay.core.config import ConfigError, load_params
from flightdelay.core.errors import PipelineError
from flightdelay.core.files import files_and_bytes
from flightdelay.core.layout import PARAMS_FILE

log = logging.getLogger("flightdelay")

# dvc.yaml's stages in pipeline order; each runs flightdelay.stages.<name>, whose docstring's first line is its
# description (dvc.yaml's `desc` says the same; tests/meta/test_stage_contract.py checks).
STAGES = ("raw", "ingest", "validate", "features", "train", "predict", "evaluate", "drift", "gate", "package", "report")
COMMANDS = {
    "verify": "verify a model package's checksums and manifest (and that its model file loads safely)",
    "promote": "assign a release channel (staging, prod) to the package committed at HEAD, or to a registered version",
    "rollback": "withdraw the version in a channel and give the channel back to the version before it",
    "history": "list a channel's promotions and rollbacks: when, who, which version and package hash",
}

# Commands that are not pipeline stages (dvc.yaml does not call them): tools run by people and CI.
TOOLS = {
    "pr-report": "collect the pull-request comment's data: gate, params, metrics, slices and curves against a base",
    "pr-comment": "validate a pr-report artifact and render the pull-request comment from it (the trusted side)",
    "score": "batch scoring: score raw monthly partitions with a verified package (or the one in a channel)",
    "serve": "serve a verified model package over HTTP (POST /predict, /health, /ready, /metadata, /metrics, /docs)",
    "deploy": "deploy a package to the running service after its canary passes, roll back, or print the history",
    "monitor": "measure the service per window from its request log (errors, latency, PSI) and alert on thresholds",
    "replay": "send the real rows of a month through a running service (POST /predict), with counts",
    "new-dataset": "make this repository the pipeline of one CSV: infer the schema, write params, dvc add the data",
}
# The module of each tool (imported only when it runs): the pr-* tools are in prcomment, scoring and serving in
# serving, monitor and replay in monitoring, new-dataset in data.
TOOL_MODULES = {
    "pr-report": "flightdelay.prcomment.pr_report",
    "pr-comment": "flightdelay.prcomment.pr_comment",
    "score": "flightdelay.serving.score",
    "serve": "flightdelay.serving.serve",
    "deploy": "flightdelay.serving.deploy",
    "monitor": "flightdelay.monitoring.monitor",
    "replay": "flightdelay.monitoring.replay",
    "new-dataset": "flightdelay.data.scaffold",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flightdelay",
        description="Run one stage of the pipeline (use `dvc repro` to run what is out of date), or manage "
        "released model packages. What the data set and its model are called is params.yaml `dataset`.",
    )
    sub = parser.add_subparsers(dest="stage", required=True, metavar="COMMAND")
    for name in STAGES:  # a stage's options come from its module (stage_parser), imported when it runs
        sub.add_parser(name, help=stage_description(name), add_help=False)
    verify = sub.add_parser("verify", help=COMMANDS["verify"], description=COMMANDS["verify"])
    verify.add_argument("path", help="a package directory, e.g. models/package/model-<hash>")
    verify.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")
    for name in ("promote", "rollback", "history"):
        command = sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name])
        command.add_argument("channel", metavar="CHANNEL", help="the release channel: staging or prod (GTO's stages)")
        command.add_argument("--repo", default=".", help="the git repository (default: %(default)s)")
        if name == "promote":
            command.add_argument("--version", help="a registered version (default: the package committed at HEAD)")
        if name in ("promote", "rollback"):
            command.add_argument("--reason", default="", help="why; kept in the git tag's message")
        if name == "history":
            command.add_argument("--json", action="store_true", help="machine-readable output")
        command.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")
    for name, help_text in TOOLS.items():  # a tool parses its own arguments (tool_parser), after it is imported
        sub.add_parser(name, help=help_text, description=help_text, add_help=False)
    return parser


def stage_description(name: str) -> str:
    """The first line of the stage module's docstring, read without importing the module.

    Only the file's first tokens are read (its docstring opens it): the parser lists every stage's description,
    on every command, and parsing all eleven modules whole cost about 40 ms of each stage's process.
    """
    path = Path(__file__).with_name("stages") / f"{name}.py"
    doc = None
    with path.open("rb") as file:
        for token in tokenize.tokenize(file.readline):
            if token.type not in (tokenize.ENCODING, tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE):
                doc = ast.literal_eval(token.string) if token.type == tokenize.STRING else None
                break
    return (inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else name).splitlines()[0].rstrip(".")


def stage_parser(name: str, module: ModuleType) -> argparse.ArgumentParser:
    """A stage's arguments: the params file and the paths it reads and writes (dvc.yaml's cmd passes them)."""
    parser = argparse.ArgumentParser(prog=f"flightdelay {name}", description=stage_description(name))
    parser.add_argument("--params", default=PARAMS_FILE, help="params file (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")
    groups = (("inputs", module.INPUTS), ("outputs", module.OUTPUTS), ("not tracked by DVC", module.UNTRACKED))
    for title, options in groups:
        group = parser.add_argument_group(title)
        for option, help_text in options.items():
            group.add_argument(f"--{option}", required=True, metavar="PATH", help=help_text)  # a path or URL
    return parser


def runner(command: str) -> str:
    """The module that runs `command`, imported only when it runs (never imported by this file)."""
    if command in STAGES:
        return f"flightdelay.stages.{command}"
    if command in COMMANDS:
        return "flightdelay.release.commands"
    if command in TOOLS:
        return TOOL_MODULES[command]
    raise ValueError(f"unknown command {command!r}")


def tool_parser(name: str) -> argparse.ArgumentParser:
    """The arguments of a tool, from its module's `add_arguments`."""
    parser = argparse.ArgumentParser(prog=f"flightdelay {name}", description=TOOLS[name])
    importlib.import_module(runner(name)).add_arguments(parser)
    return parser


def run_tool(name: str, argv: Sequence[str]) -> int:
    """Run a command that is not a stage; it prints what it wrote on stdout."""
    args = tool_parser(name).parse_args(argv)
    args.stage = name
    log_file = logs.configure(name, verbose=args.verbose)
    try:
        written = importlib.import_module(runner(name)).run(args)
    except (PipelineError, ConfigError) as exc:  # serve reads params.yaml: one line per problem
        for line in str(exc).splitlines() or [type(exc).__name__]:
            log.error("%s failed: %s", args.stage, line)
        log.error("full log: %s", log_file)
        return 1
    sys.stdout.write(f"{written}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.stage in TOOLS:
        return run_tool(args.stage, rest)
    if args.stage in COMMANDS:
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return run_command(args)
    return run_stage(args.stage, rest)


def run_command(args: argparse.Namespace) -> int:
    """A human command (verify, promote, rollback, history); it prints its result on stdout."""
    log_file = logs.configure(args.stage, verbose=args.verbose)
    try:
        importlib.import_module(runner(args.stage)).run(args)
    except PipelineError as exc:
        log.error("%s failed: %s", args.stage, exc)
        log.error("full log: %s", log_file)
        return 1
    except Exception as exc:  # an unforeseen error: one clear line on the console, the traceback in the log
        log.debug("traceback", exc_info=True)
        log.error("%s failed unexpectedly: %s: %s", args.stage, type(exc).__name__, exc)
        log.error("this is a bug or an unhandled input; the traceback is in %s", log_file)
        return 2
    return 0


def run_stage(stage: str, argv: Sequence[str]) -> int:
    """Run one pipeline stage: its module's `main(args, params)` with the paths given on the command line."""
    module = importlib.import_module(runner(stage))
    args = stage_parser(stage, module).parse_args(argv)
    log_file = logs.configure(stage, verbose=args.verbose)
    inputs = [str(getattr(args, option)) for option in module.INPUTS]
    outputs = [str(getattr(args, option)) for option in module.OUTPUTS]
    started = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    log.debug(
        "%s started",
        stage,
        extra={"event": {"event": "stage_start", "stage": stage, "inputs": inputs}},  # hashed once, at the end
    )
    try:
        rows = module.main(args, load_params(args.params)) or {}
    except (PipelineError, ConfigError) as exc:
        # one line per problem (a params file can have several)
        for line in str(exc).splitlines() or [type(exc).__name__]:
            log.error("%s failed: %s", stage, line, extra={"event": {"event": "stage_failed", "stage": stage}})
        log.error("full log: %s", log_file)
        return 1
    except FileNotFoundError as exc:  # an input not built yet, or a wrong path on the command line
        log.debug("traceback", exc_info=True)
        log.error(
            "%s failed: %s: no such file or directory; `dvc repro %s` builds it with the stages before this one, "
            "or check the paths on the command line (dvc.yaml gives them)",
            stage,
            exc.filename or exc,
            stage,
            extra={"event": {"event": "stage_failed", "stage": stage}},
        )
        log.error("full log: %s", log_file)
        return 1
    except Exception as exc:  # an unforeseen error: one clear line on the console, the traceback in the log
        log.debug("traceback", exc_info=True)
        log.error("%s failed unexpectedly: %s: %s", stage, type(exc).__name__, exc)
        log.error("this is a bug or an unhandled input; the traceback is in %s", log_file)
        return 2
    seconds = time.perf_counter() - start
    event = {
        "event": "stage_end",
        "stage": stage,
        "started": started.isoformat(timespec="milliseconds"),
        "ended": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "seconds": round(seconds, 3),
        **rows,
        "inputs": {p: files_and_bytes(p) for p in inputs},
        "outputs": {p: files_and_bytes(p) for p in outputs},
    }
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rows.items())
    log.info(
        "%s finished in %.1fs%s (log: %s)",
        stage,
        seconds,
        f": {counts}" if counts else "",
        log_file,
        extra={"event": event},
    )
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through `python -m flightdelay`
    sys.exit(main())
