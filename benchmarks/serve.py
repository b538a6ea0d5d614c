"""Serving cost (`make bench-serve`, docs/serving.md "Performance"): the in-process floor and the running service.

In one run, for the same package and the same raw flights (a month's raw extract without its outcome columns):

- in process: `Predictor.predict` of one flight and of a batch (10,000 flights; 1,000 in --quick), the median of
  several runs with min and max;
- the service: `python -m flightdelay serve` started on 127.0.0.1 (a free port), then single-flight POST /predict
  requests from 1, 8 and 32 concurrent clients (one keep-alive connection each; asyncio streams in one thread of
  this process, `load`) for a fixed time: requests/s, p50, p99 and errors (any answer but 200, or a failed
  connection);
- with --mlflow PATH (the `mlflow` command of .venvs/mlflow, `make bench-serve-mlflow`): `mlflow models serve` of
  the same fitted pipeline (saved with the sklearn flavour, predicting probabilities), fed the same flights as
  their feature rows (it cannot compute features), at the same concurrency levels, after checking that it
  returns the predictor's probabilities.

Writes <out>/serve.json and <out>/serve.md (default reports/benchmarks/; --quick: reports/benchmarks/quick/,
git-ignored). Timings depend on the machine and its load: the JSON records the CPU count, the load average and the
machine's yardstick (benchmarks/machine.py), which makes runs of different days comparable. Run from
the repository root after `dvc repro`:

    python benchmarks/serve.py            # about a minute
    python benchmarks/serve.py --quick    # a smoke run (tests/e2e/test_bench_serve.py)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import skops.io

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import describe, reference

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is locked where the service runs; asyncio's own loop otherwise
    uvloop = None

OUTCOMES = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]
CONCURRENCY = (1, 8, 32)


def raw_flights(raw_dir: Path, month: str, n: int) -> list[dict[str, Any]]:
    """The first n raw flights of a month as a caller sends them (no outcome columns, missing values as null)."""
    frame = pd.read_csv(raw_dir / "flights" / f"{month}.csv").head(n)
    rows: list[dict[str, Any]] = json.loads(frame.drop(columns=OUTCOMES, errors="ignore").to_json(orient="records"))
    return rows


def summary(seconds: tuple[list[float], list[float]]) -> dict[str, Any]:
    """Wall-clock milliseconds (median, min, max, every run) and the median CPU milliseconds of the process, all
    threads (what the call cost, whatever else ran on the machine meanwhile)."""
    ms = [1000 * s for s in seconds[0]]
    cpu = [1000 * s for s in seconds[1]]
    return {
        "median": statistics.median(ms),
        "min": min(ms),
        "max": max(ms),
        "runs": ms,
        "cpu_median": statistics.median(cpu),
    }


def load_predictor(package: Path, context: Path, month: str) -> Any:
    """The package as a predictor with the month's validated partitions as context (loaded once per run)."""
    from flightdelay.serving.features_flights import ContextSource
    from flightdelay.serving.predictor import Predictor

    return Predictor.load(package, ContextSource.from_validated(context, [month]))


