"""Stage `train`: fit the scikit-learn pipeline on the training months and save it as a skops file."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from flightdelay.config import Params, Schema, TrainParams
from flightdelay.errors import PipelineError
from flightdelay.io import partition_files, read_json, read_parquet, write_json
from flightdelay.model import build_pipeline, prepare, save_model

log = logging.getLogger(__name__)


def select_features(spec: dict[str, Any], groups: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns of the chosen groups, in a stable order."""
    unknown = [g for g in groups if g not in spec["groups"]]
    if unknown:
        raise PipelineError(f"train.feature_groups: unknown group(s) {unknown}; available: {sorted(spec['groups'])}")
    columns: list[str] = []
    for group in groups:
        columns += [c for c in spec["groups"][group] if c not in columns]
    leaky = sorted(set(columns) & set(spec["leaky_columns"]))
    if leaky:
        raise PipelineError(f"feature set contains columns known only after departure: {leaky}")
    categorical = [c for c in columns if c in spec["categorical"]]
    numeric = [c for c in columns if c not in spec["categorical"]]
    return numeric, categorical


def read_split(directory: str | Path) -> pd.DataFrame:
    files = partition_files(directory)
    if not files:
        raise PipelineError(f"{directory}: no partitions; run the features stage first")
    return pd.concat([read_parquet(f) for f in files], ignore_index=True)


def iterations(estimator: Any) -> int:
    """Boosting rounds or solver iterations the estimator ran (0 for estimators without iterations)."""
    n_iter = getattr(estimator, "n_iter_", 0)
    return int(max(n_iter)) if hasattr(n_iter, "__len__") else int(n_iter)


def fit(frame: pd.DataFrame, spec: dict[str, Any], tp: TrainParams) -> tuple[Any, dict[str, Any]]:
    """Fit the configured pipeline. Returns (fitted pipeline, summary of what was fitted)."""
    numeric, categorical = select_features(spec, tp.feature_groups)
    target = spec["targets"][tp.task]
    X = prepare(frame, numeric, categorical)
    y = frame[target].to_numpy()
    pipeline = build_pipeline(tp.task, tp.model, numeric, categorical, tp.estimator_params(), tp.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline.fit(X, y)
    for w in caught:
        log.warning("train: %s: %s", w.category.__name__, w.message)
    estimator = pipeline[-1]
    summary: dict[str, Any] = {
        "task": tp.task,
        "model": tp.model,
        "seed": tp.seed,
        "target": target,
        "numeric": numeric,
        "categorical": categorical,
        "rows": len(frame),
        "target_mean": float(y.mean()),
        "iterations": iterations(estimator),
        "converged": not any("Convergence" in w.category.__name__ for w in caught),
    }
    return pipeline, summary


def run(
    params: Params,
    schema: Schema,
    in_dir: str = "data/processed",
    model_file: str = "models/model.skops",
    summary_file: str = "models/train_summary.json",
) -> None:
    spec = read_json(Path(in_dir) / "feature_spec.json")
    frame = read_split(Path(in_dir) / "train")
    log.info(
        "train: %d rows, model %s, task %s, seed %d",
        len(frame),
        params.train.model,
        params.train.task,
        params.train.seed,
    )
    start = time.perf_counter()
    pipeline, summary = fit(frame, spec, params.train)
    log.info(
        "train: fitted %d features in %.1fs (%d iterations)",
        len(summary["numeric"]) + len(summary["categorical"]),
        time.perf_counter() - start,
        summary["iterations"],
    )
    save_model(pipeline, model_file)
    write_json(summary_file, summary)
    log.info("train: wrote %s", model_file)
