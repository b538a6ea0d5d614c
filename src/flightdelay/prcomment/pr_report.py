"""`flightdelay pr-report --base REV`: the PR job's side of the pull-request comment (see prcomment.collect).

It runs the PR's code, so it writes comment DATA, never the comment that is posted: the trusted job renders that
itself with `flightdelay pr-comment` (pr_comment) from the default branch's code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flightdelay.core.layout import GATE_FILE, SLICES_FILE
from flightdelay.prcomment import collect


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="git revision to compare with, e.g. origin/main or a SHA")
    parser.add_argument("--out", default="pr-report", type=Path, help="output folder (default: %(default)s)")
    parser.add_argument("--repo", default=".", type=Path, help="repository root (default: %(default)s)")
    parser.add_argument("--gate", default=GATE_FILE, help="gate decision file (default: %(default)s)")
    parser.add_argument("--slices", default=SLICES_FILE, help="slice metrics file (default: %(default)s)")
    parser.add_argument(
        "--slice-metric", help=f"slice metric to rank by (default: the first of {', '.join(collect.SLICE_METRICS)})"
    )
    parser.add_argument("--top", type=int, default=5, help="slices to show (default: %(default)s)")
    parser.add_argument(
        "--plot", action="append", dest="plots", metavar="TITLE", help="plot to render (repeat; default: all with data)"
    )
    parser.add_argument("--head-label", default="workspace", help="name of the compared state in the preview")
    parser.add_argument("--run-url", help="link to the CI run, shown in the preview")
    parser.add_argument(
        "--pipeline-failed", action="store_true", help="say in the report that `dvc repro` failed in this run"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")


def run(args: argparse.Namespace) -> Path:
    if args.top < 0:
        raise collect.ReportError(f"--top must be 0 or more, got {args.top}")
    data, specs = collect.collect(
        args.base,
        repo=args.repo,
        gate_file=args.gate,
        slices_file=args.slices,
        plot_names=args.plots,
        slice_metric=args.slice_metric,
        top=args.top,
        pipeline_failed=args.pipeline_failed,
    )
    return collect.write(data, specs, args.out, head_label=args.head_label, run_url=args.run_url)
