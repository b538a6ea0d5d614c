"""Make docs/monitoring.md's figures: replay a month the model never trained on, then monitor the request log.

    python tools/monitoring_figures.py --package models/package/model-<hash> --month 2013-12 --out docs/figures

Scores with the real predictor (`Predictor.load`, the month's validated partitions as its context) behind the
contract's POST /predict and request log on 127.0.0.1, in this process: the stand-in service of the monitoring
tests (tests/monitoring_fakes.py), which logs the model inputs of every request and its own latency. (The HTTP
service, `flightdelay serve`, is on its own branch; run `flightdelay replay` and `flightdelay monitor` against it
the same way once merged, with `serve.log_features: true`.) Replays the month with `flightdelay replay`, then runs
`flightdelay monitor` on the log with windows of --window requests, writing <out>/monitoring-<month>.jsonl and
.png. The monitor exits 1 when a window crossed a threshold; that is reported, not an error of this script.
The same log gives the same bytes; a new replay measures new latencies.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.monitoring_fakes: the stand-in service

START = dt.datetime(2013, 12, 1, tzinfo=dt.UTC)  # logged times: one second apart from here (windows are counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", required=True, type=Path, help="models/package/model-<hash>")
    parser.add_argument("--month", default="2013-12", help="a month the model never trained on")
    parser.add_argument("--validated", default=REPO / "data" / "validated", type=Path, help="the context's partitions")
    parser.add_argument("--out", default=REPO / "docs" / "figures", type=Path)
    parser.add_argument("--window", type=int, default=25, help="scoring requests per monitoring window")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--params", default=REPO / "params.yaml", type=Path)
    args = parser.parse_args(argv)

    from tests.monitoring_fakes import minutes, stand_in_service

    from flightdelay import cli
    from flightdelay.serving.predictor import ContextSource, Predictor

    work = Path(tempfile.mkdtemp(prefix="monitoring-figures-"))
    params = yaml.safe_load(args.params.read_text())
    params["monitor"]["window"] = args.window
    params["monitor"]["min_requests"] = min(params["monitor"]["min_requests"], args.window)  # judge every window
    params_file = work / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    request_log = work / "requests.jsonl"
    predictor = Predictor.load(args.package, ContextSource.from_validated(args.validated, [args.month]))
    with stand_in_service(predictor, request_log, minutes(START)) as url:
        replayed = cli.main(
            ["replay", "--url", url, "--month", args.month, "--batch", str(args.batch),
             "--concurrency", str(args.concurrency), "--params", str(params_file)]
        )  # fmt: skip
    if replayed != 0:
        return replayed
    out = args.out / f"monitoring-{args.month}"
    code = cli.main(
        ["monitor", "--request-log", str(request_log), "--package", str(args.package), "--out", f"{out}.jsonl",
         "--figure", f"{out}.png", "--alerts", str(work / "alerts"), "--params", str(params_file)]
    )  # fmt: skip
    for alert in sorted((work / "alerts").glob("*.md")):
        sys.stdout.write(alert.read_text())
    windows = [json.loads(line) for line in Path(f"{out}.jsonl").read_text().splitlines()]
    sys.stdout.write(f"{len(windows)} windows; monitor exit {code}; figure {out}.png\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
