"""Measure what the pipeline costs on this machine, and how the cost grows with the data (`make bench`).

Everything runs in a scratch copy of the repository (tracked and untracked, not ignored, files; a new git
repository with one commit and an empty DVC cache), never in the working tree. The stage commands come from
`dvc repro --dry -f` in that copy (dvc.yaml's `cmd`, `${...}` resolved), so the harness calls the pipeline the way
DVC does, not through Python functions. In the copy the gate's rules are switched off (params `gate`), so every
stage runs whatever the data; the gate costs the same either way.

Measured, each as the median of --repeats runs with min and max, all in one run:

- overhead: forced `dvc repro -f` against the same stage commands run one after another in one Python process
  (the in-process floor), and the ratio of the medians;
- no-op: `dvc repro` with nothing to do against a bare `dvc status`;
- experiment: `dvc exp run -S train.hist_gradient_boosting.learning_rate=<x>` (a new x each run) to its metrics;
- stages: per stage wall time, CPU time and peak RSS at each data size, each stage's command in its own process;
  untimed, `dvc commit -f` records the stages in dvc.lock as `dvc repro` would (before `package`, which reads the
  lock, and at the end of each pass). The data grows by `--grow` (benchmarks/generate.py): `years` (the default)
  writes N years of monthly partitions (size 30: 360 months, ~10 million flights), and the window and the split
  move with them (the test months are the last year's); `rows` multiplies the flights of each of the 12 months;
- ingest throughput: ingest + validate against pyarrow's own CSV read and Parquet write of the same files (the
  floor), in a process of its own like a stage;
- fresh clone (`--fresh-clone`, long): `git clone` of HEAD and `make repro` (virtualenv included) to first metrics.

The metadata holds the machine's yardstick at the start (benchmarks/machine.py: fixed work, timed), so that runs of
different days can be compared.

Writes <out>/*.json, <out>/summary.md and <out>/stage_seconds.png, <out>/stage_peak_rss.png.
`--quick` is a smoke run (two months, tiny scales, small model, one repeat, the experiment only up to its metrics)
written to reports/benchmarks/quick/. It runs every benchmark on generated data, 2.5% of the flights of each
month (about 1,300 flights); the sizes are 1 and 2 years of those (2.5% and 5% with `--grow rows`). `raw` runs
once, for the source the data is generated from, and the forced run and the in-process floor start at the stage
after it; so no pass over the real months, and each stage costs about its process start-up.

    python benchmarks/run.py                 # the full run (about half an hour on two cores)
    python benchmarks/run.py --quick         # a smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.generate import generate  # noqa: E402
from benchmarks.machine import describe, reference  # noqa: E402
from flightdelay.core.config import shift_period  # noqa: E402

BIN = Path(sys.executable).parent  # the venv's bin, not resolved: `python` in stage commands must be this one
FULL_SCALES = [1.0, 10.0, 30.0]
# How the data grows from one size to the next (benchmarks/generate.py): `years`, more monthly partitions of the
# same size (the streaming stages should keep their peak memory flat); `rows`, more flights in each month.
GROW = ("years", "rows")
# Quick: each size's months hold this share of the real flights (the years axis), or the sizes are these shares.
QUICK_FRACTION = 0.025
QUICK_SCALES = {"years": [1.0, 2.0], "rows": [QUICK_FRACTION, 0.05]}
QUICK_MONTHS = ["2013-01", "2013-02"]
# The quick experiment stops at the stage that writes the metrics: a smoke run needs the turnaround measured, not
# the stages after it (the full run goes to the end, as a user's experiment does).
QUICK_EXPERIMENT_UNTIL = "evaluate"
# Stages that read dvc.lock (package records the lineage of the model from it): the per-stage benchmark records the
# stages run before one in dvc.lock first (COMMIT_ALL: one call, each call is a DVC start-up).
READS_LOCK = {"package"}
# `dvc commit -f` with no target records every stage as the workspace holds it. Naming the stages run so far costs
# more: DVC collects each named target anew (nine targets: about 7 CPU seconds against 2.5 for the whole pipeline);
# a stage not run yet is recorded as it is, and again after it runs.
COMMIT_ALL = ["dvc", "commit", "-f"]
# Quick: two months, a small model, small importance sample (as the end-to-end tests' short window).
QUICK_PARAMS: dict[tuple[str, ...], Any] = {
    ("ingest", "window"): {"start": QUICK_MONTHS[0], "end": QUICK_MONTHS[-1]},
    ("features", "split"): {
        "train": {"start": QUICK_MONTHS[0], "end": QUICK_MONTHS[0]},
        "test": {"start": QUICK_MONTHS[1], "end": QUICK_MONTHS[1]},
    },
    ("train", "hist_gradient_boosting", "max_iter"): 50,
    ("evaluate", "importance_sample"): 500,
    ("evaluate", "importance_repeats"): 1,
    ("evaluate", "min_slice_rows"): 20,
}
# train.max_rows in the copy: the 1x training split (273k rows) is under it, so 1x fits every row as params.yaml
# does; at 10x and 30x the fit takes this fixed-seed sample (docs/scale.md), as a user at that size would.
TRAIN_MAX_ROWS = 1_000_000
# Every gate rule off: the benchmark measures cost, and a small or synthetic data set must not stop the run.
GATE_OFF: dict[tuple[str, ...], Any] = {
    ("gate", "min_metrics"): {},
    ("gate", "max_metrics"): {},
    ("gate", "max_drifted_features"): None,
    ("gate", "max_prediction_psi"): None,
    ("gate", "max_drop_vs_promoted"): {},
}
IN_PROCESS = """
import json, runpy, shlex, subprocess, sys, time
commands, marker = json.loads(sys.argv[1]), sys.argv[2]
seconds = {}
for stage, cmds in commands:
    start = time.perf_counter()
    for cmd in cmds:
        argv = shlex.split(cmd)
        if argv[:2] == ["python", "-m"] and len(argv) > 2:
            sys.argv = [argv[2], *argv[3:]]
            try:
                runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
            except SystemExit as exc:
                if exc.code not in (0, None):
                    sys.exit(f"{cmd}: exit {exc.code}")
        else:  # not a Python module: it needs a process of its own anyway
            subprocess.run(cmd, shell=True, check=True)
    seconds[stage] = time.perf_counter() - start
