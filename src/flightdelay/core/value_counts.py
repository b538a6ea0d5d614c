"""Columns as counts of their distinct values: mergeable partial results from which whole-column statistics follow
exactly, so a stage can read one partition at a time (validate's profile, drift's bins and tests) and no process
holds a whole column."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def exact_quantile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """numpy's default (linear) quantile of the sorted distinct `values` repeated `counts` times, computed
    without expanding them: the same float as `np.quantile` of the expanded column."""
    n = int(counts.sum())
    position = (n - 1) * np.float64(q)
    below = int(np.floor(position))
    ends = np.cumsum(counts)
    lo = values[np.searchsorted(ends, below, side="right")]
    hi = values[np.searchsorted(ends, min(below + 1, n - 1), side="right")]
    gamma = position - below
    # numpy's _lerp: a + (b - a) * t, or b - (b - a) * (1 - t) for t >= 0.5
    diff = hi - lo
    return float(hi - diff * (1 - gamma) if gamma >= 0.5 else lo + diff * gamma)


@dataclass(frozen=True)
class NumberCounts:
    """A numeric column over some rows: its distinct non-NaN values (sorted, infinities included) with their
    counts, and how many were NaN (missing). Partials of disjoint rows merge into the whole column's."""

    values: np.ndarray  # float64, sorted, distinct
    counts: np.ndarray  # int64
    missing: int

    @staticmethod
    def of(values: np.ndarray) -> NumberCounts:
        values = np.asarray(values, dtype="float64")
        missing = np.isnan(values)
        distinct, counts = np.unique(values[~missing], return_counts=True)
        return NumberCounts(distinct, counts.astype("int64"), int(missing.sum()))

    @staticmethod
    def merge(parts: Iterable[NumberCounts]) -> NumberCounts:
        parts = list(parts)
        if not parts:
            return NumberCounts(np.empty(0), np.empty(0, dtype="int64"), 0)
        distinct, where = np.unique(np.concatenate([p.values for p in parts]), return_inverse=True)
        counts = np.bincount(where, weights=np.concatenate([p.counts for p in parts]), minlength=len(distinct))
        return NumberCounts(distinct, counts.astype("int64"), sum(p.missing for p in parts))

    @property
    def present(self) -> int:
        return int(self.counts.sum())

    def at_or_below(self, points: np.ndarray) -> np.ndarray:
        """How many present values are <= each of `points` (sorted)."""
        ends = np.concatenate([[0], np.cumsum(self.counts)])
        return ends[np.searchsorted(self.values, points, side="right")]


@dataclass(frozen=True)
class TextCounts:
    """A categorical column over some rows: the count of each present value as text, and how many were missing."""

    counts: dict[str, int]
    missing: int

    @staticmethod
    def merge(parts: Iterable[TextCounts]) -> TextCounts:
        total: dict[str, int] = {}
        missing = 0
        for part in parts:
            for value, count in part.counts.items():
                total[value] = total.get(value, 0) + count
            missing += part.missing
        return TextCounts(total, missing)

    @property
    def present(self) -> int:
        return sum(self.counts.values())
