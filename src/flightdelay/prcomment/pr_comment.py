"""`flightdelay pr-comment --report DIR`: the trusted job's side of the pull-request comment.

It runs the default branch's code on the PR job's artifact: validates the data against the schema (prcomment.data) and
renders the comment itself, escaping every string (prcomment.render); data that fails validation gives a fixed comment.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flightdelay.prcomment import render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", required=True, type=Path, help="the downloaded pr-report artifact folder")
    parser.add_argument("--out", required=True, type=Path, help="folder for comment.md and pr-number")
    parser.add_argument("--head-sha", required=True, help="the commit the pipeline ran on (from the trusted event)")
    parser.add_argument("--run-url", help="link to the pipeline run (from the trusted event)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")


def run(args: argparse.Namespace) -> Path:
    return render.render_comment(args.report, args.out, head_sha=args.head_sha, run_url=args.run_url)