print(marker + json.dumps(seconds), flush=True)
"""
STAGE_SECONDS = "in-process stage seconds: "
FLOOR = """
import sys
from pathlib import Path
import pyarrow.csv as pv, pyarrow.parquet as pq
out = Path(sys.argv[1])
for i, name in enumerate(sys.argv[2:]):
    table = pv.read_csv(name, convert_options=pv.ConvertOptions(null_values=["NA", ""]))
    pq.write_table(table, out / f"{i}.parquet")
"""


class BenchError(RuntimeError):
    pass


def stats(values: Sequence[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": [round(v, 4) for v in values],
    }


def ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    return a["median"] / b["median"] if b["median"] else float("nan")


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def environment(copy: Path, threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if threads:  # scikit-learn's OpenMP (HistGradientBoosting) and BLAS threads of every stage process
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(copy / "src")  # the copy's code, not the editable install's
    env["DVC_NO_ANALYTICS"] = "1"
    for key in ("GIT_AUTHOR", "GIT_COMMITTER"):
        env.setdefault(f"{key}_NAME", "flightdelay benchmarks")
        env.setdefault(f"{key}_EMAIL", "benchmarks@flightdelay.invalid")
    return env


class Runner:
    """Runs commands in the scratch copy; each one's output goes to a log file, kept for when it fails."""

    def __init__(self, copy: Path, logs: Path, verbose: bool, threads: int | None) -> None:
        self.copy, self.logs, self.verbose, self.count = copy, logs, verbose, 0
        self.env = environment(copy, threads)

    def __call__(self, cmd: str | list[str], cwd: Path | None = None) -> dict[str, Any]:
        """Run `cmd` (a shell string or argv) in a new process: wall and CPU seconds, peak RSS, output."""
        self.count += 1
        log = self.logs / f"{self.count:04d}.log"
        shell = isinstance(cmd, str)
        text = cmd if shell else shlex.join(cmd)
        if self.verbose:
            print(f"  $ {text if len(text) < 200 else text[:200] + ' ...'}", flush=True)
        with log.open("w") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, shell=shell, cwd=cwd or self.copy, env=self.env, stdout=out, stderr=out)
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        output = log.read_text(errors="replace")
        if proc.returncode:
            raise BenchError(f"{text} exited {proc.returncode} (log {log}):\n{output[-3000:]}")
        return {
            "seconds": seconds,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux; the largest of the process and its children
            "output": output,
        }


