"""The service's model runtime under each OMP_NUM_THREADS value, each in a fresh process.

Scores rows of the test months with the packaged model (verified, loaded safely): one row at a time (the
per-request case), a 10,000-row batch, and one-row calls from 4 threads at once (the service's scoring pool).
Prints median milliseconds per call and the calls per second of the 4 threads. Run from the repository root
after `dvc repro`:

    python benchmarks/serve_threads.py --threads 1 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

SCORE = """
import statistics, sys, threading, time
from flightdelay.core.files import read_split
from flightdelay.release.package_format import find_package, load_package
package = load_package(find_package("models/package"))
features = package.manifest["model"]["features"]
columns = features["numeric"] + features["categorical"]
rows = read_split("data/processed/test", columns=columns).head(10000)
model = package.model
one = rows.head(1)
model.predict_proba(one)
def median_ms(frame, n):
    times = []
    for _ in range(n):
        start = time.perf_counter(); model.predict_proba(frame); times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)
single, batch = median_ms(one, 200), median_ms(rows, 5)
calls = 0
lock = threading.Lock()
def work(stop):
    global calls
    while time.perf_counter() < stop:
        model.predict_proba(one)
        with lock:
            calls += 1
stop = time.perf_counter() + 5
threads = [threading.Thread(target=work, args=(stop,)) for _ in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
print(f"{single:.2f} {batch:.1f} {calls / 5:.0f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("| OMP_NUM_THREADS | 1 row, ms | 10,000 rows, ms | 1-row calls/s from 4 threads |")
    print("|---:|---:|---:|---:|")
    for n in args.threads:
        env = {**os.environ, "OMP_NUM_THREADS": str(n)}
        out = subprocess.run([sys.executable, "-c", SCORE], env=env, capture_output=True, text=True, check=True)
        single, batch, rate = out.stdout.split()
        print(f"| {n} | {single} | {batch} | {rate} |")


if __name__ == "__main__":
    main()
