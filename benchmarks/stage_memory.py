"""Peak memory of the partition-at-a-time stages against the size of the date window.

Runs `raw`, then `ingest`, `validate` and `features` on a 2-month, 4-month and 12-month window in a scratch
copy of the repository, each stage in its own process, and reports the median peak RSS over --repeats runs.
If a stage works one month at a time, its peak stays close to the 2-month figure as the window grows.

    python benchmarks/stage_memory.py --repeats 3
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WINDOWS = {
    # window start, end; train start, end; test start, end
    "2 months": ("2013-01", "2013-02", ("2013-01", "2013-01"), ("2013-02", "2013-02")),
    "4 months": ("2013-01", "2013-04", ("2013-01", "2013-03"), ("2013-04", "2013-04")),
    "12 months": ("2013-01", "2013-12", ("2013-01", "2013-10"), ("2013-11", "2013-12")),
}
STAGES = ["ingest", "validate", "features"]


def stage_cmd(stage: str, params: dict) -> list[str]:
    """The stage's command as dvc.yaml writes it (its paths included), `${...}` resolved from `params`."""

    def value(match: re.Match[str]) -> str:
        node = params
        for key in match.group(1).split("."):
            node = node[key]
        return str(node)

    cmd = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["cmd"]
    return [sys.executable, *shlex.split(re.sub(r"\$\{([^}]+)\}", value, cmd))[1:]]


def peak_rss_mib(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Run `cmd` in a fresh process; return (peak RSS in MiB, seconds)."""
    script = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "p.returncode and sys.exit(p.stderr); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", script, *cmd], cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    kib, seconds = out.stdout.split()
    return int(kib) / 1024, float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        shutil.copytree(REPO / "config", work / "config")
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        subprocess.run(stage_cmd("raw", params), cwd=work, check=True, capture_output=True)
        rows = []
        for label, (start, end, train, test) in WINDOWS.items():
            params["ingest"]["window"] = {"start": start, "end": end}
            params["features"]["split"] = {
                "train": {"start": train[0], "end": train[1]},
                "test": {"start": test[0], "end": test[1]},
            }
            (work / "params.yaml").write_text(yaml.safe_dump(params))
            for stage in STAGES:
                runs = [peak_rss_mib(stage_cmd(stage, params), work) for _ in range(args.repeats)]
                rss = statistics.median(r[0] for r in runs)
                secs = statistics.median(r[1] for r in runs)
                rows.append((stage, label, rss, secs))
        print("| stage | window | median peak RSS (MiB) | median seconds |")
        print("|---|---|---:|---:|")
        for stage in STAGES:
            for s, label, rss, secs in rows:
                if s == stage:
                    print(f"| {stage} | {label} | {rss:.0f} | {secs:.1f} |")


if __name__ == "__main__":
    main()