def stages_ran(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def stage_commands(run: Runner) -> list[tuple[str, list[str]]]:
    """(stage, its commands) in the order `dvc repro -f` runs them, as DVC resolves them."""
    stages: list[tuple[str, list[str]]] = []
    for line in run(["dvc", "repro", "--dry", "-f"])["output"].splitlines():
        if line.startswith("Running stage '"):
            stages.append((line.split("'")[1], []))
        elif line.startswith("> ") and stages:
            stages[-1][1].append(line[2:])
    if not stages:
        raise BenchError("`dvc repro --dry -f` listed no stages")
    return stages


def make_copy(dest: Path, env: Mapping[str, str]) -> None:
    """The working tree's files (tracked and untracked, not ignored) in a new git repository with one commit."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src = REPO / name
        if src.is_file() and not name.startswith("reports/benchmarks/"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "benchmark copy"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)


def set_params(copy: Path, changes: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    path = copy / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for keys, value in changes.items():
        node = params
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def bench_overhead(
    run: Runner, commands: list[tuple[str, list[str]]], repeats: int, after_raw: bool = False
) -> dict[str, Any]:
    """Forced `dvc repro -f` against the same commands run one after another, each in a process of its own (no
    DVC), and all in one process: what DVC adds, and what the processes' start-up adds. The three alternate within
    each repeat, so a change in the machine's load reaches all three alike. `after_raw`: from the stage after `raw`
    on (`--downstream`), keeping the raw data already in the workspace (the quick run's generated data)."""
    if after_raw:
        commands = [(stage, cmds) for stage, cmds in commands if stage != "raw"]
    forced, stages = [], []
    processes: dict[str, list[float]] = {stage: [] for stage, _ in commands}
    in_process: dict[str, list[float]] = {stage: [] for stage, _ in commands}
    for _ in range(repeats):
        result = run(["dvc", "repro", "-f", *(["--downstream", commands[0][0]] if after_raw else [])])
        forced.append(result["seconds"])
        stages = stages_ran(result["output"])
        for stage, cmds in commands:
            processes[stage].append(sum(run(cmd)["seconds"] for cmd in cmds))
        output = run([sys.executable, "-c", IN_PROCESS, json.dumps(commands), STAGE_SECONDS])["output"]
        seconds = json.loads(output.rsplit(STAGE_SECONDS, 1)[1].splitlines()[0])
        for stage, value in seconds.items():
            in_process[stage].append(value)
    return {
        **overhead_parts(forced, processes, in_process),
        "stages": stages,
        "commands": [cmd for _, cmds in commands for cmd in cmds],
    }


def overhead_parts(
    forced: Sequence[float], processes: Mapping[str, Sequence[float]], in_process: Mapping[str, Sequence[float]]
) -> dict[str, Any]:
    """The forced run's seconds split into the stages' work (one process), their processes' start-up (one
    process each, without DVC, less one process) and DVC's bookkeeping (the forced run less the separate
    processes), from the medians. `processes` and `in_process`: each stage's seconds per repeat."""
    runs = range(len(forced))
    total_processes = [sum(times[i] for times in processes.values()) for i in runs]
    total_in_process = [sum(times[i] for times in in_process.values()) for i in runs]
    f, p, i = stats(forced), stats(total_processes), stats(total_in_process)
    dvc = f["median"] - p["median"]
    return {
        "dvc_repro_forced": f,
        "processes": p,
        "in_process": i,
        "ratio": ratio(f, i),
        "dvc_seconds": dvc,
        "start_up_seconds": p["median"] - i["median"],
        # the ratio if every stage process started for free: the stages' work plus DVC's bookkeeping
        "ratio_without_start_up": (i["median"] + dvc) / i["median"] if i["median"] else float("nan"),
        "per_stage": {
            stage: {"processes": stats(processes[stage]), "in_process": stats(in_process[stage])} for stage in processes
        },
    }


def bench_noop(run: Runner, repeats: int) -> dict[str, Any]:
    warm = run(["dvc", "repro"])  # after the in-process runs: rehashes outputs whose mtime changed
    repro = [run(["dvc", "repro"]) for _ in range(repeats)]
    status = [run(["dvc", "status"]) for _ in range(repeats)]
    r, s = stats([x["seconds"] for x in repro]), stats([x["seconds"] for x in status])
    return {
        "dvc_repro_noop": r,
        "dvc_status": s,
        "ratio": ratio(r, s),
        "first_repro_after_in_process": {"seconds": warm["seconds"], "stages_ran": stages_ran(warm["output"])},
        "stages_ran_in_noop": sorted({st for x in repro for st in stages_ran(x["output"])}),
    }


def bench_experiment(run: Runner, repeats: int, until: str | None = None) -> dict[str, Any]:
    """`dvc exp run` with a new learning rate, through the whole pipeline or only `until` that stage."""
    runs = []
    for i in range(repeats):
        rate = round(0.05 + 0.01 * i, 4)  # a new value each run: the run-cache cannot answer it
        target = [until] if until else []
        result = run(["dvc", "exp", "run", "-S", f"train.hist_gradient_boosting.learning_rate={rate}", *target])
        runs.append({"learning_rate": rate, "seconds": result["seconds"], "stages": stages_ran(result["output"])})
    return {"dvc_exp_run": stats([r["seconds"] for r in runs]), "runs": runs}


def years_params(params: Mapping[str, Any], years: int) -> dict[tuple[str, ...], Any]:
    """The window and split for `years` years of the source months: the window ends `years - 1` years later, the
    test months are the last year's, and the training months run from their start up to the test months (a rolling
    training window keeps its length)."""
    window, split = params["ingest"]["window"], params["features"]["split"]
    late = 12 * (years - 1)  # months
    train = dict(split["train"])
    if "end" in train:
        train["end"] = shift_period(train["end"], late)
    test = {key: shift_period(split["test"][key], late) for key in ("start", "end")}
    return {
        ("ingest", "window"): {"start": window["start"], "end": shift_period(window["end"], late)},
        ("features", "split"): {"train": train, "test": test},
    }


def grow_data(
    run: Runner,
    params: Mapping[str, Any],
    source: Path,
    size: float,
    months: Sequence[str] | None,
    grow: str,
    fraction: float,
) -> tuple[dict[str, int], dict[str, str]]:
    """Write the raw data of one size over the copy's raw folder: the rows written per table, and the window.
    `years`: `size` years of the source months, each at `fraction` of its flights, with the window and split moved
    to match (the copy's params.yaml is rewritten; the caller restores it); `rows`: `size` times the flights of
    each month, the window and split as they are."""
    raw_dir = run.copy / params["data"]["raw_dir"]
    if grow == "years":
        written = generate(source, raw_dir, scale=fraction, years=int(size), months=months, seed=0)
        return written, set_params(run.copy, years_params(params, int(size)))["ingest"]["window"]
    return generate(source, raw_dir, scale=size, months=months, seed=0), dict(params["ingest"]["window"])


def window_files(raw_dir: Path, window: Mapping[str, str]) -> list[Path]:
    """The files ingest reads: partitions inside the window, and the reference tables."""
    files = []
    for folder in sorted(p for p in raw_dir.iterdir() if p.is_dir()):
        files += [p for p in sorted(folder.glob("*.csv")) if window["start"] <= p.name[:7] <= window["end"]]
    return files + sorted(raw_dir.glob("*.csv"))


def bench_scale(
    run: Runner,
    commands: list[tuple[str, list[str]]],
    params: Mapping[str, Any],
    source: Path,
    scales: Sequence[float],
    months: Sequence[str] | None,
    repeats: int,
    scratch: Path,
    grow: str = "years",
    fraction: float = 1.0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each stage after `raw` at each size of the data (`grow_data`)."""
    raw_dir = run.copy / params["data"]["raw_dir"]
    after_raw = [(stage, cmds) for stage, cmds in commands if stage != "raw"]
    sizes, throughput = [], []
    for scale in scales:
        print(f"scale {scale:g}x: generating", flush=True)
        start = time.perf_counter()
        written, window = grow_data(run, params, source, scale, months, grow, fraction)
        gen_seconds = time.perf_counter() - start
        files = window_files(raw_dir, window)
        partitions = sum(1 for path in files if path.parent.name == "flights")
        per_stage: dict[str, list[dict[str, Any]]] = {stage: [] for stage, _ in after_raw}
        for i in range(repeats):
            print(f"scale {scale:g}x: stages, run {i + 1} of {repeats}", flush=True)
            for stage, cmds in after_raw:
                if stage in READS_LOCK:
                    # untimed: record the stages run so far (and raw's generated data) in dvc.lock, as `dvc repro`
                    # would have
                    run(COMMIT_ALL)
                results = [run(cmd) for cmd in cmds]
                per_stage[stage].append(
                    {
                        "seconds": sum(r["seconds"] for r in results),
                        "cpu_seconds": sum(r["cpu_seconds"] for r in results),
                        "peak_rss_mib": max(stage_peak_rss(r) for r in results),
                    }
                )
            run(COMMIT_ALL)  # untimed, as above: dvc.lock describes the workspace
        stages = {
            stage: {key: stats([r[key] for r in runs]) for key in ("seconds", "cpu_seconds", "peak_rss_mib")}
            for stage, runs in per_stage.items()
        }
        sizes.append(
            {
                "scale": scale,
                "grow": grow,
                "months": partitions,
                "rows": written,
                "generate_seconds": gen_seconds,
                "stages": stages,
                "stage_order": list(stages),  # the JSON's keys are sorted
            }
        )

        floor_dir = scratch / "floor"
        floors = []
        for _ in range(repeats):
            shutil.rmtree(floor_dir, ignore_errors=True)
            floor_dir.mkdir()
            floors.append(run([sys.executable, "-c", FLOOR, str(floor_dir), *map(str, files)])["seconds"])
        pairs = zip(per_stage["ingest"], per_stage["validate"], strict=True)
        pipeline = [a["seconds"] + b["seconds"] for a, b in pairs]
        p, f = stats(pipeline), stats(floors)
        csv_bytes = sum(path.stat().st_size for path in files)
        throughput.append(
            {
                "scale": scale,
                "months": partitions,
                "files": len(files),
                "csv_mib": csv_bytes / 2**20,
                "rows_read": written["flights"] + written["weather"],
                "ingest_validate": p,
                "pyarrow_floor": f,
                "ratio": ratio(p, f),
                "flights_per_second": written["flights"] / p["median"],
            }
        )
    return sizes, throughput


DATA_STAGES = ("ingest", "validate", "features")  # the stages whose partitions `compute` maps
RSS_LINE = re.compile(r"compute: peak RSS MiB: this process (?P<stage>\d+), workers (?P<workers>[\d ]+)")


def stage_peak_rss(result: Mapping[str, Any]) -> float:
    """A stage command's peak memory, MiB: the largest of its processes (wait4), or, where it logged the peaks of
    worker processes (`ingest` and `validate` on the local engine's forked workers), its own peak plus theirs:
    what the machine holds for it at once, at most (pages a forked worker shares with the stage count in each)."""
    summed = [float(m["stage"]) + sum(map(float, m["workers"].split())) for m in RSS_LINE.finditer(result["output"])]
    return max([result["peak_rss_mib"], *summed])


def bench_dask(
    run: Runner,
    commands: list[tuple[str, list[str]]],
    params: Mapping[str, Any],
    source: Path,
    scales: Sequence[float],
    months: Sequence[str] | None,
    repeats: int,
    grow: str = "years",
    fraction: float = 1.0,
) -> list[dict[str, Any]]:
    """ingest, validate and features with compute.engine local against a LocalCluster of 2 worker processes
    (1 thread each), at each scale: wall and CPU seconds, and peak RSS per process (the stage process; each
    worker, as the engine logs it). The outputs are the same bytes either way
    (tests/integration/test_dask_engine.py)."""
    data_stages = [(stage, cmds) for stage, cmds in commands if stage in DATA_STAGES]
    rows = []
    for scale in scales:
        print(f"dask: scale {scale:g}x: generating", flush=True)
        written, _ = grow_data(run, params, source, scale, months, grow, fraction)
        engines: dict[str, dict[str, Any]] = {}
        for engine in ("local", "dask"):
            set_params(run.copy, {("compute", "engine"): engine, ("compute", "workers"): 2})
            per_stage: dict[str, list[dict[str, Any]]] = {stage: [] for stage, _ in data_stages}
            for i in range(repeats):
                print(f"dask: scale {scale:g}x, engine {engine}, run {i + 1} of {repeats}", flush=True)
                for stage, cmds in data_stages:
                    results = [run(cmd) for cmd in cmds]
                    logged = [m for r in results for m in RSS_LINE.finditer(r["output"])]
                    per_stage[stage].append(
                        {
                            "seconds": sum(r["seconds"] for r in results),
                            "cpu_seconds_stage_process": sum(r["cpu_seconds"] for r in results),
                            # wait4's peak is the largest of the process and its children (the workers), for
                            # either engine
                            "peak_rss_mib_all": max(r["peak_rss_mib"] for r in results),
                            "peak_rss_mib_stage_process": float(logged[-1]["stage"]) if logged else None,
                            "peak_rss_mib_worker": max(map(float, logged[-1]["workers"].split())) if logged else None,
                        }
                    )
            engines[engine] = {
                stage: {key: stats([r[key] for r in runs]) if runs[0][key] is not None else None for key in runs[0]}
                for stage, runs in per_stage.items()
            }
        set_params(run.copy, {("compute", "engine"): "local"})
        rows.append({"scale": scale, "grow": grow, "rows": written, "workers": 2, "engines": engines})
    return rows


def bench_fresh_clone(scratch: Path, verbose: bool) -> dict[str, Any]:
    """`git clone` of HEAD and `make repro`, the virtualenv built from the lock file included."""
    env = {k: v for k, v in environment(scratch).items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != BIN)
    clone = scratch / "fresh-clone"
    start = time.perf_counter()
    for cmd in (["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], ["make", "repro"]):
        if verbose:
            print(f"  $ {shlex.join(cmd)}", flush=True)
        proc = subprocess.run(cmd, cwd=clone if cmd[0] == "make" else scratch, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise BenchError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return {"seconds": time.perf_counter() - start}


def git_head() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def meta(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "quick": args.quick,
        "repeats": args.repeats,
        "scales": args.scales,
        "grow": args.grow,
        "train_max_rows": args.train_max_rows or None,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": list(os.getloadavg()),
            "yardstick": reference(),
            "threads": {
                name: (str(args.threads) if args.threads else os.environ.get(name)) for name in THREAD_VARIABLES
            },
        },
        **git_head(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def spread(s: Mapping[str, Any], fmt: str = "{:.1f}") -> str:
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def size_label(size: Mapping[str, Any]) -> str:
    """'30x (360 months, 10,103,280 flights)', with what the result records (results written before the months
    were recorded have none; the throughput rows have no flight counts)."""
    parts = [f"{size['months']} months"] if "months" in size else []
    parts += [f"{size['rows']['flights']:,} flights"] if "rows" in size else []
    return f"{size['scale']:g}x ({', '.join(parts)})" if parts else f"{size['scale']:g}x"


GROW_TEXT = {
    "years": "more years of monthly partitions (`benchmarks/generate.py --years`; the window and split move with "
    "them, the test months are the last year's)",
    "rows": "more flights in each of the months (`benchmarks/generate.py --scale`)",
}


def overhead_lines(o: Mapping[str, Any]) -> list[str]:
    """Where the forced run's extra seconds go (`overhead_parts`), and each stage's share of the start-up."""
    lines = [
        "Where the difference goes (medians):",
        "",
        "| what | seconds |",
        "|---|---:|",
        f"| the stage commands one after another, each in its own process, without DVC | {spread(o['processes'])} |",
        f"| DVC's bookkeeping: the forced run less the separate processes | {o['dvc_seconds']:.1f} |",
        f"| the processes' start-up and imports: separate processes less one process | {o['start_up_seconds']:.1f} |",
        f"| the ratio if every process started for free (one process + DVC's bookkeeping) | "
        f"{o['ratio_without_start_up']:.2f} |",
        "",
        "| stage | own process, s | in one process, s | difference |",
        "|---|---:|---:|---:|",
    ]
    for stage in o.get("stages") or o["per_stage"]:  # the run's order: the JSON's keys are sorted
        own, shared = o["per_stage"][stage]["processes"], o["per_stage"][stage]["in_process"]
        lines.append(
            f"| {stage} | {spread(own, '{:.2f}')} | {spread(shared, '{:.2f}')} | "
            f"{own['median'] - shared['median']:.2f} |"
        )
    return [*lines, ""]


def marginal_ratio(rows: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    """Ingest + validate against pyarrow's floor per extra MiB of CSV, from the smallest size to the largest: the
    throughput once each side's fixed start-up is paid (None with fewer than two sizes)."""
    if len(rows) < 2:
        return None
    small, large = min(rows, key=lambda r: r["csv_mib"]), max(rows, key=lambda r: r["csv_mib"])
    mib = large["csv_mib"] - small["csv_mib"]
    ours = large["ingest_validate"]["median"] - small["ingest_validate"]["median"]
    floor = large["pyarrow_floor"]["median"] - small["pyarrow_floor"]["median"]
    if mib <= 0 or floor <= 0:
        return None
    return {"mib": mib, "seconds": ours, "floor_seconds": floor, "ratio": ours / floor}


def markdown(results: Mapping[str, Any]) -> str:
    m = results["meta"]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python benchmarks/run.py{' --quick' if m['quick'] else ''}` at commit `{m['commit'][:12]}`"
        f"{' (with uncommitted changes)' if m['dirty'] else ''} on {m['machine']['cpus']} CPUs "
        f"(load average {m['machine']['load_average_at_start'][0]:.2f} at the start), {m['date']}. "
        f"Median of {m['repeats']} run(s), min-max in brackets; seconds are wall time. "
        f"Thread settings: {', '.join(f'{k}={v}' for k, v in m['machine']['threads'].items() if v) or 'unset'}. "
        + (
            f"`train.max_rows`: {m['train_max_rows']:,} (a larger training split is fitted on that fixed-seed sample)."
            if m.get("train_max_rows")
            else "`train.max_rows`: unset (every training row)."
        ),
        "",
    ]
    if "yardstick" in m["machine"]:
        lines += [describe(m["machine"]["yardstick"]), ""]
    if m.get("error"):
        lines += [f"**Incomplete: a benchmark failed**: {m['error']}", ""]
    if m["quick"]:
        lines += [
            "**Quick smoke run** (generated data: two months at tiny scales; a small model; the experiment up to its "
            "metrics): "
            "not a measurement to quote.",
            "",
        ]
    o = results.get("overhead")
    if o:
        lines += [
            "## Overhead",
            "",
            "| what | seconds |",
            "|---|---:|",
            f"| `dvc repro -f` ({'every stage' if o['stages'][:1] == ['raw'] else 'every stage after raw'}) | "
            f"{spread(o['dvc_repro_forced'])} |",
            f"| the same stage commands in one Python process | {spread(o['in_process'])} |",
            f"| ratio of the medians | {o['ratio']:.2f} |",
            "",
        ]
        if "per_stage" in o:  # written since 2026-11-30
            lines += overhead_lines(o)
    n = results.get("noop")
    if n:
        lines += [
            "## No-op run",
            "",
            "| what | seconds |",
            "|---|---:|",
            f"| `dvc repro`, nothing to do | {spread(n['dvc_repro_noop'], '{:.2f}')} |",
            f"| `dvc status` | {spread(n['dvc_status'], '{:.2f}')} |",
            f"| ratio of the medians | {n['ratio']:.2f} |",
            "",
        ]
    e = results.get("experiment")
    if e:
        lines += [
            "## Experiment turnaround",
            "",
            f"`dvc exp run -S train.hist_gradient_boosting.learning_rate=<x>` to its metrics: "
            f"{spread(e['dvc_exp_run'])} s (stages run: {', '.join(e['runs'][0]['stages'])}).",
            "",
        ]
    sizes = results.get("stages")
    if sizes:
        lines += ["## Per stage, by data size", ""]
        if sizes[0].get("grow") in GROW_TEXT:
            lines += [f"The data grows by {GROW_TEXT[sizes[0]['grow']]}.", ""]
        header = " | ".join(size_label(s) for s in sizes)
        for key, title, fmt in (
            ("seconds", "wall seconds", "{:.1f}"),
            ("cpu_seconds", "CPU seconds (user + system)", "{:.1f}"),
            ("peak_rss_mib", "peak RSS, MiB", "{:.0f}"),
        ):
            lines += [f"{title}:", "", f"| stage | {header} |", "|---|" + "---:|" * len(sizes)]
            for stage in sizes[0]["stage_order"]:
                cells = " | ".join(spread(s["stages"][stage][key], fmt) for s in sizes)
                lines.append(f"| {stage} | {cells} |")
            lines.append("")
        lines += ["![wall time per stage](stage_seconds.png)", "", "![peak RSS per stage](stage_peak_rss.png)", ""]
    t = results.get("ingest_throughput")
    if t:
        lines += [
            "## Ingest + validate against pyarrow",
            "",
            "| scale | CSV MiB | ingest + validate, s | pyarrow read CSV + write Parquet, s | ratio | flights/s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in t:
            lines.append(
                f"| {size_label(row)} | {row['csv_mib']:.0f} | {spread(row['ingest_validate'])} | "
                f"{spread(row['pyarrow_floor'])} | {row['ratio']:.2f} | {row['flights_per_second']:,.0f} |"
            )
        lines.append("")
        m = marginal_ratio(t)
        if m:
            lines += [
                f"The extra {m['mib']:.0f} MiB from the smallest size to the largest (each side's start-up paid once): "
                f"ingest + validate {m['seconds']:.1f} s, pyarrow {m['floor_seconds']:.1f} s, ratio {m['ratio']:.2f}.",
                "",
            ]
    d = results.get("dask")
    if d:
        lines += [
            "## Local engine against a Dask LocalCluster",
            "",
            "ingest, validate and features with `compute.engine: local` and with `dask` (a LocalCluster of 2 worker "
            "processes, 1 thread each, started by the stage). Peak RSS per process: the stage process, and the "
            "largest worker.",
            "",
            "| scale | stage | local s | dask s | local peak MiB | dask: stage process MiB | dask: worker MiB |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for row in d:
            local, cluster = row["engines"]["local"], row["engines"]["dask"]
            for stage in local:
                lines.append(
                    f"| {row['scale']:g}x ({row['rows']['flights']:,} flights) | {stage} | "
                    f"{spread(local[stage]['seconds'])} | {spread(cluster[stage]['seconds'])} | "
                    f"{spread(local[stage]['peak_rss_mib_all'], '{:.0f}')} | "
                    f"{spread(cluster[stage]['peak_rss_mib_stage_process'], '{:.0f}')} | "
                    f"{spread(cluster[stage]['peak_rss_mib_worker'], '{:.0f}')} |"
                )
        lines.append("")
    c = results.get("fresh_clone")
    if c:
        lines += ["## Fresh clone", "", f"`git clone` + `make repro` to first metrics: {c['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def plots(sizes: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    rows = [s["rows"]["flights"] for s in sizes]
    months = [s["months"] for s in sizes if "months" in s]
    grown = {"years": "more monthly partitions", "rows": "more flights a month"}.get(sizes[0].get("grow", ""))
    xlabel = "flights in the window" + (f" ({grown}: {months[0]} to {months[-1]} months)" if grown and months else "")
    for key, label, name in (
        ("seconds", "wall seconds (median, min-max)", "stage_seconds.png"),
        ("peak_rss_mib", "peak RSS, MiB (median, min-max)", "stage_peak_rss.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
        for stage in sizes[0]["stage_order"]:
            values = [s["stages"][stage][key] for s in sizes]
            med = [v["median"] for v in values]
            err = [[v["median"] - v["min"] for v in values], [v["max"] - v["median"] for v in values]]
            ax.errorbar(rows, med, yerr=err, marker="o", capsize=3, label=stage)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(rows, [f"{r:,}" for r in rows], fontsize=8)  # a label at each measured size
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        fig.savefig(out / name, metadata={"Software": None})
        plt.close(fig)


def write(out: Path, results: Mapping[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, value in results.items():
        if name != "meta":
            payload = {"meta": results["meta"], name: value}
            (out / f"{name}.json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    (out / "summary.md").write_text(markdown(results))
    if results.get("stages"):
        plots(results["stages"], out)


def axis(
    args: argparse.Namespace, params: Mapping[str, Any], own: Mapping[str, Any]
) -> tuple[Mapping[str, Any], list[str] | None, float]:
    """For the per-size benchmarks: the params whose window and split a size starts from, the source months (None:
    all), and the share of each month's flights the years axis writes. Years: the copy's own window and split, every
    month (quick: at QUICK_FRACTION); rows: the run's params (quick: its two months)."""
    if args.grow == "years":
        return own, None, QUICK_FRACTION if args.quick else 1.0
    return params, QUICK_MONTHS if args.quick else None, 1.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small smoke run (two months, tiny scales)")
    parser.add_argument("--repeats", type=int, help="runs per measurement (default 3; quick: 1)")
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        help=f"data sizes (default {FULL_SCALES}; quick: {QUICK_SCALES['years']}, with --grow rows "
        f"{QUICK_SCALES['rows']}); whole numbers with --grow years",
    )
    parser.add_argument(
        "--grow",
        choices=GROW,
        default="years",
        help="how the data grows with the size: `years` (default), that many years of monthly partitions; `rows`, "
        "that many times the flights of each month",
    )
    parser.add_argument("--out", type=Path, help="output folder (default reports/benchmarks, quick: .../quick)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["overhead", "noop", "experiment", "stages", "dask"],
        help="run only these benchmarks (stages includes the ingest throughput; dask runs only when named)",
    )
    parser.add_argument(
        "--threads", type=int, help="set OMP_NUM_THREADS (and BLAS threads) for every command (default: unset)"
    )
    parser.add_argument("--fresh-clone", action="store_true", help="also time git clone + make repro (long)")
    parser.add_argument(
        "--train-max-rows",
        type=int,
        default=TRAIN_MAX_ROWS,
        help=f"train.max_rows in the copy (default {TRAIN_MAX_ROWS:,}: above the 1x training split, so only the larger "
        "scales fit on a fixed-seed sample, as docs/scale.md advises; 0: every row)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (its path is printed)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each command")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.scales = args.scales or (QUICK_SCALES[args.grow] if args.quick else FULL_SCALES)
    if args.grow == "years" and any(s < 1 or s != int(s) for s in args.scales):
        parser.error(f"--grow years needs whole numbers of years of 1 or more, not {args.scales}")
    out = args.out or REPO / "reports" / "benchmarks" / ("quick" if args.quick else "")
    only = set(args.only or ["overhead", "noop", "experiment", "stages"])
    results: dict[str, Any] = {"meta": meta(args)}

    scratch = Path(tempfile.mkdtemp(prefix="flightdelay-bench-"))
    try:
        copy = scratch / "repo"
        copy.mkdir()
        (scratch / "logs").mkdir()
        run = Runner(copy, scratch / "logs", args.verbose, args.threads)
        make_copy(copy, run.env)
        cap = {("train", "max_rows"): args.train_max_rows} if args.train_max_rows else {}
        # the copy's own window and split: the years axis moves them (quick too: its two months have gaps between
        # years, and a split's months must all be there)
        own = yaml.safe_load((copy / "params.yaml").read_text())
        params = set_params(copy, {**GATE_OFF, **cap, **(QUICK_PARAMS if args.quick else {})})
        sized_params, months, fraction = axis(args, params, own)
        params_text = (copy / "params.yaml").read_text()
        subprocess.run(["git", "commit", "-qam", "benchmark params"], cwd=copy, env=run.env, check=True)
        commands = stage_commands(run)
        raw_dir = copy / params["data"]["raw_dir"]
        source = scratch / "source"  # the real raw data that benchmarks/generate.py scales
        if args.quick and only != {"dask"}:
            # Every quick benchmark on generated data of the first quick scale, recorded as raw's output: a smoke
            # run proves that each benchmark runs and writes its results; on the real months it cost four passes.
            run(["dvc", "repro", "raw"])
            shutil.copytree(raw_dir, source)
            generate(source, raw_dir, scale=QUICK_FRACTION, months=QUICK_MONTHS, seed=0)
            run(["dvc", "commit", "-f", "raw"])
        if "overhead" in only:
            print("overhead: dvc repro -f against one process", flush=True)
            results["overhead"] = bench_overhead(run, commands, args.repeats, after_raw=args.quick)
        elif only == {"dask"}:
            run(["dvc", "repro", "raw"])  # the dask column needs only the raw data to scale up
        else:
            run(["dvc", "repro"])
        if "noop" in only:
            print("no-op: dvc repro against dvc status", flush=True)
            results["noop"] = bench_noop(run, args.repeats)
        if "experiment" in only and not args.quick:  # on the real data, before `stages` replaces it
            print("experiment: dvc exp run -S train.hist_gradient_boosting.learning_rate=...", flush=True)
            results["experiment"] = bench_experiment(run, args.repeats)
        if "stages" in only:
            (copy / "params.yaml").write_text(params_text)  # undo the experiments' learning rate
            if not source.exists():
                shutil.copytree(raw_dir, source)
            sizes, throughput = bench_scale(
                run, commands, sized_params, source, args.scales, months, args.repeats, scratch, args.grow, fraction
            )
            results["stages"], results["ingest_throughput"] = sizes, throughput
            (copy / "params.yaml").write_text(params_text)  # the window and split of the years axis undone
        if "experiment" in only and args.quick:  # on the generated data in the workspace, to its metrics
            if "stages" in only and args.grow == "years":
                # untimed: the years' window and split are undone; two months at the larger quick share, as the rows
                # axis leaves them (at 2.5% a month of training rows is too few for a tree to split: a new learning
                # rate would change no prediction, and evaluate would not rerun)
                generate(source, raw_dir, scale=QUICK_SCALES["rows"][-1], months=QUICK_MONTHS, seed=0)
                run(["dvc", "commit", "-f", "raw"])  # recorded as raw's output, not restored from the run-cache
                run(["dvc", "repro"])
            print("experiment: dvc exp run -S train.hist_gradient_boosting.learning_rate=...", flush=True)
            results["experiment"] = bench_experiment(run, args.repeats, QUICK_EXPERIMENT_UNTIL)
        if "dask" in only:
            if not source.exists():  # else raw_dir may hold generated data by now: scale the real data
                shutil.copytree(raw_dir, source)
            results["dask"] = bench_dask(
                run, commands, sized_params, source, args.scales, months, args.repeats, args.grow, fraction
            )
            (copy / "params.yaml").write_text(params_text)
        if args.fresh_clone:
            print("fresh clone: git clone + make repro", flush=True)
            results["fresh_clone"] = bench_fresh_clone(scratch, args.verbose)
        results["meta"]["load_average_at_end"] = list(os.getloadavg())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        results["meta"]["error"] = str(exc).splitlines()[0]
    finally:
        if args.keep:
            print(f"scratch copy kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    write(out, results)  # what was measured, also when a later benchmark failed
    print(f"wrote {out}/summary.md")
    return 1 if "error" in results["meta"] else 0


if __name__ == "__main__":
    sys.exit(main())
