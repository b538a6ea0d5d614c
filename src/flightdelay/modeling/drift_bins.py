"""Binning and PSI shared by the `drift` stage and the predictor's training reference (flightdelay.serving).

The drift stage bins every model input and the prediction on the training rows (quantile edges, or the most
frequent categories plus `other`, and a bin for missing values) and stores the reference shares in the package
manifest. Monitoring bins live values with these same functions and the stored edges, so a value falls in the
bin the drift stage put it in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

# Shares below this count as this much in PSI, so an empty bin on one side gives a large, finite number.
PSI_FLOOR = 1e-4


def psi(reference: np.ndarray, current: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index of two share vectors over the same bins: sum((c - r) * ln(c / r))."""
    r = np.maximum(np.asarray(reference, dtype=float), floor)
    c = np.maximum(np.asarray(current, dtype=float), floor)
    return float(np.sum((c - r) * np.log(c / r)))


def shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def numeric_counts(values: np.ndarray, edges: list[float]) -> tuple[np.ndarray, int]:
    """Counts per bin: bin 0 is below edges[0], bin i is [edges[i-1], edges[i]), the last is edges[-1] and up.
    Returns (counts per value bin, missing count)."""
    missing = np.isnan(values)
    which = np.searchsorted(np.asarray(edges, dtype=float), values[~missing], side="right")
    return np.bincount(which, minlength=len(edges) + 1), int(missing.sum())


def categorical_counts(values: pd.Series, categories: list[str]) -> tuple[np.ndarray, int, int]:
    """Counts per known category, then (other, missing)."""
    missing = values.isna()
    present = values[~missing].astype(str)
    counts = present.value_counts()
    known = np.array([int(counts.get(c, 0)) for c in categories], dtype=int)
    return known, int(len(present) - known.sum()), int(missing.sum())


def psi_against(reference: dict[str, Any], values: pd.Series) -> float:
    """PSI of `values` against a stored reference (the manifest's `reference` entry of one column: kind numeric
    with edges, frequencies, missing; or kind categorical with categories, frequencies, other, missing)."""
    if reference["kind"] == "numeric":
        floats = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        counts, missing = numeric_counts(floats, reference["edges"])
        current = shares(np.append(counts, missing))
        expected = np.append(np.asarray(reference["frequencies"], dtype=float), reference["missing"])
    else:
        known, other, missing = categorical_counts(values, list(reference["categories"]))
        current = shares(np.append(known, [other, missing]))
        expected = np.append(
            np.asarray(reference["frequencies"], dtype=float), [reference["other"], reference["missing"]]
        )
    return psi(expected, current)
