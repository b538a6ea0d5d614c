"""One small HistGradientBoosting fit under each OMP_NUM_THREADS value, each in a fresh process.

Shows whether scikit-learn's OpenMP threads help or hurt on this machine right now (on an oversubscribed machine
they can hurt many times over). Prints the median seconds of --repeats fits per thread count.

    python benchmarks/threads.py --threads 1 2 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

FIT = """
import time, numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
rng = np.random.default_rng(0)
X = rng.normal(size=(26000, 45))
y = (X[:, 0] + rng.normal(size=26000) > 0).astype(int)
start = time.perf_counter()
HistGradientBoostingClassifier(max_iter=50, n_iter_no_change=1000, random_state=0).fit(X, y)
print(time.perf_counter() - start)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("| OMP_NUM_THREADS | median seconds (min-max) |")
    print("|---:|---:|")
    for n in args.threads:
        env = {**os.environ, "OMP_NUM_THREADS": str(n)}
        fit = [sys.executable, "-c", FIT]
        runs = [
            float(subprocess.run(fit, env=env, capture_output=True, text=True, check=True).stdout)
            for _ in range(args.repeats)
        ]
        print(f"| {n} | {statistics.median(runs):.1f} ({min(runs):.1f}-{max(runs):.1f}) |")


if __name__ == "__main__":
    main()
