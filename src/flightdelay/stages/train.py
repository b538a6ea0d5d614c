"""Fit the scikit-learn pipeline on the training months, save it as a skops file.

Stage `train`: fit the scikit-learn pipeline on the training months and save it as a skops file."""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss, mean_squared_error

from flightdelay.core.config import Params, TrainParams
from flightdelay.core.contracts import FeatureSpec, TrainSummary
from flightdelay.core.errors import PipelineError
from flightdelay.core.files import write_json
from flightdelay.core.sampling import read_sample
from flightdelay.modeling.model import build_pipeline, check_model_params, prepare, save_model

log = logging.getLogger(__name__)

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {"input": "the features stage's folder"}
OUTPUTS = {"model": "the model file (skops)", "summary": "JSON training summary: features, task, rows, iterations"}
UNTRACKED = {"diagnostics": "JSON written only when training does not converge"}


def select_features(spec: FeatureSpec, groups: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns of the chosen groups, in a stable order."""
    unknown = [g for g in groups if g not in spec.groups]
    if unknown:
        raise PipelineError(f"train.feature_groups: unknown group(s) {unknown}; available: {sorted(spec.groups)}")
    columns: list[str] = []
    for group in groups:
        columns += [c for c in spec.groups[group] if c not in columns]
    leaky = sorted(set(columns) & set(spec.leaky_columns))
    if leaky:
        raise PipelineError(
            f"feature set contains columns known only after the moment of prediction (leaky_columns): {leaky}"
        )
    categorical = [c for c in columns if c in spec.categorical]
    numeric = [c for c in columns if c not in spec.categorical]
    return numeric, categorical


def iterations(estimator: Any) -> int:
    """Boosting rounds or solver iterations the estimator ran (0 for estimators without iterations)."""
    n_iter: Any = getattr(estimator, "n_iter_", 0)  # an int, or one per class (logistic regression)
    return int(max(n_iter)) if hasattr(n_iter, "__len__") else int(n_iter)


class NotConverged(PipelineError):
    """The fit did not converge with either seed; `diagnostics` says what was seen."""

    def __init__(self, message: str, diagnostics: dict[str, Any]) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics


def recorded_loss(estimator: Any, task: str) -> float | None:
    """The training loss the estimator recorded while fitting, or None if it recorded none.

    With early stopping on its own loss (`scoring="loss"`, the default), a hist_gradient_boosting estimator keeps
    the loss of every iteration on the rows it fitted (the training rows less its validation share) in
    `train_score_`, as minus the loss; its loss for regression is half the squared error.
    """
    scores = getattr(estimator, "train_score_", None)
    if getattr(estimator, "scoring", None) != "loss" or scores is None or len(scores) == 0:
        return None
    loss = -float(scores[-1])
    return loss if task == "classification" else 2.0 * loss


def training_loss(pipeline: Any, X: pd.DataFrame, y: np.ndarray, task: str) -> float:
    """Log loss (classification) or mean squared error (regression) on the training rows.

    Taken from the fitted estimator when it recorded it (`recorded_loss`), which saves a second pass over
    every training row through every tree; otherwise computed on all training rows.
    """
    recorded = recorded_loss(pipeline[-1], task)
    if recorded is not None:
        return recorded
    if task == "classification":
        return float(log_loss(y, pipeline.predict_proba(X), labels=pipeline.classes_))
    return float(mean_squared_error(y, pipeline.predict(X)))


def fit_once(X: pd.DataFrame, y: np.ndarray, tp: TrainParams, numeric: list[str], categorical: list[str], seed: int):
    """One fit. Returns (pipeline, problems, training loss); problems name why it did not converge."""
    pipeline = build_pipeline(tp.task, tp.model, numeric, categorical, tp.estimator_params(), seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline.fit(X, y)
    problems = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, ConvergenceWarning)]
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            log.warning("train: %s: %s", w.category.__name__, w.message)
    loss = training_loss(pipeline, X, y, tp.task)
    if not np.isfinite(loss):
        problems.append(f"training loss is not finite ({loss})")
    return pipeline, problems, loss


def diagnostics(X: pd.DataFrame, y: np.ndarray, tp: TrainParams, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """What a person needs to see why a fit failed: data shape, target balance, each attempt's last loss."""
    if tp.task == "classification":
        values, counts = np.unique(y, return_counts=True)
        balance: dict[str, Any] = {str(v): int(c) for v, c in zip(values, counts, strict=True)}
    else:
        balance = {"mean": float(np.mean(y)), "std": float(np.std(y)), "min": float(np.min(y)), "max": float(np.max(y))}
    return {
        "model": tp.model,
        "task": tp.task,
        "rows": int(X.shape[0]),
        "features": int(X.shape[1]),
        "target_balance": balance,
        "missing_share_by_feature": {c: float(X[c].isna().mean()) for c in X.columns if X[c].isna().any()},
        "attempts": attempts,
    }


def fit(frame: pd.DataFrame, spec: FeatureSpec, tp: TrainParams) -> tuple[Any, TrainSummary]:
    """Fit the configured pipeline; a fit that does not converge is retried once with `tp.fallback_seed`.

    Returns (fitted pipeline, summary of what was fitted). Raises NotConverged after two failures.
    """
    numeric, categorical = select_features(spec, tp.feature_groups)
    target = spec.targets[tp.task]
    X = prepare(frame, numeric, categorical)
    y = frame[target].to_numpy()
    attempts: list[dict[str, Any]] = []
    for seed in (tp.seed, tp.fallback_seed):
        pipeline, problems, loss = fit_once(X, y, tp, numeric, categorical, seed)
        attempts.append({"seed": seed, "problems": problems, "last_loss": loss})
        if not problems:
            break
        log.warning("train: fit with seed %d did not converge: %s", seed, "; ".join(problems))
    else:
        raise NotConverged(
            f"the {tp.model} fit did not converge with seed {tp.seed} nor fallback seed {tp.fallback_seed}",
            diagnostics(X, y, tp, attempts),
        )
    summary = TrainSummary(
        task=tp.task,
        model=tp.model,
        seed=attempts[-1]["seed"],
        fallback_used=len(attempts) > 1,
        target=target,
        numeric=numeric,
        categorical=categorical,
        rows=len(frame),
        target_mean=float(y.mean()),
        iterations=iterations(pipeline[-1]),
        training_loss=loss,
    )
    return pipeline, summary


def main(args: argparse.Namespace, params: Params) -> dict[str, int]:
    # The keyword arguments under train.<model>, against scikit-learn's estimators: before any data is read, so a
    # typo is a params error naming its key, not a TypeError from the fit ("a bug").
    check_model_params(params.train, args.params)
    return run(
        params.train,
        in_dir=args.input,
        model_file=args.model,
        summary_file=args.summary,
        diagnostics_file=args.diagnostics,
    )


def run(
    train: TrainParams,
    *,
    in_dir: str | Path,
    model_file: str | Path,
    summary_file: str | Path,
    diagnostics_file: str | Path,
) -> dict[str, int]:
    spec = FeatureSpec.load(Path(in_dir) / "feature_spec.json")
    frame, _ = read_sample(Path(in_dir) / "train", train.max_rows, train.seed)
    log.info(
        "train: %d rows%s, model %s, task %s, seed %d",
        len(frame),
        f" (a sample: train.max_rows={train.max_rows})" if train.max_rows is not None else "",
        train.model,
        train.task,
        train.seed,
    )
    start = time.perf_counter()
    try:
        pipeline, summary = fit(frame, spec, train)
    except NotConverged as exc:
        write_json(diagnostics_file, exc.diagnostics)
        raise PipelineError(f"{exc}; diagnostics in {diagnostics_file}") from None
    log.info(
        "train: fitted %d features in %.1fs (%d iterations)",
        len(summary.features),
        time.perf_counter() - start,
        summary.iterations,
    )
    save_model(pipeline, model_file)
    summary.save(summary_file)
    log.info("train: wrote %s", model_file)
    return {"rows_in": len(frame)}