def accepted(predictor: Any, flights: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The first n flights the package accepts (a category it never saw is a 422, not a score)."""
    from flightdelay.serving.predictor import input_problems

    good = input_problems(pd.DataFrame(flights), predictor.input_schema)["field"].to_numpy() == ""
    return [flight for flight, ok in zip(flights, good, strict=True) if ok][:n]


def in_process(predictor: Any, flights: list[dict[str, Any]], repeats: int, compare: bool) -> dict[str, Any]:
    """Medians of timed calls; `compare`: also with predict_proba instead of the fast scorer (not in --quick)."""
    one = pd.DataFrame(flights[:1])
    batch = pd.DataFrame(flights)
    predictor.predict(one)  # warm: lazily built lookups, first-call imports
    out: dict[str, Any] = {"fast_scorer": predictor.fast is not None}
    fast = predictor.fast
    for suffix, scorer in (("", fast), ("_predict_proba", None)):
        if suffix and (fast is None or not compare):
            break
        predictor.fast = scorer  # "_predict_proba": the same predictor scoring with predict_proba, for comparison
        out[f"one_row_ms{suffix}"] = summary(timed(lambda: predictor.predict(one), max(repeats * 10, 5)))
        out[f"batch_ms{suffix}"] = {**summary(timed(lambda: predictor.predict(batch), repeats)), "rows": len(batch)}
    predictor.fast = fast
    # The service's path: the flights as its request model hands them on (checked dicts), scored without a
    # DataFrame up to RECORD_ROWS flights (Predictor.predict_records).
    from flightdelay.serving import schema

    rows = schema.check_rows(flights, schema.row_model(list(predictor.input_schema), 64), predictor.table)
    predictor.predict_records(rows[:1], checked=True)
    out["one_row_ms_records"] = summary(timed(lambda: predictor.predict_records(rows[:1], checked=True), repeats * 10))
    out["batch_ms_records"] = {
        **summary(timed(lambda: predictor.predict_records(rows, checked=True), repeats)),
        "rows": len(rows),
    }
    return out


def timed(call: Any, runs: int) -> tuple[list[float], list[float]]:
    """Seconds per call: wall clock, and CPU of this process (every thread: the batch's kernel threads too)."""
    seconds, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return seconds, cpu


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, seconds: float, path: str = "/ready") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the service was not ready within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


def load(port: int, bodies: list[bytes], clients: int, seconds: float, path: str = "/predict") -> dict[str, Any]:
    """`clients` concurrent clients, each on its own keep-alive connection, POST one body at a time for `seconds`:
    asyncio streams in one thread (uvloop when installed), each request written as prepared bytes and its answer
    read by its Content-Length (or chunks). The same requests and counting as an http.client thread per client,
    at less than half the client CPU per request (0.11 against 0.23-0.31 ms measured: the client shares the
    machine's cores with the service)."""
    return (
        asyncio.run(_load(port, bodies, clients, seconds, path))
        if uvloop is None
        else _run_uvloop(_load(port, bodies, clients, seconds, path))
    )


def _run_uvloop(coroutine: Any) -> dict[str, Any]:
    assert uvloop is not None
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result: dict[str, Any] = runner.run(coroutine)
        return result


def request_bytes(port: int, path: str, body: bytes) -> bytes:
    """One keep-alive HTTP/1.1 POST of a JSON body, as http.client writes it."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: identity\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and body of one HTTP/1.1 response (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunks.append(await reader.readexactly(size + 2))
            if size == 0:
                return status, b"".join(chunks)
    raise ValueError("a response with neither Content-Length nor chunked encoding")


async def _load(port: int, bodies: list[bytes], clients: int, seconds: float, path: str) -> dict[str, Any]:
    requests = [request_bytes(port, path, body) for body in bodies]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_at = time.perf_counter() + 0.2
    stop_at = start_at + seconds

    async def client(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        while time.perf_counter() < stop_at:
            request = requests[i % len(requests)]
            i += clients
            begin = time.perf_counter()
            try:
                writer.write(request)
                status, _ = await asyncio.wait_for(read_response(reader), timeout=30)
                ok = status == 200
            except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                ok = False
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if ok:
                latencies[k].append(time.perf_counter() - begin)
            else:
                errors[k] += 1
        writer.close()

    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - start_at
    done = sorted(t for per in latencies for t in per)

    def percentile(q: float) -> float | None:
        return 1000 * done[min(len(done) - 1, int(q * len(done)))] if done else None

    return {
        "concurrency": clients,
        "seconds": round(elapsed, 3),
        "requests": len(done),
        "errors": sum(errors),
        "requests_per_s": len(done) / elapsed,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "client": "asyncio" if uvloop is None else "asyncio+uvloop",
    }


@contextlib.contextmanager
def running(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server process writing to `log`, stopped (terminated, then killed after 15 s) when the block ends."""
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def service(args: argparse.Namespace, flights: list[dict[str, Any]], seconds: float) -> list[dict[str, Any]]:
    bodies = [json.dumps({"flights": [flight]}).encode() for flight in flights[:500]]
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        tmp = Path(scratch)
        log = tmp / "serve.out"
        command = [sys.executable, "-m", "flightdelay", "serve", "--package", str(args.package),
                   "--port", str(port), "--context", str(args.context), "--params", str(args.params),
                   "--request-log", str(tmp / "requests.jsonl"), "--deploy-history", str(tmp / "deploys.jsonl"),
                   "--alerts", str(tmp / "alerts")]  # fmt: skip
        with running(command, log) as proc:
            wait_ready(port, proc, log, 300)
            load(port, bodies, 1, min(seconds, 1.0))  # warm up
            return [load(port, bodies, clients, seconds) for clients in CONCURRENCY]


# Run by the mlflow virtualenv's Python: the fitted pipeline as skops bytes (never a pickle), loaded with the
# types the package's own load trusts (flightdelay.modeling.model_audit.SKOPS_TRUSTED) after checking the hash the
# benchmark recorded, then saved as an MLflow model in skops format that predicts probabilities.
SAVE_MLFLOW_MODEL = """
import hashlib, json, sys
import mlflow.sklearn
import skops.io
data = open(sys.argv[1], "rb").read()
if hashlib.sha256(data).hexdigest() != sys.argv[2]:
    sys.exit(f"{sys.argv[1]} is not the model file the benchmark wrote")
trusted = json.loads(sys.argv[4])
model = skops.io.loads(data, trusted=trusted)
mlflow.sklearn.save_model(
    model, sys.argv[3], serialization_format="skops", skops_trusted_types=trusted, pyfunc_predict_fn="predict_proba"
)
"""


def feature_bodies(features: pd.DataFrame) -> list[bytes]:
    """One `dataframe_split` body per row of model inputs, as `mlflow models serve` reads them (NaN as null)."""
    columns = [str(c) for c in features.columns]
    bodies = []
    for row in features.itertuples(index=False):
        values = [None if isinstance(v, float) and math.isnan(v) else v for v in row]
        bodies.append(json.dumps({"dataframe_split": {"columns": columns, "data": [values]}}).encode())
    return bodies


def mlflow_service(mlflow: Path, predictor: Any, flights: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """`mlflow models serve` of the package's fitted pipeline, fed the flights' feature rows: the check that it
    gives the predictor's probabilities, then the same load as the service."""
    sample = pd.DataFrame(flights[:500])
    features = predictor.features(sample)
    bodies = feature_bodies(features)
    expected = predictor.predict(sample)["probability"].to_numpy()
    python = mlflow.parent / "python"
    port = free_port()
    # mlflow starts `uvicorn` from PATH: its own virtualenv's first, not this one's
    path = f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as scratch:
        tmp = Path(scratch)
        from flightdelay.modeling.model_audit import SKOPS_TRUSTED

        data = skops.io.dumps(predictor.model)
        (tmp / "model.skops").write_bytes(data)
        subprocess.run(
            [str(python), "-c", SAVE_MLFLOW_MODEL, str(tmp / "model.skops"), hashlib.sha256(data).hexdigest(),
             str(tmp / "model"), json.dumps(sorted(SKOPS_TRUSTED))],
            check=True, env=env,
        )  # fmt: skip
        log = tmp / "mlflow.out"
        command = [str(mlflow), "models", "serve", "-m", str(tmp / "model"), "-h", "127.0.0.1", "-p", str(port),
                   "--env-manager", "local", "-w", "1"]  # fmt: skip
        with running(command, log, env) as proc:
            wait_ready(port, proc, log, 300, path="/ping")
            got = []
            for body in bodies[:20]:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
                answer = json.loads(connection.getresponse().read())
                got.append(answer["predictions"][0][1])
            difference = float(max(abs(g - e) for g, e in zip(got, expected[:20], strict=True)))
            if difference > 1e-9:
                raise SystemExit(f"mlflow models serve differs from the predictor by {difference:g}")
            load(port, bodies, 1, min(seconds, 1.0), path="/invocations")  # warm up
            levels = [load(port, bodies, clients, seconds, path="/invocations") for clients in CONCURRENCY]
    return {"max_difference_from_predictor": difference, "levels": levels}


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    meta, floor = result["meta"], result["in_process"]
    batch = floor["batch_ms"]
    lines = [
        f"Serving benchmark, {meta['date']}, {meta['cpus']} CPUs, load average {meta['load_average']:.2f} at start, "
        f"{meta.get('load_average_end', float('nan')):.2f} at the end"
        f"{' (quick)' if meta['quick'] else ''}; package {meta['package']}.",
        "",
        *([describe(meta["yardstick"]), ""] if "yardstick" in meta else []),
        "| in process | median ms | min ms | max ms | runs | median CPU ms (all threads) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for suffix, how in (
        ("_records", "_records (checked dicts: the service's path)"),
        ("", " (a DataFrame, input checked)"),
        ("_predict_proba", " (a DataFrame, predict_proba: no fast scorer)"),
    ):
        if f"one_row_ms{suffix}" not in floor:
            continue
        for key, what in ((f"one_row_ms{suffix}", "1 flight"), (f"batch_ms{suffix}", f"{batch['rows']:,} flights")):
            s = floor[key]
            lines.append(
                f"| Predictor.predict{how}, {what} | {fmt(s['median'])} | {fmt(s['min'])} | {fmt(s['max'])} | "
                f"{len(s['runs'])} | {fmt(s.get('cpu_median'))} |"
            )
    lines += [
        "",
        f"Load client: {result['service'][0].get('client', 'http.client threads')}, one keep-alive connection per "
        "concurrent client, in this process (it shares the cores with the service).",
        "",
        "| service, 1 flight per request | requests/s | p50 ms | p99 ms | requests | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["service"]:
        lines.append(
            f"| concurrency {row['concurrency']} | {fmt(row['requests_per_s'])} | {fmt(row['p50_ms'])} | "
            f"{fmt(row['p99_ms'])} | {row['requests']:,} | {row['errors']} |"
        )
    reference = result.get("mlflow")
    if reference:
        lines += [
            "",
            "| `mlflow models serve`, 1 feature row per request | requests/s | p50 ms | p99 ms | requests | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in reference["levels"]:
            lines.append(
                f"| concurrency {row['concurrency']} | {fmt(row['requests_per_s'])} | {fmt(row['p50_ms'])} | "
                f"{fmt(row['p99_ms'])} | {row['requests']:,} | {row['errors']} |"
            )
        lines += [
            "",
            f"MLflow's probabilities differ from the predictor's by at most "
            f"{reference['max_difference_from_predictor']:.1e} on the first 20 flights.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="few runs, 1,000 flights, 1 s per level, no predict_proba comparison"
    )
    parser.add_argument("--package", type=Path, help="a package (default: the one in models/package)")
    parser.add_argument("--context", type=Path, default=Path("data/validated"), help="validated partitions")
    parser.add_argument("--raw", type=Path, default=Path("data/raw/nycflights13"), help="the raw extract")
    parser.add_argument("--month", default="2013-12", help="the month whose raw flights are sent (YYYY-MM)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (its serve: section)")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/benchmarks[/quick])")
    parser.add_argument(
        "--mlflow",
        type=Path,
        help="also measure `mlflow models serve` with this mlflow command (.venvs/mlflow/bin/mlflow)",
    )
    args = parser.parse_args()
    if args.package is None:
        found = sorted(Path("models/package").glob("model-*"))
        if len(found) != 1:
            raise SystemExit(f"models/package holds {len(found)} packages; give one with --package")
        args.package = found[0]
    out = args.out or Path("reports/benchmarks/quick" if args.quick else "reports/benchmarks")
    rows, repeats, seconds = (1_000, 2, 1.0) if args.quick else (10_000, 7, 10.0)
    os.environ["OMP_NUM_THREADS"] = "1"  # as the service runs its model (docs/serving.md)
    predictor = load_predictor(args.package, args.context, args.month)
    flights = accepted(predictor, raw_flights(args.raw, args.month, 2 * rows), rows)
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "batch_threads": min(4, os.cpu_count() or 1),
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "yardstick": reference(),
        "python": platform.python_version(),
        "package": args.package.name,
        "month": args.month,
        "repeats": repeats,
        "seconds_per_level": seconds,
    }
    result = {
        "meta": meta,
        "in_process": in_process(predictor, flights, repeats, compare=not args.quick),
        "service": service(args, flights, seconds),
    }
    if args.mlflow:
        result["mlflow"] = mlflow_service(args.mlflow, predictor, flights, seconds)
    meta["load_average_end"] = os.getloadavg()[0]
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "serve.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
