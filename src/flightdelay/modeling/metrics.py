"""Metrics and plot data as plain functions of labels and predictions (no files)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """Mean |observed rate - mean prediction| over equal-width probability bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(y)) if len(y) else float("nan")


def classification(y: np.ndarray, p: np.ndarray, threshold: float, bins: int) -> dict[str, float]:
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    call = (p >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    # precision_score, recall_score and f1_score each call this function and keep one of its numbers: one call
    # gives the same three numbers for a third of the work (evaluate scores every slice this way)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(y, call, average="binary", zero_division=0)
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, bins),
        "accuracy": float(skm.accuracy_score(y, call)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_prediction": float(p.mean()) if len(p) else float("nan"),
        "rows": len(y),
    }


def regression(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    return {
        "mae": float(skm.mean_absolute_error(y, pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "r2": float(skm.r2_score(y, pred)) if len(y) > 1 else float("nan"),
        "mean_target": float(y.mean()) if len(y) else float("nan"),
        "mean_prediction": float(pred.mean()) if len(pred) else float("nan"),
        "rows": len(y),
    }


def roc_points(y: np.ndarray, p: np.ndarray, points: int) -> list[dict[str, float]]:
    """The ROC curve on a fixed grid of false-positive rates, so the file stays small."""
    fpr, tpr, _ = skm.roc_curve(y, p)
    grid = np.linspace(0.0, 1.0, points)
    return [{"fpr": float(f), "tpr": float(t)} for f, t in zip(grid, np.interp(grid, fpr, tpr), strict=True)]


def pr_points(y: np.ndarray, p: np.ndarray, points: int) -> list[dict[str, float]]:
    """Interpolated precision (best precision at recall >= r) on a fixed recall grid."""
    precision, recall, _ = skm.precision_recall_curve(y, p)
    order = np.argsort(recall, kind="stable")
    recall, precision = recall[order], precision[order]
    best = np.maximum.accumulate(precision[::-1])[::-1]
    grid = np.linspace(0.0, 1.0, points)
    index = np.clip(np.searchsorted(recall, grid, side="left"), 0, len(recall) - 1)
    return [{"recall": float(r), "precision": float(best[i])} for r, i in zip(grid, index, strict=True)]


def calibration_points(y: np.ndarray, p: np.ndarray, bins: int) -> list[dict[str, float]]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append(
                {
                    "mean_predicted": float(p[mask].mean()),
                    "fraction_positive": float(y[mask].mean()),
                    "rows": int(mask.sum()),
                }
            )
    return out


def confusion_counts(y: np.ndarray, p: np.ndarray, threshold: float, names: dict[int, str]) -> list[dict[str, Any]]:
    """Rows per (actual, predicted) class at the threshold; `names` gives each class (0, 1) its display name."""
    call = (np.asarray(p) >= threshold).astype(int)
    return [
        {"actual": names[a], "predicted": names[c], "count": int(((y == a) & (call == c)).sum())}
        for a in (0, 1)
        for c in (0, 1)
    ]


def slice_table(
    frame: pd.DataFrame,
    column: str,
    target: str,
    task: str,
    threshold: float,
    bins: int,
    min_rows: int,
) -> dict[str, dict[str, float]]:
    """Metrics per value of `column` (values with fewer than `min_rows` rows are left out)."""
    out: dict[str, dict[str, float]] = {}
    for value, group in frame.groupby(column, sort=True, observed=True):
        if len(group) < min_rows:
            continue
        y = group[target].to_numpy()
        pred = group["prediction"].to_numpy()
        if task == "classification":
            full = classification(y, pred, threshold, bins)
            keep = ("rows", "positive_rate", "mean_prediction", "roc_auc", "pr_auc", "brier", "f1")
            out[str(value)] = {k: full[k] for k in keep}
        else:
            out[str(value)] = regression(y, pred)
    return out


def residual_points(y: np.ndarray, pred: np.ndarray, points: int, seed: int) -> list[dict[str, float]]:
    """A fixed-seed sample of (actual, predicted, residual) for regression plots."""
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(y), size=min(points, len(y)), replace=False))
    return [{"actual": float(y[i]), "predicted": float(pred[i]), "residual": float(y[i] - pred[i])} for i in index]
