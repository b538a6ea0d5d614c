"""benchmarks/machine.py: the fixed work every benchmark times to record the machine's speed (no timing checks)."""

from __future__ import annotations

import numpy as np
from benchmarks.machine import _numpy_work, _python_work, describe, reference


def test_the_work_is_fixed_so_every_run_does_the_same():
    assert _python_work(5_000) == _python_work(5_000) != _python_work(5_001)
    values = np.random.default_rng(0).random(4_096)
    assert _numpy_work(values) == _numpy_work(values.copy())


def test_the_reference_reports_both_parts_and_the_work_it_timed():
    ref = reference(repeats=2, loops=2_000, values=2_048)
    assert ref["python_ms"] > 0 and ref["numpy_ms"] > 0
    assert (ref["python_loops"], ref["numpy_values"], ref["repeats"]) == (2_000, 2_048, 2)
    line = describe(ref)
    assert f"Python {ref['python_ms']:.1f} ms" in line and f"numpy {ref['numpy_ms']:.1f} ms" in line
