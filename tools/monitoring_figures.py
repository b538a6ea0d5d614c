"""Make docs/monitoring.md's figures: replay a month through the real service, then monitor its request log.

    python tools/monitoring_figures.py --package models/package/model-<hash> --month 2013-12 --out docs/figures

Starts `flightdelay serve` on a free port of 127.0.0.1 with the package, the validated partitions as context and
`serve.log_features: true` (so the log holds the model inputs), sends the month with `flightdelay replay`, stops
the service, then runs `flightdelay monitor` on its request log with windows of --window requests, writing
<out>/monitoring-<month>.jsonl and .png. The monitor exits 1 when a window crossed a threshold; that is reported,
not an error of this script. The same log gives the same bytes; a new replay measures new latencies.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from flightdelay import cli

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 300) -> None:
    """Until GET /ready answers 200 (the package loaded and its canary passed); the service's own error if it died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"flightdelay serve exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"flightdelay serve was not ready after {seconds:.0f} s")


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

    work = Path(tempfile.mkdtemp(prefix="monitoring-figures-"))
    params = yaml.safe_load(args.params.read_text())
    params["serve"]["log_features"] = True
    params["monitor"]["window"] = args.window
    params["monitor"]["min_requests"] = min(params["monitor"]["min_requests"], args.window)  # judge every window
    params_file = work / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    request_log = work / "requests.jsonl"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "flightdelay", "serve", "--package", str(args.package), "--port", str(port),
             "--params", str(params_file), "--request-log", str(request_log), "--context", str(args.validated),
             "--alerts", str(work / "deploy-alerts"), "--deploy-history", str(work / "deploys.jsonl")]  # fmt: skip
    proc = subprocess.Popen(serve, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_ready(url, proc)
        replayed = cli.main(
            ["replay", "--url", url, "--month", args.month, "--batch", str(args.batch),
             "--concurrency", str(args.concurrency), "--params", str(params_file)]
        )  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=60)
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
