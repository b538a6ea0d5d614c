"""A fixed amount of work timed on the machine at hand: the yardstick that makes runs of different days comparable.

The development machine is a virtual one, and its speed has moved by almost a factor of two from one day to the
next: the same commit's `make test` took 595-623 s one day and 352 s the next (docs/benchmarks.md, "Comparing runs
of different days"). A figure from one run therefore says little beside a figure from another unless each comes
with the machine's speed at the time. Every benchmark records this one in its metadata.

Two parts, because the pipeline's costs are of both kinds: interpreted Python (imports, pandas' per-call overhead,
the service's request handling) and compiled number crunching (sorting, the trees). Each is the median of a few
runs in milliseconds; lower is faster. The work is fixed (a constant loop, a seeded array), so on one machine at
rest the figures repeat within a few percent.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

PYTHON_LOOPS = 300_000
NUMPY_VALUES = 1_000_000


def _python_work(loops: int) -> int:
    """Dict and string work in the interpreter, the kind of per-row Python the pipeline still does."""
    seen: dict[str, int] = {}
    total = 0
    for i in range(loops):
        key = f"k{i % 1024}"
        seen[key] = seen.get(key, 0) + i
        total += len(key)
    return total + len(seen)


def _numpy_work(values: np.ndarray) -> float:
    """A sort and a reduction: compiled code over memory, the kind the trees and pandas' kernels are."""
    return float(np.sort(values)[:: values.size // 8].sum())


def _median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - start))
    return round(statistics.median(times), 2)


def reference(repeats: int = 5, loops: int = PYTHON_LOOPS, values: int = NUMPY_VALUES) -> dict[str, float | int]:
    """The yardstick's two figures (median milliseconds of `repeats` runs each) and the work they measured."""
    array = np.random.default_rng(0).random(values)
    return {
        "python_ms": _median_ms(lambda: _python_work(loops), repeats),
        "numpy_ms": _median_ms(lambda: _numpy_work(array), repeats),
        "python_loops": loops,
        "numpy_values": values,
        "repeats": repeats,
    }


def describe(ref: dict[str, float | int]) -> str:
    """One line for a summary: the figures and how to read them."""
    return (
        f"Machine yardstick (benchmarks/machine.py, fixed work, lower is faster): Python {ref['python_ms']:.1f} ms, "
        f"numpy {ref['numpy_ms']:.1f} ms."
    )
